package httpapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/identity"
)

// frameLock is a lock of a batch of n GIPs as Propose makes it (its
// binary encoding cached), from dc-1 to dc-2.
func frameLock(n int, from, to vipsmart.DC) federation.Message {
	var put []vipsmart.GIP
	for i := range n {
		put = append(put, vipsmart.GIP{Name: fmt.Sprintf("g%d", i), Address: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Mode: vipsmart.ModeFailover, Preempt: true,
			Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 100}, {DC: "dc-2", Priority: 50, VIP: "web"}}})
	}
	b := federation.NewBatch(put, []string{"old"})
	b.CacheBinary()
	return federation.Message{Type: federation.MsgLock, From: from, To: to, OpID: "dc-1-1", FedID: "f", Epoch: 3, ToEpoch: 4,
		SenderFed: "f", SenderEpoch: 3, Status: vipsmart.StatusMember, Change: &federation.Change{Kind: federation.ApplyGIPs, By: "test", Batch: b}}
}

// sameJSON reports whether two messages encode the same (the batch in
// full).
func sameJSON(t *testing.T, a, b federation.Message) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

func frameBody(t *testing.T, m federation.Message) []byte {
	t.Helper()
	body, size, ctype, err := encodeMessage(m, true)
	if err != nil || ctype != BatchMessageType {
		t.Fatalf("encodeMessage = %s, %v; want a frame", ctype, err)
	}
	b, _ := io.ReadAll(body())
	if int64(len(b)) != size {
		t.Fatalf("frame of %d bytes, %d announced", len(b), size)
	}
	return b
}

// TestFrameRoundTrip: a lock whose batch has a binary encoding is sent
// as a frame that decodes to the same message, which validates; a
// message without one is sent in JSON.
func TestFrameRoundTrip(t *testing.T) {
	dc := func(n string) vipsmart.DC {
		return vipsmart.DC{Name: n, Address: netip.MustParseAddr("127.0.0.1"), Port: 9601}
	}
	m := frameLock(200, dc("dc-1"), dc("dc-2"))
	body := frameBody(t, m)
	var got federation.Message
	if st, err := parseFrame(body, &got); err != nil {
		t.Fatalf("%d %v", st, err)
	}
	if !sameJSON(t, got, m) {
		t.Fatal("the frame decodes to another message")
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	if js, _ := json.Marshal(m); len(body) > len(js)/2 {
		t.Errorf("frame of %d bytes for %d bytes of JSON: want it much smaller", len(body), len(js))
	}
	hb := federation.Message{Type: federation.MsgHeartbeat, From: dc("dc-1"), To: dc("dc-2")}
	if _, _, ctype, err := encodeMessage(hb, true); err != nil || ctype != "application/json" {
		t.Fatalf("a heartbeat goes as %s (%v), want JSON", ctype, err)
	}
}

// TestFrameRefused: a frame that is not exactly a lock with the batch its
// head names is refused, saying why; a later frame version with 415 (the
// sender then sends JSON).
func TestFrameRefused(t *testing.T) {
	dc := func(n string) vipsmart.DC {
		return vipsmart.DC{Name: n, Address: netip.MustParseAddr("127.0.0.1"), Port: 9601}
	}
	m := frameLock(20, dc("dc-1"), dc("dc-2"))
	good := frameBody(t, m)
	other := frameLock(21, dc("dc-1"), dc("dc-2"))
	// frame builds a frame of head (JSON) and batch.
	frame := func(head []byte, batch []byte) []byte {
		b := append([]byte("VSPM"), frameVersion)
		b = binary.AppendUvarint(b, uint64(len(head)))
		return append(append(b, head...), batch...)
	}
	slimHead := func(m federation.Message, edit func(string) string) []byte {
		c := *m.Change
		c.Batch = &federation.Batch{Count: m.Change.Batch.Count, Digest: m.Change.Batch.Digest}
		m.Change = &c
		h, _ := json.Marshal(m)
		if edit != nil {
			return []byte(edit(string(h)))
		}
		return h
	}
	bin := m.Change.Batch.EncodedBinary()
	fullHead, _ := json.Marshal(m)
	hb, _ := json.Marshal(federation.Message{Type: federation.MsgHeartbeat, From: dc("dc-1"), To: dc("dc-2")})
	cases := []struct {
		name   string
		in     []byte
		status int
		want   string
	}{
		{"empty", nil, 400, "does not start"},
		{"JSON", fullHead, 400, "does not start"},
		{"version 2", append([]byte("VSPM\x02"), good[5:]...), 415, "frame version 2 is not supported"},
		{"head longer than the body", frame(slimHead(m, nil), nil)[:40], 400, "length of its head"},
		{"unknown field in the head", frame(slimHead(m, func(s string) string { return strings.Replace(s, `{"type"`, `{"extra":1,"type"`, 1) }), bin), 400, "extra"},
		{"data after the head", frame(append(slimHead(m, nil), []byte(" {}")...), bin), 400, "after the JSON object"},
		{"a heartbeat", frame(hb, bin), 400, "only a lock"},
		{"the batch in full in the head", frame(fullHead, bin), 400, "only a lock"},
		{"another batch", frame(slimHead(m, nil), other.Change.Batch.EncodedBinary()), 400, "the head names a batch"},
		{"a broken batch", frame(slimHead(m, nil), bin[:len(bin)-1]), 400, "binary batch"},
		{"trailing bytes", append(bytes.Clone(good), 0), 400, "after the batch"},
	}
	for _, c := range cases {
		var got federation.Message
		st, err := parseFrame(c.in, &got)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if st != c.status || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %d %v; want %d saying %q", c.name, st, err, c.status, c.want)
		}
		if got.Type != "" {
			t.Errorf("%s: the message was filled in", c.name)
		}
	}
}

