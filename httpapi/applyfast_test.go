package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// libraryApplyBody is what decode read before applyfast.go: ok is false
// where decode refused the body.
func libraryApplyBody(data []byte) (ApplyBody, bool) {
	var b ApplyBody
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || dec.More() {
		return b, false
	}
	return b, true
}

var applyBodySeeds = []string{
	`{"vips":[],"gips":[]}`,
	`{"vips":null,"gips":null,"prune":true,"dry_run":false,"resource_version":"7-3f9a2c1b0d4e5f60"}`,
	`{"gips":[{"name":"g","address":"192.0.2.1","mode":"failover","preempt":true,"placements":[{"dc":"dc-1","priority":200},{"dc":"dc-2","priority":-3,"vip":"web"}],"partition":"consistent"}]}`,
	` { "gips" : [ { "name" : "g" , "address" : "2001:db8::1" , "placements" : [ ] , "preempt" : null } ] } ` + "\n",
	`{"gips":[{"name":"g","address":"192.0.2.1","placements":null}]}`,
	`{"vips":[{"name":"v","address":"192.0.2.9","check":{"url":"tcp://127.0.0.1:1","interval":"1s"},"nodes":[{"node":"n1","priority":5}],"preempt":true}],"gips":[]}`,
	`{"vips":[{"name":"v","address":"192.0.2.9","bogus":1}],"gips":[]}`,
	`{"gips":[{"name":"g","Address":"192.0.2.1"}]}`,
	`{"gips":[{"name":"g","name":"h"}]}`,
	`{"gips":[{"name":"g\u0041","address":"192.0.2.1"}]}`,
	`{"gips":[{"name":"é","address":"192.0.2.1"}]}`,
	`{"gips":[{"name":"g","placements":[{"dc":"a","priority":1.0}]}]}`,
	`{"gips":[{"name":"g","placements":[{"dc":"a","priority":1e2}]}]}`,
	`{"gips":[{"name":"g","placements":[{"dc":"a","priority":01}]}]}`,
	`{"gips":[{"name":"g","placements":[{"dc":"a","priority":99999999999999999999}]}]}`,
	`{"gips":[{"name":"g","placements":[null]}]}`,
	`{"gips":[{"name":null}]}`,
	`{"gips":[null]}`,
	`{"gips":[{"name":"g","preempt":"yes"}]}`,
	`{"gips":[{"name":"g","preempt":truex}]}`,
	`{"prune":true}{}`, `{"prune":true}]`, `{"prune":true`, `{"prune":true,}`, `{,}`, `{}`, `null`, `[]`, ``, `{"vips":[}`,
	`{"vips":[{"name":"v"}]]`, `{"vips":5,"gips":[]}`, `{"vips":{"a":[1,"]"]},"gips":[]}`, `{"extra":1}`,
}

// TestApplyBodyFastIsTheLibrarys: where the fast read of an apply body
// succeeds, encoding/json reads the same body into the same value; the
// body the CLI sends is read fast.
func TestApplyBodyFastIsTheLibrarys(t *testing.T) {
	fastOnes := 0
	for _, s := range applyBodySeeds {
		if checkApplyBodyFast(t, []byte(s)) {
			fastOnes++
		}
	}
	if fastOnes < 5 {
		t.Fatalf("only %d of the seeds were read fast", fastOnes)
	}
	req := vipsmart.ApplyRequest{ResourceVersion: "3-0011223344556677", Prune: true, VIPs: []vipsmart.VIP{{Name: "v", Address: netip.MustParseAddr("192.0.2.9")}}}
	for i := range 50 {
		g := vipsmart.GIP{Name: fmt.Sprintf("g%d", i), Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Mode: vipsmart.ModeFailover, Preempt: i%2 == 0, Partition: "available"}
		for j := range i % 12 {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: fmt.Sprintf("dc-%d", j), Priority: 100 - j, VIP: map[bool]string{true: "web"}[j%3 == 0]})
		}
		req.GIPs = append(req.GIPs, g)
	}
	data, err := json.Marshal(ApplyBodyOf(req))
	if err != nil {
		t.Fatal(err)
	}
	var b ApplyBody
	if !b.decodeFast(data) {
		t.Fatal("the body the CLI sends is not read fast")
	}
	checkApplyBodyFast(t, data)
}

