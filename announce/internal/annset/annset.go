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
		if !d.Addr.IsValid() {
			errs = append(errs, vipsmart.Errorf(vipsmart.EINVALID, "address", "announcement %d (%q): no valid address", i, d.Name))
			continue
		}
		if rank(d.Kind) == 0 {
			errs = append(errs, vipsmart.Errorf(vipsmart.EINVALID, "kind", "announcement of %s: unknown kind %q (want vip, gip-active or gip-standby)", d.Addr, d.Kind))
			continue
		}
		d.Addr = d.Addr.Unmap().WithZone("")
		if prev, ok := out[d.Addr]; ok && rank(prev.Kind) >= rank(d.Kind) {
			continue
		}
		out[d.Addr] = d
	}
	return out, errors.Join(errs...)
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
