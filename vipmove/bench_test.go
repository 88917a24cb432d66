package vipmove

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkStep10kVIPs is one node's Step (and Bound) with 10,000 VIPs on
// 3 nodes, all held: what the mover does every 25 ms.
func BenchmarkStep10kVIPs(b *testing.B) {
	now := time.Unix(1000, 0)
	e := New("n1", DefaultTimers())
	v := View{Rev: 10, Beats: map[string]Beat{}, Holders: map[string]Holding{}}
	for i, n := range []string{"n1", "n2", "n3"} {
		v.Beats[n] = Beat{Node: n, Inc: int64(i + 1), Rev: int64(i + 1)}
	}
	for i := range 10000 {
		name := fmt.Sprintf("vip%05d", i)
		v.VIPs = append(v.VIPs, VIP{Name: name})
		v.Holders[name] = Holding{Node: []string{"n1", "n2", "n3"}[i%3], Inc: int64(i%3 + 1), Rev: 5}
		e.SetHealth(name, true)
	}
	e.Observe(now, v)
	e.Done(Action{Kind: Register, SentAt: now}, Result{OK: true, Inc: 1, Rev: 1})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Millisecond)
		e.Step(now)
		e.Bound(now)
	}
}
