package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// encodeMessage returns the body of m, its length and its content type.
// With frames, a lock whose batch has a cached binary encoding (made by
// Propose) is sent as a BatchMessageType frame; anything else in JSON.
// A lock carrying a batch whose JSON is known already (federation.Batch
// Encoded, or PeerClient.batchJSON for older peers: megabytes for 10,000
// GIPs) is not encoded again for each peer:
// the message is encoded around a placeholder batch, and the body reads
// the cached batch in its place. So a lock sent to 9 members costs no 9
// copies of the batch in memory and no 9 passes over it (encoding/json
// re-validates what a MarshalJSON method returns).
// body makes a fresh reader each time, so that the HTTP client can send a
// request again over a new connection (Request.GetBody).
func encodeMessage(m federation.Message, frames bool) (body func() io.Reader, size int64, ctype string, err error) {
	if frames {
		if body, size, ok, err := encodeFrame(m); ok || err != nil {
			return body, size, BatchMessageType, err
		}
	}
	var raw []byte
	if m.Change != nil {
		raw = m.Change.Batch.Encoded()
	}
	body, size, err = encodeJSONMessage(m, raw)
	return body, size, "application/json", err
}

// encodeJSONMessage is encodeMessage in JSON; raw, if not nil, is the
// JSON encoding of m's batch.
func encodeJSONMessage(m federation.Message, raw []byte) (body func() io.Reader, size int64, err error) {
	if raw == nil {
		b, err := json.Marshal(m)
		return func() io.Reader { return bytes.NewReader(b) }, int64(len(b)), err
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	ph := &federation.Batch{Digest: "splice-" + hex.EncodeToString(nonce[:])}
	c := *m.Change
	c.Batch = ph
	m.Change = &c
	b, err := json.Marshal(m)
	if err != nil {
		return nil, 0, err
	}
	phJSON, err := json.Marshal(ph)
	if err != nil {
		return nil, 0, err
	}
	i := bytes.Index(b, phJSON)
	if i < 0 || bytes.Count(b, phJSON) != 1 {
		return nil, 0, fmt.Errorf("encoding the batch of a %s message: placeholder not found once", m.Type)
	}
	head, tail := b[:i], b[i+len(phJSON):]
	return func() io.Reader {
		return io.MultiReader(bytes.NewReader(head), bytes.NewReader(raw), bytes.NewReader(tail))
	}, int64(len(head) + len(raw) + len(tail)), nil
}

// BatchMessageType is the content type of a federation message sent with
// its batch in binary (a lock of vipsmart apply): a frame of
//
//	"VSPM", the frame version (1),
//	the length of the head (an unsigned varint, at most maxFrameHead),
//	the head: the message in JSON with its batch slim (count and digest),
//	the batch in binary (federation.Batch.MarshalBinary), to the end.
//
// A member decodes 10,000 GIPs so in about an eighth of the time and a
// third of the memory encoding/json takes for the same lock (BENCHMARKS.md,
// issue 14, batchwire). A DC that does not read it (an older version, or
// a later frame version) answers 415 Unsupported Media Type, and the
// sender sends the message again in JSON (docs/federation.md).
const BatchMessageType = "application/vnd.vipsmart.message+batch"

// frameVersion is the version of the BatchMessageType frame.
const frameVersion = 1

var frameMagic = [4]byte{'V', 'S', 'P', 'M'}

// maxFrameHead bounds the JSON head of a frame: a lock without its batch
// is a few KiB (its members are in the head, so room for many).
const maxFrameHead = 1 << 20

// encodeFrame returns the frame of a message whose batch has a cached
// binary encoding (ok false otherwise: send it in JSON).
func encodeFrame(m federation.Message) (body func() io.Reader, size int64, ok bool, err error) {
	if m.Change == nil || m.Change.Batch.EncodedBinary() == nil {
		return nil, 0, false, nil
	}
	bin := m.Change.Batch.EncodedBinary()
	b := m.Change.Batch
	c := *m.Change
	c.Batch = &federation.Batch{Count: b.Count, Digest: b.Digest}
	m.Change = &c
	head, err := json.Marshal(m)
	if err != nil {
		return nil, 0, false, err
	}
	pre := make([]byte, 0, 5+binary.MaxVarintLen64+len(head))
	pre = append(pre, frameMagic[:]...)
	pre = append(pre, frameVersion)
	pre = binary.AppendUvarint(pre, uint64(len(head)))
	pre = append(pre, head...)
	return func() io.Reader {
		return io.MultiReader(bytes.NewReader(pre), bytes.NewReader(bin))
	}, int64(len(pre) + len(bin)), true, nil
}

// decodeFrame reads a BatchMessageType body into m: the head as strictly
// as a JSON message (unknown fields refused), then the batch, which must
// be the one the head names (same count and digest). The message is then
// validated as any other (the batch's digest against its content).
func decodeFrame(w http.ResponseWriter, r *http.Request, m *federation.Message) (int, error) {
	buf := &bytes.Buffer{}
	if r.ContentLength > 0 && r.ContentLength <= MaxPeerBody {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxPeerBody)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, vipsmart.Errorf(vipsmart.EINVALID, "", "request body is larger than %d bytes", MaxPeerBody)
		}
		return http.StatusBadRequest, vipsmart.Errorf(vipsmart.EINVALID, "", "reading request body: %v", err)
	}
	return parseFrame(buf.Bytes(), m)
}

