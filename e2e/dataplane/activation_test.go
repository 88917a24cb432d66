package dataplane

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// backend listens on addr inside ns and accepts (and closes) connections
// until the test ends: what a VIP's TCP check connects to.
func backend(t testing.TB, ns, addr string) {
	t.Helper()
	var l net.Listener
	if err := inNS(ns, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// events returns d's event log.
func events(t testing.TB, d *dc) []vipsmart.Event {
	t.Helper()
	var es []vipsmart.Event
	if err := json.Unmarshal([]byte(d.cli("-o", "json", "events")), &es); err != nil {
		t.Fatal(err)
	}
	return es
}

// TestGIPAddActivatesOnce adds a GIP placed in three DCs, each backed by a
// VIP with a TCP check, right after the VIPs themselves, in the order that
// makes the worst placement's check pass first (dc-3, then dc-2, then
// dc-1, 300 ms apart). A DC must not activate its placement while a better
// placement's VIP health is still unknown: the GIP becomes active exactly
// once, on dc-1, and nowhere else (the events of all three DCs prove it),
// and the router's best path is dc-1's with the others' standby paths.
func TestGIPAddActivatesOnce(t *testing.T) {
	forEachRouter(t, func(t *testing.T, k routerKind) {
		b := newBGPLab(t, k, 3)
		b.federate()
		for i := 3; i >= 1; i-- {
			backend(t, b.dcs[i-1].ns, dcIP(i)+":8080")
		}
		const gip = "203.0.113.10"
		for i := 3; i >= 1; i-- {
			b.dcs[i-1].cli("vip", "add", "web", fmt.Sprintf("198.18.1.%d", i), "--check", "tcp://"+dcIP(i)+":8080")
			if i > 1 {
				time.Sleep(300 * time.Millisecond)
			}
		}
		b.dcs[0].cli("gip", "add", "g", gip, "--placement", "dc-1:200:web", "--placement", "dc-2:150:web", "--placement", "dc-3:100:web")
		b.waitRoute(20*time.Second, gip+"/32", want{best: dcIP(1), bestLen: 1, other: dcIP(3), otherLen: 4})
		time.Sleep(2 * time.Second) // anything late would show by now
		if err := (want{best: dcIP(1), bestLen: 1, other: dcIP(2), otherLen: 4}).check(b.mustPaths(gip + "/32")); err != nil {
			t.Errorf("%s: %v", k, err)
		}
		var active []string
		waited := 0
		for _, d := range b.dcs {
			for _, e := range events(t, d) {
				if e.Kind != vipsmart.EventGIP {
					continue
				}
				if strings.HasPrefix(e.Message, "GIP g "+gip+" active here") {
					active = append(active, d.name+": "+e.Message)
				}
				if strings.Contains(e.Message, "waits up to") {
					waited++
				}
			}
		}
		t.Logf("%s: activations %q; %d DC(s) waited for a better placement's health", k, active, waited)
		if len(active) != 1 || !strings.HasPrefix(active[0], "dc-1: ") {
			t.Errorf("%s: GIP g activated %d times, want exactly once, on dc-1: %q", k, len(active), active)
		}
	})
}

// hasEvent reports whether d's event log holds an event of kind at level
// (warn or error) whose message starts with prefix, and prints the log
// for the error message when it does not.
func hasEvent(t testing.TB, d *dc, kind, level, prefix string) (bool, string) {
	t.Helper()
	var b strings.Builder
	for _, e := range events(t, d) {
		if e.Kind == kind && e.Level == level && strings.HasPrefix(e.Message, prefix) {
			return true, ""
		}
		fmt.Fprintf(&b, "%d %s %s %s: %s\n", e.Seq, e.Kind, e.Level, e.DC, e.Message)
	}
	return false, b.String()
}
