package vipsmart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func randAddr(r *rand.Rand, pick func() string) netip.Addr {
	switch r.IntN(4) {
	case 0:
		return netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
	case 1:
		return netip.MustParseAddr("2001:db8::1").WithZone(pick())
	case 2:
		return netip.MustParseAddr("::ffff:192.0.2.1")
	}
	return netip.Addr{}
}

func randTime(r *rand.Rand) time.Time {
	switch r.IntN(6) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(r.Int64N(1<<34), r.Int64N(1e9)).In(time.FixedZone("x", 3600*(r.IntN(25)-12)+60*r.IntN(2)*30))
	case 2:
		return time.Date(10000+r.IntN(5), 1, 1, 0, 0, 0, 0, time.UTC) // MarshalJSON fails
	}
	return time.Unix(r.Int64N(1<<31), r.Int64N(1e9)).UTC()
}

func randStatus(r *rand.Rand) StatusInfo {
	pick := func() string { return weirdStrings[r.IntN(len(weirdStrings))] }
	st := StatusInfo{Name: pick(), Address: randAddr(r, pick), Port: uint16(r.Uint32()), Identity: pick(), Status: Status(pick()), Epoch: r.Uint64(), OpID: pick(), VIPs: r.IntN(1 << 20), GIPs: r.IntN(1<<20) - 5}
	if r.IntN(3) == 0 {
		d := randTime(r)
		st.Deadline = &d
	}
	if r.IntN(3) == 0 {
		tl := Duration(r.Int64N(1e12) - 1e6)
		st.TimeLeft = &tl
	}
	if r.IntN(3) > 0 {
		st.Federation = &FederationInfo{ID: pick(), Epoch: r.Uint64()}
		for range r.IntN(4) {
			st.Federation.Members = append(st.Federation.Members, DC{Name: pick(), Address: randAddr(r, pick), Port: uint16(r.Uint32()), Identity: pick(), Witness: r.IntN(2) == 0})
		}
	}
	if r.IntN(6) > 0 {
		st.Announced = []Announced{}
	}
	for range r.IntN(8) * min(len(st.Announced)+1, 1) {
		a := Announced{Announcement: Announcement{Addr: randAddr(r, pick), Kind: AnnounceKind(pick()), Name: pick()}, Via: pick(), Since: randTime(r), State: AnnounceState(pick())}
		if r.IntN(2) == 0 {
			a.Interface = pick()
		}
		if r.IntN(2) == 0 {
			a.Reason = pick()
		}
		st.Announced = append(st.Announced, a)
	}
	switch r.IntN(3) {
	case 0:
		st.BGPPeers = []BGPPeer{}
	case 1:
		up := Duration(time.Minute)
		st.BGPPeers = []BGPPeer{{Address: randAddr(r, pick), ASN: r.Uint32(), State: pick(), BFD: pick(), Uptime: &up, Families: []string{pick()}, LastError: pick()}}
	}
	return st
}

// checkStatusJSON fails t unless AppendStatusJSON gives json.Marshal's
// bytes for st, or fails when it fails.
func checkStatusJSON(t *testing.T, st *StatusInfo) {
	t.Helper()
	want, werr := json.Marshal(st)
	got, err := AppendStatusJSON([]byte("x"), st)
	if (err != nil) != (werr != nil) {
		t.Fatalf("%#v: error %v, encoding/json's %v", st, err, werr)
	}
	if err == nil && !bytes.Equal(got[1:], want) {
		t.Fatalf("%#v:\n got %s\nwant %s", st, got[1:], want)
	}
}

func TestStatusJSONIsTheLibrarysEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 5000 {
		st := randStatus(r)
		checkStatusJSON(t, &st)
	}
}

// FuzzStatusJSON: whatever the strings, numbers and times of a status,
// AppendStatusJSON writes what encoding/json writes.
func FuzzStatusJSON(f *testing.F) {
	f.Add("dc-1", "gip-standby", "g00001", "", "none", "announced", "", int64(1764140000), int64(123456789), uint64(7), uint16(7000), "member")
	f.Add("<&>", "\u2028", "bad\xff", "eth0", "bgp", "pending", "no established BGP session", int64(-62135596800), int64(0), uint64(0), uint16(0), "")
	f.Fuzz(func(t *testing.T, name, kind, gname, iface, via, state, reason string, sec, nsec int64, epoch uint64, port uint16, status string) {
		since := time.Unix(sec, nsec%1e9).UTC()
		addr, _ := netip.ParseAddr(iface)
		st := StatusInfo{Name: name, Address: addr, Port: port, Status: Status(status), Epoch: epoch, OpID: reason, GIPs: int(nsec),
			Announced: []Announced{{Announcement: Announcement{Addr: addr, Kind: AnnounceKind(kind), Name: gname, Interface: iface}, Via: via, Since: since, State: AnnounceState(state), Reason: reason}}}
		if sec%2 == 0 {
			st.Deadline = &since
		}
		checkStatusJSON(t, &st)
	})
}

// BenchmarkStatusJSON: a member's status with 10,000 GIPs (one standby
// announcement each), as GET /v1/status encodes it.
//
//	go test . -run '^$' -bench BenchmarkStatusJSON -benchmem
func BenchmarkStatusJSON(b *testing.B) {
	since := time.Date(2026, 11, 26, 7, 0, 0, 123456789, time.UTC)
	st := StatusInfo{Name: "dc-2", Address: netip.MustParseAddr("127.0.0.1"), Port: 7000, Status: StatusMember, Epoch: 12, Federation: &FederationInfo{ID: "f", Epoch: 12}, GIPs: 10000}
	for i := range 10 {
		st.Federation.Members = append(st.Federation.Members, DC{Name: "dc-" + strconv.Itoa(i+1), Address: netip.MustParseAddr("127.0.0.1"), Port: uint16(7000 + i), Identity: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})
	}
	for i := range 10000 {
		st.Announced = append(st.Announced, Announced{Announcement: Announcement{Addr: netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), Kind: AnnounceGIPStandby, Name: fmt.Sprintf("g%05d", i)}, Via: "none", Since: since, State: AnnounceUp})
	}
	b.Run("library", func(b *testing.B) {
		for b.Loop() {
			var buf bytes.Buffer
			if err := json.NewEncoder(&buf).Encode(&st); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(buf.Len()))
		}
	})
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			out, err := AppendStatusJSON(make([]byte, 0, StatusJSONSizeHint(&st)), &st)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(out)))
		}
	})
}
