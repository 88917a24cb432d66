package daemon

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

func TestRefusalLimiter(t *testing.T) {
	var l refusalLimiter
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	allowed := 0
	for i := 0; i < 100; i++ {
		if ok, _ := l.allow("192.0.2.1", t0.Add(time.Duration(i)*time.Millisecond)); ok {
			allowed++
		}
	}
	if allowed != refusalBurst {
		t.Fatalf("%d of 100 refusals in 0.1s recorded; want %d", allowed, refusalBurst)
	}
	// Another host has its own budget.
	if ok, _ := l.allow("192.0.2.2", t0); !ok {
		t.Fatal("a second host's first refusal was held back")
	}
	// After the window, the next record counts those held back.
	ok, skipped := l.allow("192.0.2.1", t0.Add(refusalWindow+time.Second))
	if !ok || skipped != 100-refusalBurst {
		t.Fatalf("after the window: %v, %d skipped; want %d", ok, skipped, 100-refusalBurst)
	}
	// Many hosts share a bounded memory.
	for i := 0; i < 3*maxRefusalHosts; i++ {
		l.allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), t0.Add(refusalWindow+2*time.Second))
	}
	if len(l.hosts) > maxRefusalHosts+1 {
		t.Fatalf("the limiter remembers %d hosts; want at most %d", len(l.hosts), maxRefusalHosts+1)
	}
}

func TestDeliverNeedsAnAuthenticatedPeer(t *testing.T) {
	d := newTestDaemon(t)
	m := federation.Message{Type: federation.MsgHeartbeat, From: vipsmart.DC{Name: "dc-2", Address: d.cfg.Self.Address, Port: 1}, To: d.cfg.Self}
	// No caller, or a caller that is not a TLS peer: refused, recorded.
	for _, ctx := range []context.Context{
		context.Background(),
		vipsmart.WithCaller(context.Background(), vipsmart.Caller{Via: vipsmart.ViaSocket, Name: "uid 0"}),
		vipsmart.WithCaller(context.Background(), vipsmart.Caller{Via: vipsmart.ViaPeer, Name: "dc-2", Addr: "192.0.2.9:1"}),
	} {
		if err := d.Deliver(ctx, m); !vipsmart.IsCode(err, vipsmart.EFORBIDDEN) {
			t.Fatalf("Deliver: %v; want EFORBIDDEN", err)
		}
	}
	es, err := d.cfg.Store.ListEvents(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 || es[0].Kind != vipsmart.EventSecurity || !strings.Contains(es[0].Message, "refused dc-2") || !strings.Contains(es[0].Message, "mutual TLS") {
		t.Fatalf("events %+v", es)
	}
}
