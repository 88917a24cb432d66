package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"testing"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// TestEncodeMessageSplicesTheCachedBatch: a lock whose batch is encoded
// already is sent as exactly the bytes json.Marshal would give (the cached
// batch read in place of a placeholder), whose length is announced, and
// which can be read again (a retry over a new connection).
func TestEncodeMessageSplicesTheCachedBatch(t *testing.T) {
	var put []vipsmart.GIP
	for i := range 50 {
		put = append(put, vipsmart.GIP{Name: fmt.Sprintf("g%d", i), Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Mode: vipsmart.ModeFailover, Preempt: true,
			Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 100}, {DC: "dc-2", Priority: 50, VIP: "web"}}})
	}
	b := federation.NewBatch(put, []string{"old"})
	dc := func(n string) vipsmart.DC {
		return vipsmart.DC{Name: n, Address: netip.MustParseAddr("127.0.0.1"), Port: 9601}
	}
	m := federation.Message{Type: federation.MsgLock, From: dc("dc-1"), To: dc("dc-2"), OpID: "op-1", FedID: "f", Epoch: 3, ToEpoch: 4,
		Change: &federation.Change{Kind: federation.ApplyGIPs, By: `asked by "x"`, Batch: b}}
	plain, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, cached := range []bool{false, true} {
		if cached {
			if err := b.Cache(); err != nil {
				t.Fatal(err)
			}
		}
		body, size, _, err := encodeMessage(m, false)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, _ := io.ReadAll(body())
			if !bytes.Equal(got, plain) || size != int64(len(plain)) {
				t.Fatalf("cached %t: body of %d bytes (size %d) differs from json.Marshal's %d bytes", cached, len(got), size, len(plain))
			}
		}
	}
	if m.Change.Batch != b {
		t.Fatal("encodeMessage changed the message it was given")
	}
}
