package httpapi

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

func randStatusInfo(r *rand.Rand) vipsmart.StatusInfo {
	words := []string{"", "g1", "dc-1", "none", "bgp", "announced", "pending", "gip-standby", "no established BGP session", "a<b>&c", `q"`, "é", "eth0"}
	w := func() string { return words[r.IntN(len(words))] }
	tm := func() time.Time {
		switch r.IntN(4) {
		case 0:
			return time.Time{}
		case 1:
			return time.Unix(r.Int64N(1<<33), r.Int64N(1e9)).In(time.FixedZone("", 60*(r.IntN(1441)-720)))
		}
		return time.Unix(r.Int64N(1<<31), r.Int64N(1e9)).UTC()
	}
	addr := func() netip.Addr {
		switch r.IntN(3) {
		case 0:
			return netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(256)), 1})
		case 1:
			return netip.MustParseAddr("fe80::1%eth0")
		}
		return netip.Addr{}
	}
	st := vipsmart.StatusInfo{Name: w(), Address: addr(), Port: uint16(r.Uint32()), Identity: w(), Status: vipsmart.Status(w()), Epoch: r.Uint64(), OpID: w(), VIPs: r.IntN(100) - 5, GIPs: r.IntN(20000)}
	if r.IntN(3) == 0 {
		d := tm()
		st.Deadline = &d
		tl := vipsmart.Duration(r.Int64N(1e11))
		st.TimeLeft = &tl
	}
	if r.IntN(3) > 0 {
		st.Federation = &vipsmart.FederationInfo{ID: w(), Epoch: r.Uint64(), Members: []vipsmart.DC{{Name: w(), Address: addr(), Port: 7000, Identity: w()}}}
	}
	if r.IntN(6) > 0 {
		st.Announced = []vipsmart.Announced{}
		prev := tm()
		for range r.IntN(8) {
			if r.IntN(2) == 0 {
				prev = tm()
			}
			st.Announced = append(st.Announced, vipsmart.Announced{Announcement: vipsmart.Announcement{Addr: addr(), Kind: vipsmart.AnnounceKind(w()), Name: w(), Interface: w()}, Via: w(), Since: prev, State: vipsmart.AnnounceState(w()), Reason: w()})
		}
	}
	if r.IntN(3) == 0 {
		st.BGPPeers = []vipsmart.BGPPeer{{Address: addr(), ASN: r.Uint32(), State: w(), BFD: w(), Families: []string{w()}}}
	}
	return st
}

// TestStatusFastIsTheLibrarys: the statuses a daemon writes are read fast
// (those without escapes) into what encoding/json reads from them.
func TestStatusFastIsTheLibrarys(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	fast := 0
	for range 1000 {
		st := randStatusInfo(r)
		data, err := vipsmart.AppendStatusJSON(nil, &st)
		if err != nil {
			t.Fatal(err)
		}
		if checkStatusFast(t, data) {
			fast++
		}
	}
	for _, s := range []string{`{"port":-0}`, `{"port":65536}`, `{"port":65535,"epoch":-0}`, `{"gips":-0}`} {
		checkStatusFast(t, []byte(s))
	}
	if fast < 100 {
		t.Fatalf("only %d of 1000 statuses were read fast", fast)
	}
}

func checkStatusFast(t *testing.T, data []byte) bool {
	t.Helper()
	return checkFastRead(t, data, func(st *vipsmart.StatusInfo) bool { return (&statusOut{st}).decodeFast(data) }, libraryUnmarshal[vipsmart.StatusInfo])
}

// FuzzStatusAnswer: the fast read of a status never reads anything
// encoding/json would not read the same way.
func FuzzStatusAnswer(f *testing.F) {
	r := rand.New(rand.NewPCG(11, 12))
	for range 20 {
		st := randStatusInfo(r)
		data, _ := vipsmart.AppendStatusJSON(nil, &st)
		f.Add(data)
	}
	f.Add([]byte(`{"announced":[{"since":"2026-11-26T07:00:00Z"},{"since":"2026-11-26T07:00:00+01:00"},{"since":"2026-11-26T07:00:00Z"}],"port":65536}`))
	f.Add([]byte(`{"announced":[{"address":"1.2.3.4x","since":"0000-01-01T00:00:00Z"}],"deadline":null,"federation":{"id":1}}`))
	f.Add([]byte(`{"port":-0,"gips":-0,"vips":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStatusFast(t, data)
	})
}

// BenchmarkStatusDecode: a member's status with 10,000 GIPs, read by
// encoding/json and by decodeFast.
//
//	go test ./httpapi -run '^$' -bench BenchmarkStatusDecode -benchmem
func BenchmarkStatusDecode(b *testing.B) {
	since := time.Date(2026, 11, 26, 7, 0, 0, 123456789, time.UTC)
	st := vipsmart.StatusInfo{Name: "dc-2", Address: netip.MustParseAddr("127.0.0.1"), Port: 7000, Status: vipsmart.StatusMember, Epoch: 12, Federation: &vipsmart.FederationInfo{ID: "f", Epoch: 12}, GIPs: 10000}
	for i := range 10 {
		st.Federation.Members = append(st.Federation.Members, vipsmart.DC{Name: fmt.Sprintf("dc-%d", i+1), Address: netip.MustParseAddr("127.0.0.1"), Port: uint16(7000 + i), Identity: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})
	}
	for i := range 10000 {
		st.Announced = append(st.Announced, vipsmart.Announced{Announcement: vipsmart.Announcement{Addr: netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), Kind: vipsmart.AnnounceGIPStandby, Name: fmt.Sprintf("g%05d", i)}, Via: "none", Since: since, State: vipsmart.AnnounceUp})
	}
	data, _ := vipsmart.AppendStatusJSON(nil, &st)
	benchFastRead(b, data, func(st *vipsmart.StatusInfo) bool { return (&statusOut{st}).decodeFast(data) }, libraryUnmarshal[vipsmart.StatusInfo])
}