func checkApplyBodyFast(t *testing.T, data []byte) bool {
	t.Helper()
	return checkFastRead(t, data, func(b *ApplyBody) bool { return b.decodeFast(data) }, libraryApplyBody)
}

// FuzzApplyBody: the fast read of POST /v1/apply bodies never reads
// anything encoding/json would not read the same way.
func FuzzApplyBody(f *testing.F) {
	for _, s := range applyBodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkApplyBodyFast(t, data)
	})
}

// BenchmarkApplyBodyDecode: the body of an apply of 10,000 GIPs in 10
// DCs, read by encoding/json and by decodeFast.
func BenchmarkApplyBodyDecode(b *testing.B) {
	req := vipsmart.ApplyRequest{VIPs: []vipsmart.VIP{}, ResourceVersion: "1-0123456789abcdef"}
	for i := range 10000 {
		g := vipsmart.GIP{Name: fmt.Sprintf("g%05d", i), Address: netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), Mode: vipsmart.ModeFailover, Preempt: true, Partition: "available"}
		for j := range 10 {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: fmt.Sprintf("dc-%d", j+1), Priority: 200 - j})
		}
		req.GIPs = append(req.GIPs, g)
	}
	data, _ := json.Marshal(ApplyBodyOf(req))
	benchFastRead(b, data, func(body *ApplyBody) bool { return body.decodeFast(data) }, libraryApplyBody)
}

// TestApplyBodyJSONIsTheLibrarys: the body Client.Apply sends is
// json.Marshal's, byte for byte.
func TestApplyBodyJSONIsTheLibrarys(t *testing.T) {
	words := []string{"", "g1", "dc-1", "web", "a<b>&c", `q"\`, "é\u2028", "\x01\xff", "available"}
	for i := range 400 {
		w := func(k int) string { return words[(i*5+k*3+i/7)%len(words)] }
		b := ApplyBody{Prune: i%2 == 0, DryRun: i%3 == 0, ResourceVersion: w(1)}
		if i%5 != 0 {
			b.VIPs = []VIPRequest{{Name: w(2), Address: "192.0.2.1", Interface: w(3), Preempt: i%4 == 0}}
		}
		if i%7 != 0 {
			b.GIPs = []GIPRequest{}
		}
		for k := range i % 4 {
			g := GIPRequest{Name: w(k), Address: w(k + 1), Mode: vipsmart.GIPMode(w(k + 2)), Partition: vipsmart.PartitionPolicy(w(k + 3))}
			if k%2 == 0 {
				p := k%4 == 0
				g.Preempt = &p
			}
			if k%3 != 2 {
				g.Placements = []vipsmart.Placement{}
				for j := range k + i%3 {
					g.Placements = append(g.Placements, vipsmart.Placement{DC: w(j), Priority: j*37 - 20, VIP: w(j + 4)})
				}
			}
			b.GIPs = append(b.GIPs, g)
		}
		want, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.appendJSON(nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("body %d (%v):\n got %s\nwant %s", i, err, got, want)
		}
	}
}

// TestApplyListsSizedOnce: the body of 2,000 GIPs becomes a request (server)
// and a request becomes a body (client) with their lists sized once, not
// grown by doubling (a copy of every GIP per doubling before).
func TestApplyListsSizedOnce(t *testing.T) {
	const n = 2000
	var body ApplyBody
	for i := range n {
		body.GIPs = append(body.GIPs, GIPRequest{Name: fmt.Sprintf("g%05d", i), Address: fmt.Sprintf("10.1.%d.%d", i>>8, i&255),
			Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 200}, {DC: "dc-2", Priority: 100}}})
	}
	body.VIPs = []VIPRequest{}
	req, err := body.request()
	if err != nil {
		t.Fatal(err)
	}
	if cap(req.GIPs) != n {
		t.Fatalf("request: GIPs of capacity %d for %d", cap(req.GIPs), n)
	}
	if b := ApplyBodyOf(req); cap(b.GIPs) != n || len(b.GIPs) != n {
		t.Fatalf("body: GIPs of length %d, capacity %d for %d", len(b.GIPs), cap(b.GIPs), n)
	}
}
