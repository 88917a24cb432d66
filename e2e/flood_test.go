package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/httpapi"
)

// floodRSSBound is the peak RSS a daemon must stay under while a flood of
// maximum-size peer bodies arrives (docs/operations.md states it).
const floodRSSBound = 256 << 20

// procKB reads a "Vm...:  N kB" line of /proc/PID/status.
func procKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// floodState is a state transfer of 10,000 GIPs with maximal names placed
// in 8 DCs (the largest legitimate peer message, about 14 MiB).
func floodState(to vipsmart.DC) []byte {
	long := func(p string, i int) string {
		s := fmt.Sprintf("%s-%d", p, i)
		return s + strings.Repeat("x", 63-len(s))
	}
	addr := netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")
	st := &federation.State{FedID: "f-flood-1", Epoch: 1 << 40}
	for i := range 8 {
		st.Members = append(st.Members, vipsmart.DC{Name: long("dc", i), Address: addr, Port: 65535})
	}
	for i := range 10000 {
		g := vipsmart.GIP{Name: long("gip", i), Address: addr, Mode: vipsmart.ModeFailover}
		for j := range 8 {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: long("dc", j), Priority: 255, VIP: long("vip", j)})
		}
		st.GIPs = append(st.GIPs, g)
	}
	b, _ := json.Marshal(federation.Message{Type: federation.MsgState, From: st.Members[0], To: to, State: st})
	return b
}

// TestFloodOfLargePeerBodiesKeepsMemoryBounded sends 20 maximum-size peer
// bodies at once (16 of 16 MiB less a little, 4 state transfers of about
// 14 MiB) to one daemon, while reading its status all along: its peak RSS
// must stay under floodRSSBound, and it must keep answering.
func TestFloodOfLargePeerBodiesKeepsMemoryBounded(t *testing.T) {
	d := startDaemon(t, "dc-1")
	stranger := strangerKey(t, "dc-9")
	pid := d.cmd.Process.Pid
	base := procKB(t, pid, "VmRSS")
	state := floodState(dcOf(d))
	hb, _ := json.Marshal(federation.Message{Type: federation.MsgHeartbeat, From: vipsmart.DC{Name: "dc-9", Address: netip.MustParseAddr("127.0.0.9"), Port: 9}, To: dcOf(d)})
	junk := append(bytes.Clone(hb[:len(hb)-1]), []byte(`,"reason":"`+strings.Repeat("x", httpapi.MaxPeerBody-len(hb)-64)+`"}`)...)
	if len(junk) > httpapi.MaxPeerBody || len(junk) < httpapi.MaxPeerBody-1024 {
		t.Fatalf("junk body of %d bytes, want just under %d", len(junk), httpapi.MaxPeerBody)
	}

	// Read the status all along; every read must answer.
	stop := make(chan struct{})
	var reads, failures int
	var slowest time.Duration
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		c := d.client()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			start := time.Now()
			_, err := c.Status(ctx)
			cancel()
			reads++
			slowest = max(slowest, time.Since(start))
			if err != nil {
				failures++
				t.Logf("status during the flood: %v", err)
			}
		}
	}()

	const bodies = 20
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range bodies {
		body := junk
		if i%5 == 0 {
			body = state
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Over mutual TLS with a key of its own, as anyone can
			// connect: the flood is of bodies, before any message is
			// believed.
			// The client waits longer than the daemon's queue for
			// large bodies (Limits.Wait) plus the read: a body waits its
			// turn or is refused, never left unanswered.
			code, _, err := postWithin(d.addr(), &stranger, body, httpapi.DefaultPeerLimits.Wait+httpapi.DefaultPeerLimits.ReadTimeout)
			if err != nil {
				t.Logf("a body got no answer: %v", err)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(stop)
	<-polled
	peak := procKB(t, pid, "VmHWM")
	t.Logf("%d bodies in %s: answers %v; RSS before %d MiB, peak %d MiB (bound %d MiB); %d status reads during the flood, %d failed, slowest %s",
		bodies, took.Round(time.Millisecond), codes, base>>20, peak>>20, floodRSSBound>>20, reads, failures, slowest.Round(time.Millisecond))
	if peak > floodRSSBound {
		t.Errorf("peak RSS %d MiB is over the bound of %d MiB", peak>>20, floodRSSBound>>20)
	}
	if failures > 0 {
		t.Errorf("%d of %d status reads failed during the flood", failures, reads)
	}
	if codes[0] > 0 {
		t.Errorf("%d bodies got no answer at all", codes[0])
	}
	// Each body is read whole and then not believed (403: the stranger's
	// key is no member's), or refused as overload before it is read (503).
	if codes[http.StatusForbidden]+codes[http.StatusServiceUnavailable] != bodies {
		t.Errorf("answers %v: want each body read and not believed (403) or refused as overload (503)", codes)
	}
	// It still works.
	mustCLI(t, d.server(), "vip", "add", "after", "192.0.2.77")
}
