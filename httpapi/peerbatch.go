package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/vipsmart/vipsmart/federation"
)

// encodeMessage returns the JSON body of m and its length. A lock carrying
// a batch that the coordinator has encoded already (federation.Batch
// Encoded: megabytes for 10,000 GIPs) is not encoded again for each peer:
// the message is encoded around a placeholder batch, and the body reads
// the cached batch in its place. So a lock sent to 9 members costs no 9
// copies of the batch in memory and no 9 passes over it (encoding/json
// re-validates what a MarshalJSON method returns).
// body makes a fresh reader each time, so that the HTTP client can send a
// request again over a new connection (Request.GetBody).
func encodeMessage(m federation.Message) (body func() io.Reader, size int64, err error) {
	raw := []byte(nil)
	if m.Change != nil {
		raw = m.Change.Batch.Encoded()
	}
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
