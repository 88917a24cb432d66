package httpapi

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

func randApplyResult(r *rand.Rand) vipsmart.ApplyResult {
	words := []string{"", "g1", "dc-1", "web", "add", "change", "remove", "gip", "vip", "mode: failover -> anycast", "a<b>&c", `q"`, "é"}
	w := func() string { return words[r.IntN(len(words))] }
	res := vipsmart.ApplyResult{ResourceVersion: w(), Added: r.IntN(100) - 5, Changed: r.IntN(9), Removed: r.IntN(9), Applied: r.IntN(2) == 0, OpID: w(), Epoch: r.Uint64(), NewVersion: w()}
	if r.IntN(6) > 0 {
		res.Changes = []vipsmart.ObjectChange{}
		for range r.IntN(6) {
			c := vipsmart.ObjectChange{Kind: w(), Name: w(), Action: w()}
			if r.IntN(2) == 0 {
				c.Fields = []string{w(), w()}
			}
			switch r.IntN(3) {
			case 0:
				g := vipsmart.GIP{Name: w(), Mode: vipsmart.GIPMode(w()), Preempt: r.IntN(2) == 0, Partition: vipsmart.PartitionPolicy(w())}
				switch r.IntN(3) {
				case 0:
					g.Address = netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(256)), 1})
				case 1:
					g.Address = netip.MustParseAddr("fe80::1%eth0")
				}
				if r.IntN(4) > 0 {
					g.Placements = []vipsmart.Placement{}
					for range r.IntN(4) {
						g.Placements = append(g.Placements, vipsmart.Placement{DC: w(), Priority: r.IntN(300) - 50, VIP: w()})
					}
				}
				c.GIP = &g
			case 1:
				c.VIP = &vipsmart.VIP{Name: w(), Address: netip.MustParseAddr("192.0.2.1"), Created: time.Unix(int64(r.IntN(1e9)), 0).UTC(), Check: &vipsmart.Check{URL: "tcp://127.0.0.1:1", Interval: vipsmart.Duration(time.Second)}}
			}
			res.Changes = append(res.Changes, c)
		}
	}
	return res
}

// TestApplyResultFastIsTheLibrarys: the answers a daemon writes are read
// fast (those without escapes) into what encoding/json reads from them.
func TestApplyResultFastIsTheLibrarys(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	fast := 0
	for range 500 {
		res := randApplyResult(r)
		data, err := res.AppendJSON(nil, true)
		if err != nil {
			t.Fatal(err)
		}
		if checkApplyResultFast(t, data) {
			fast++
		}
	}
	if fast < 50 {
		t.Fatalf("only %d of 500 answers were read fast", fast)
	}
}

func checkApplyResultFast(t *testing.T, data []byte) bool {
	t.Helper()
	return checkFastRead(t, data, func(r *vipsmart.ApplyResult) bool { return (&applyResultOut{r}).decodeFast(data) }, libraryUnmarshal[vipsmart.ApplyResult])
}

// FuzzApplyResult: the fast read of apply's answer never reads anything
// encoding/json would not read the same way.
func FuzzApplyResult(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 20 {
		res := randApplyResult(r)
		data, _ := res.AppendJSON(nil, true)
		f.Add(data)
	}
	f.Add([]byte(`{"changes":[{"gip":{"address":"1.2.3.4x"}}]}`))
	f.Add([]byte(`{"changes":[{"gip":{"address":""}}],"epoch":18446744073709551615}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkApplyResultFast(t, data)
	})
}

// BenchmarkApplyResultDecode: the answer of an apply of 10,000 GIPs in 10
// DCs, read by encoding/json and by decodeFast.
func BenchmarkApplyResultDecode(b *testing.B) {
	res := vipsmart.ApplyResult{ResourceVersion: "1-0123456789abcdef", Changes: make([]vipsmart.ObjectChange, 10000), Added: 10000, Applied: true, OpID: "op-1", Epoch: 2, NewVersion: "2-0123456789abcdef"}
	for i := range res.Changes {
		g := vipsmart.GIP{Name: fmt.Sprintf("g%05d", i), Address: netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), Mode: vipsmart.ModeFailover, Preempt: true, Partition: "available"}
		for j := range 10 {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: fmt.Sprintf("dc-%d", j+1), Priority: 200 - j})
		}
		res.Changes[i] = vipsmart.ObjectChange{Kind: vipsmart.KindGIP, Name: g.Name, Action: vipsmart.ActionAdd, GIP: &g}
	}
	data, _ := res.AppendJSON(nil, true)
	benchFastRead(b, data, func(res *vipsmart.ApplyResult) bool { return (&applyResultOut{res}).decodeFast(data) }, libraryUnmarshal[vipsmart.ApplyResult])
}