// recorder keeps the messages delivered to it.
type recorder struct {
	mu  sync.Mutex
	got []federation.Message
}

func (r *recorder) Deliver(ctx context.Context, m federation.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, m)
	return nil
}

func (r *recorder) messages() []federation.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]federation.Message(nil), r.got...)
}

// TestFrameOverTheWire: PeerClient sends a lock with a binary batch as a
// frame to a DC that reads frames, and in JSON (after its 415) to an
// older DC, whose peer route decodes JSON alone (as before frames); both
// receive the same message. The JSON of a batch is made once for all the
// older DCs a lock goes to.
func TestFrameOverTheWire(t *testing.T) {
	srvID, cliID := peerIdentities(t)
	var types sync.Map // content types seen, by server
	serve := func(name string, h http.Handler) vipsmart.DC {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		seen := &[]string{}
		types.Store(name, seen)
		var mu sync.Mutex
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			*seen = append(*seen, r.Header.Get("Content-Type"))
			mu.Unlock()
			h.ServeHTTP(w, r)
		})}
		go srv.Serve(identity.NewListener(l, srvID.PeerServerConfig(nil), nil))
		t.Cleanup(func() { srv.Close() })
		ap := netip.MustParseAddrPort(l.Addr().String())
		return vipsmart.DC{Name: "dc-2", Address: ap.Addr(), Port: ap.Port(), Identity: srvID.Fingerprint()}
	}
	from := vipsmart.DC{Name: "dc-1", Address: netip.MustParseAddr("127.0.0.1"), Port: 1, Identity: cliID.Fingerprint()}
	pc := NewPeerClient(cliID.PeerClientConfig)

	now := &recorder{}
	older := &recorder{}
	toNew := serve("new", PeerHandler(now, identity.PeerFingerprint, nil))
	toOld := serve("old", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m federation.Message
		if st, err := decode(w, r, MaxPeerBody, &m, messageFields); err != nil {
			writeJSONError(w, st, err)
			return
		}
		_ = older.Deliver(r.Context(), m)
		w.WriteHeader(http.StatusAccepted)
	}))
	for _, c := range []struct {
		name  string
		to    vipsmart.DC
		recv  *recorder
		types string
	}{
		{"new", toNew, now, BatchMessageType},
		{"old", toOld, older, BatchMessageType + " application/json"},
	} {
		m := frameLock(300, from, c.to)
		if err := pc.Send(context.Background(), m); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := c.recv.messages()
		if len(got) != 1 || !sameJSON(t, got[0], m) {
			t.Fatalf("%s: received %d messages, want the lock as sent", c.name, len(got))
		}
		if c.name == "old" {
			j := pc.batchJSON(m)
			if j == nil || &pc.batchJSON(m)[0] != &j[0] {
				t.Error("the batch's JSON is not kept for the next older DC")
			}
		}
		seen, _ := types.Load(c.name)
		if s := strings.Join(*seen.(*[]string), " "); s != c.types {
			t.Errorf("%s: requests of content types %q, want %q", c.name, s, c.types)
		}
	}
}

// FuzzPeerFrame feeds the frame decoder (the body of a lock sent with
// its batch in binary): it must never panic, and a message it accepts
// must encode to a frame that decodes to the same message.
func FuzzPeerFrame(f *testing.F) {
	dc := func(n string) vipsmart.DC {
		return vipsmart.DC{Name: n, Address: netip.MustParseAddr("127.0.0.1"), Port: 9601}
	}
	for _, n := range []int{1, 3} {
		m := frameLock(n, dc("dc-1"), dc("dc-2"))
		body, _, _, _ := encodeMessage(m, true)
		b, _ := io.ReadAll(body())
		f.Add(b)
	}
	f.Add([]byte("VSPM\x01\x02{}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var m federation.Message
		if _, err := parseFrame(in, &m); err != nil {
			if m.Type != "" {
				t.Fatal("a refused frame filled in the message")
			}
			return
		}
		verdict := m.Validate()
		m.Change.Batch.CacheBinary()
		body, _, ctype, err := encodeMessage(m, true)
		if err != nil || ctype != BatchMessageType {
			t.Fatalf("an accepted frame does not encode back: %s %v", ctype, err)
		}
		b, _ := io.ReadAll(body())
		var again federation.Message
		if _, err := parseFrame(b, &again); err != nil {
			t.Fatalf("re-encoded frame refused: %v", err)
		}
		if !sameJSON(t, again, m) {
			t.Fatal("round trip changed the message")
		}
		if v2 := again.Validate(); (v2 == nil) != (verdict == nil) {
			t.Fatalf("validation changed over a round trip: %v then %v", verdict, v2)
		}
	})
}
