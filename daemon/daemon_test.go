package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/bolt"
	"github.com/vipsmart/vipsmart/federation"
)

type nopTransport struct{}

func (nopTransport) Send(context.Context, federation.Message) error { return nil }

func newTestDaemon(t *testing.T) *Daemon {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "vipsmart.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	self := vipsmart.DC{Name: "dc-1", Address: netip.MustParseAddr("127.0.0.1"), Port: 9610}
	d, err := New(context.Background(), Config{Self: self, Store: st, Transport: nopTransport{}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestGIPEventsAreBoundedAndBatched: a DC that takes over many GIPs at once
// records at most maxGIPEvents events one by one and one summary, in one
// store write.
func TestGIPEventsAreBoundedAndBatched(t *testing.T) {
	d := newTestDaemon(t)
	var msgs []string
	for i := 0; i < 100; i++ {
		msgs = append(msgs, fmt.Sprintf("GIP g%d active here: test", i))
	}
	d.gipEvents(msgs, "active")
	es, err := d.cfg.Store.ListEvents(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != maxGIPEvents+1 {
		t.Fatalf("%d events; want %d", len(es), maxGIPEvents+1)
	}
	if last := es[len(es)-1].Message; !strings.Contains(last, "and 80 more GIPs active here (100 in all)") {
		t.Fatalf("summary event %q", last)
	}
	for _, e := range es {
		if e.Kind != vipsmart.EventGIP || e.DC != "dc-1" {
			t.Fatalf("event %+v", e)
		}
	}
}
