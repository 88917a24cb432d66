package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentOperationsGetThroughByRetrying is finding 4: operations
// started at the same instant on five DCs collide on the federation's
// locks. The CLI retries each "federation busy" refusal with jittered
// backoff (saying so on stderr) until --timeout: every operation must
// succeed, and each must be applied exactly once (the epoch rises by one
// per operation, every DC holds the same GIPs).
func TestConcurrentOperationsGetThroughByRetrying(t *testing.T) {
	ds := startFederation(t, 5, fedTimers...)
	before := expectFederation(t, ds, nil).Federation.Epoch
	retries, ops := 0, 0
	rounds := []struct {
		name string
		args func(i int) []string
	}{
		{"add", func(i int) []string {
			return []string{"gip", "add", fmt.Sprintf("g%d", i), fmt.Sprintf("203.0.113.%d", 10+i), "--placement", fmt.Sprintf("dc-%d:100", i+1)}
		}},
		{"update", func(i int) []string {
			return []string{"gip", "update", fmt.Sprintf("g%d", i), "--placement", fmt.Sprintf("dc-%d:100,dc-%d:50", i+1, (i+1)%5+1)}
		}},
		{"remove", func(i int) []string { return []string{"gip", "remove", fmt.Sprintf("g%d", i)} }},
	}
	for _, round := range rounds {
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([]result, len(ds))
		for i, d := range ds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i] = cli(t, d.server(), append(round.args(i), "--timeout", "60s")...)
			}()
		}
		close(start)
		wg.Wait()
		for i, r := range results {
			ops++
			if r.code != 0 {
				t.Fatalf("%s on dc-%d failed (exit %d): %s", round.name, i+1, r.code, r.stderr)
			}
			n := strings.Count(r.stderr, "retrying in")
			retries += n
			if n > 0 && !strings.Contains(r.stderr, "federation busy (") {
				t.Errorf("dc-%d's retry notice does not say why: %s", i+1, r.stderr)
			}
		}
		st := expectFederation(t, ds, nil)
		want := map[string]int{"add": 5, "update": 5, "remove": 0}[round.name]
		for _, d := range ds {
			if s := status(t, d); s.GIPs != want {
				t.Fatalf("after the %s round %s holds %d GIPs, want %d", round.name, d.name, s.GIPs, want)
			}
		}
		t.Logf("%s round: 5 operations done at epoch %d", round.name, st.Federation.Epoch)
	}
	after := expectFederation(t, ds, nil).Federation.Epoch
	if after != before+uint64(ops) {
		t.Fatalf("epoch went from %d to %d after %d operations: some were applied twice or lost", before, after, ops)
	}
	t.Logf("%d operations from 5 DCs at once, all applied once; %d busy refusals retried", ops, retries)
	if retries == 0 {
		t.Fatal("no operation was refused as busy: the operations did not contend, so the test showed nothing")
	}
}