// parseFrame is decodeFrame's reading of the body.
func parseFrame(body []byte, m *federation.Message) (int, error) {
	bad := func(format string, args ...any) (int, error) {
		return http.StatusBadRequest, vipsmart.Errorf(vipsmart.EINVALID, "", "%s body: %s", BatchMessageType, fmt.Sprintf(format, args...))
	}
	if len(body) < 5 || !bytes.Equal(body[:4], frameMagic[:]) {
		return bad("it does not start with %q", frameMagic[:])
	}
	if body[4] != frameVersion {
		return http.StatusUnsupportedMediaType, vipsmart.Errorf(vipsmart.EINVALID, "", "%s frame version %d is not supported: this DC reads version %d; send application/json", BatchMessageType, body[4], frameVersion)
	}
	n, k := binary.Uvarint(body[5:])
	if k <= 0 || n > maxFrameHead || n > uint64(len(body)-5-k) {
		return bad("the length of its head is malformed or larger than the body (or %d bytes)", maxFrameHead)
	}
	head, rest := body[5+k:5+k+int(n)], body[5+k+int(n):]
	var hm federation.Message
	dec := json.NewDecoder(bytes.NewReader(head))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hm); err != nil {
		return http.StatusBadRequest, jsonErrorIn(head, err, messageFields)
	}
	if dec.More() {
		return bad("its head has data after the JSON object")
	}
	c := hm.Change
	if hm.Type != federation.MsgLock || c == nil || c.Kind != federation.ApplyGIPs || c.Batch == nil || len(c.Batch.Put)+len(c.Batch.Delete) != 0 {
		return bad("only a lock of GIP changes (%s) with its batch slim in the head travels so; send anything else as application/json", federation.ApplyGIPs)
	}
	var b federation.Batch
	if err := b.UnmarshalBinary(rest); err != nil {
		return bad("%v", err)
	}
	if b.Count != c.Batch.Count || b.Digest != c.Batch.Digest {
		return bad("the head names a batch of %d changes with digest %s, the body carries %d with digest %s", c.Batch.Count, c.Batch.Digest, b.Count, b.Digest)
	}
	cc := *c
	cc.Batch = &b
	hm.Change = &cc
	*m = hm
	return 0, nil
}

// decodeMessage reads the body of a federation message into m: JSON, or
// a BatchMessageType frame.
func decodeMessage(w http.ResponseWriter, r *http.Request, m *federation.Message) (int, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == BatchMessageType {
		return decodeFrame(w, r, m)
	}
	return decode(w, r, MaxPeerBody, (*messageJSON)(m), messageFields) // messagefast.go
}

// batchJSON returns the JSON encoding of m's batch for a peer that
// refused its frame (an older DC), encoded once for all such peers of
// the lock: Propose encodes a batch in binary only (JSON took 80 ms of
// the coordinator's time with ten loaded daemons on two cores). It keeps
// the last one, which is dropped with the next batch's.
func (p *PeerClient) batchJSON(m federation.Message) []byte {
	if m.Change == nil || m.Change.Batch == nil {
		return nil
	}
	b := m.Change.Batch
	if raw := b.Encoded(); raw != nil {
		return raw
	}
	p.jsonMu.Lock()
	defer p.jsonMu.Unlock()
	if p.jsonOf != b {
		raw, err := json.Marshal(b)
		if err != nil {
			return nil // encoded again with the message, which reports the error
		}
		p.jsonOf, p.json = b, raw
	}
	return p.json
}

// frameRefused is a peer's 415 answer to a BatchMessageType frame: it
// does not read frames (of this version); the message goes again in JSON.
type frameRefused struct{ refusal }

func isFrameRefused(err error) bool {
	var f frameRefused
	return errors.As(err, &f)
}
