package annset

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// NormalizeSorted keeps what Normalize keeps, sorted by address, with the
// same error, on a set that is unsorted, repeats addresses with each kind in
// each order, and holds mapped, zoned and invalid entries.
func TestNormalizeSortedMatchesNormalize(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	in := []vipsmart.Announcement{
		{Addr: a("10.0.0.3"), Kind: vipsmart.AnnounceGIPStandby, Name: "s3"},
		{Addr: a("10.0.0.1"), Kind: vipsmart.AnnounceGIPActive, Name: "a1"},
		{Addr: a("::ffff:10.0.0.3"), Kind: vipsmart.AnnounceVIP, Name: "v3"},
		{Addr: a("10.0.0.1"), Kind: vipsmart.AnnounceGIPStandby, Name: "s1"},
		{Addr: a("10.0.0.1"), Kind: vipsmart.AnnounceGIPActive, Name: "a1-second"},
		{Addr: a("fe80::1%eth0"), Kind: vipsmart.AnnounceGIPStandby, Name: "z"},
		{Addr: a("10.0.0.2"), Kind: "bogus", Name: "bad-kind"},
		{Name: "no-addr", Kind: vipsmart.AnnounceVIP},
		{Addr: a("10.0.0.0"), Kind: vipsmart.AnnounceGIPStandby, Name: "s0"},
		{Addr: a("10.0.0.0"), Kind: vipsmart.AnnounceGIPStandby, Name: "s0-second"},
	}
	for _, tc := range [][]vipsmart.Announcement{in, sortedByAddr(in)} {
		m, errM := Normalize(tc)
		got, errS := NormalizeSorted(tc)
		var want []vipsmart.Announcement
		for _, v := range m {
			want = append(want, v)
		}
		slices.SortFunc(want, func(x, y vipsmart.Announcement) int { return x.Addr.Compare(y.Addr) })
		if !slices.Equal(got, want) {
			t.Errorf("NormalizeSorted = %v, want %v", got, want)
		}
		if errM == nil || errS == nil || errM.Error() != errS.Error() {
			t.Errorf("errors differ: %v / %v", errS, errM)
		}
	}
}

func sortedByAddr(in []vipsmart.Announcement) []vipsmart.Announcement {
	out := slices.Clone(in)
	slices.SortStableFunc(out, func(x, y vipsmart.Announcement) int { return x.Addr.Compare(y.Addr) })
	return out
}
