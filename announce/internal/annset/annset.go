// Package annset holds what the announcers share: checking and
// deduplicating a desired set, and sorting what is announced.
package annset

import (
	"errors"
	"net/netip"
	"slices"

	"github.com/vipsmart/vipsmart"
)

// rank orders the kinds when one address is desired twice: the strongest
// wins (a healthy VIP, then an active GIP, then a standby placement).
func rank(k vipsmart.AnnounceKind) int {
	switch k {
	case vipsmart.AnnounceVIP:
		return 3
	case vipsmart.AnnounceGIPActive:
		return 2
	case vipsmart.AnnounceGIPStandby:
		return 1
	}
	return 0
}

// check returns d, the i-th desired entry, with its address unmapped and
// its zone dropped, or why it is refused (code invalid).
func check(i int, d vipsmart.Announcement) (vipsmart.Announcement, error) {
	if !d.Addr.IsValid() {
		return d, vipsmart.Errorf(vipsmart.EINVALID, "address", "announcement %d (%q): no valid address", i, d.Name)
	}
	if rank(d.Kind) == 0 {
		return d, vipsmart.Errorf(vipsmart.EINVALID, "kind", "announcement of %s: unknown kind %q (want vip, gip-active or gip-standby)", d.Addr, d.Kind)
	}
	d.Addr = d.Addr.Unmap().WithZone("")
	return d, nil
}

// Normalize checks desired and returns it keyed by address (IPv4-mapped
// IPv6 addresses are unmapped, zones dropped). An address desired more than
// once keeps its strongest kind (vip, gip-active, gip-standby), the first
// one on a tie. Entries with an invalid address or an unknown kind are left
// out and reported in the returned error (code invalid), so that one bad
// entry does not hold back the others.
func Normalize(desired []vipsmart.Announcement) (map[netip.Addr]vipsmart.Announcement, error) {
	out := make(map[netip.Addr]vipsmart.Announcement, len(desired))
	var errs []error
	for i, d := range desired {
		d, err := check(i, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := out[d.Addr]; ok && rank(prev.Kind) >= rank(d.Kind) {
			continue
		}
		out[d.Addr] = d
	}
	return out, errors.Join(errs...)
}

// NormalizeSorted is Normalize returning a slice sorted by address instead
// of a map: the same checks, the same choice of one entry per address (its
// strongest kind, the first one on a tie), the same error. A desired set
// already sorted by address (as the daemon hands it) is not sorted again, and
// no map is built: an announcer that keeps its state sorted (none) records
// 10,000 GIPs without rebuilding maps of 10,000 entries at each Set.
func NormalizeSorted(desired []vipsmart.Announcement) ([]vipsmart.Announcement, error) {
	out := make([]vipsmart.Announcement, 0, len(desired))
	var errs []error
	for i, d := range desired {
		d, err := check(i, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, d)
	}
	byAddr := func(a, b vipsmart.Announcement) int { return a.Addr.Compare(b.Addr) }
	if !slices.IsSortedFunc(out, byAddr) {
		slices.SortStableFunc(out, byAddr) // stable: the first of a tie stays first
	}
	// One entry per address: the first of the strongest kind in each run.
	n := 0
	for i := 0; i < len(out); {
		best := i
		j := i + 1
		for ; j < len(out) && out[j].Addr == out[i].Addr; j++ {
			if rank(out[j].Kind) > rank(out[best].Kind) {
				best = j
			}
		}
		out[n] = out[best]
		n++
		i = j
	}
	return slices.Clip(out[:n]), errors.Join(errs...)
}

// Sorted returns the values of m sorted by address.
func Sorted(m map[netip.Addr]vipsmart.Announced) []vipsmart.Announced {
	out := make([]vipsmart.Announced, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b vipsmart.Announced) int { return a.Addr.Compare(b.Addr) })
	return out
}

// HostPrefix returns the /32 or /128 of ip.
func HostPrefix(ip netip.Addr) netip.Prefix {
	return netip.PrefixFrom(ip, ip.BitLen())
}
