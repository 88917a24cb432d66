package vipsmart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// weirdStrings are strings encoding/json escapes in every way it can.
var weirdStrings = []string{"", "web", "dc-1", `a"b\c`, "<&>", "tab\there\nnl\r\b\f", "\x00\x01\x1f\x7f", "é ü 日本", "\u2028\u2029", "bad\xffutf8\xc3", "x\u2028y<z"}

func randGIP(r *rand.Rand) GIP {
	pick := func() string { return weirdStrings[r.IntN(len(weirdStrings))] }
	g := GIP{Name: pick(), Mode: GIPMode(pick()), Preempt: r.IntN(2) == 0, Partition: PartitionPolicy(pick())}
	switch r.IntN(4) {
	case 0:
		g.Address = netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
	case 1:
		g.Address = netip.MustParseAddr("2001:db8::1").WithZone(pick())
	case 2:
		g.Address = netip.MustParseAddr("::ffff:192.0.2.1")
	}
	if r.IntN(5) > 0 {
		g.Placements = []Placement{}
		for range r.IntN(12) {
			g.Placements = append(g.Placements, Placement{DC: pick(), Priority: r.IntN(600) - 100, VIP: pick()})
		}
	}
	return g
}

// plainResult is ApplyResult without its MarshalJSON: what the library
// writes from the field tags.
type plainResult ApplyResult

func encodeWith(t *testing.T, v any, escapeHTML bool, indent string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAppendGIPJSONIsTheLibrarysEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		g := randGIP(r)
		want, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendGIPJSON(nil, &g, true); !bytes.Equal(got, want) {
			t.Fatalf("GIP %d %#v:\n got %s\nwant %s", i, g, got, want)
		}
		want = bytes.TrimSuffix(encodeWith(t, g, false, ""), []byte("\n"))
		if got := AppendGIPJSON([]byte("x"), &g, false); !bytes.Equal(got[1:], want) {
			t.Fatalf("GIP %d %#v unescaped:\n got %s\nwant %s", i, g, got[1:], want)
		}
	}
}

func TestApplyResultJSONIsTheLibrarysEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	pick := func() string { return weirdStrings[r.IntN(len(weirdStrings))] }
	for i := range 300 {
		res := ApplyResult{ResourceVersion: pick(), Added: r.IntN(10), Changed: r.IntN(10), Removed: r.IntN(10), Applied: r.IntN(2) == 0, OpID: pick(), Epoch: r.Uint64(), NewVersion: pick()}
		if r.IntN(8) > 0 {
			res.Changes = []ObjectChange{}
		}
		for range r.IntN(6) * min(len(res.Changes)+1, 1) {
			c := ObjectChange{Kind: pick(), Name: pick(), Action: pick()}
			switch r.IntN(3) {
			case 0:
				c.Fields = []string{}
			case 1:
				c.Fields = []string{pick(), pick()}
			}
			switch r.IntN(3) {
			case 0:
				g := randGIP(r)
				c.GIP = &g
			case 1:
				c.VIP = &VIP{Name: pick(), Address: netip.MustParseAddr("192.0.2.7"), Interface: pick(), Created: time.Unix(int64(r.IntN(1e9)), 0).UTC(), Preempt: r.IntN(2) == 0,
					Check: &Check{URL: "http://a/<x>&" + pick(), Interval: Duration(time.Second), Rise: 2}, Nodes: []VIPNode{{Node: pick(), Priority: 3}}}
			}
			res.Changes = append(res.Changes, c)
		}
		for _, esc := range []bool{true, false} {
			for _, ind := range []string{"", "  "} {
				want := encodeWith(t, plainResult(res), esc, ind)
				if got := encodeWith(t, res, esc, ind); !bytes.Equal(got, want) {
					t.Fatalf("result %d (escapeHTML %v, indent %q):\n got %s\nwant %s", i, esc, ind, got, want)
				}
			}
		}
		want, _ := json.Marshal(plainResult(res))
		if got, err := res.AppendJSON([]byte{}, true); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("result %d AppendJSON escaped (%v):\n got %s\nwant %s", i, err, got, want)
		}
		var back ApplyResult
		if err := json.Unmarshal(encodeWith(t, res, true, ""), &back); err != nil {
			t.Fatalf("result %d does not decode: %v", i, err)
		}
	}
}

// BenchmarkApplyResultJSON: the answer of an apply of 10,000 GIPs in 10
// DCs, encoded by the library from the field tags and by MarshalJSON.
func BenchmarkApplyResultJSON(b *testing.B) {
	res := ApplyResult{ResourceVersion: "1-0123456789abcdef", Changes: make([]ObjectChange, 10000), Added: 10000, Applied: true, OpID: "op-1", Epoch: 2, NewVersion: "2-0123456789abcdef"}
	for i := range res.Changes {
		g := GIP{Name: fmt.Sprintf("g%05d", i), Address: netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), Mode: ModeFailover, Preempt: true, Partition: "available"}
		for j := range 10 {
			g.Placements = append(g.Placements, Placement{DC: fmt.Sprintf("dc-%d", j+1), Priority: 200 - j})
		}
		res.Changes[i] = ObjectChange{Kind: KindGIP, Name: g.Name, Action: ActionAdd, GIP: &g}
	}
	for _, c := range []struct {
		name string
		v    any
	}{{"reflect", plainResult(res)}, {"marshaljson", res}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var buf bytes.Buffer
				if err := json.NewEncoder(&buf).Encode(c.v); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(buf.Len()))
			}
		})
	}
}
