package vipsmart

import (
	"net/netip"
	"slices"
)

// MaxDCNodes is the most node addresses a DC's member record carries
// (DC.Nodes): far more than the two or three nodes a DC runs
// (docs/ha.md), few enough to bound every record and message.
const MaxDCNodes = 16

// ValidateNodes checks a DC's node addresses (DC.Nodes): at most
// MaxDCNodes host addresses with a port, each once.
func ValidateNodes(field string, nodes []netip.AddrPort) error {
	if len(nodes) > MaxDCNodes {
		return Errorf(EINVALID, field, "%s lists %d node addresses, more than %d", field, len(nodes), MaxDCNodes)
	}
	for i, ap := range nodes {
		if err := ValidateHostAddr(field, ap.Addr()); err != nil {
			return err
		}
		if ap.Port() == 0 {
			return Errorf(EINVALID, field, "%s: node address %s has no port (give IP:PORT)", field, ap)
		}
		if slices.Contains(nodes[:i], ap) {
			return Errorf(EINVALID, field, "%s lists node address %s twice", field, ap)
		}
	}
	return nil
}

// NormalizeNodes returns the node addresses of a DC whose primary
// address is primary, as its member record keeps them: sorted, each once,
// and none at all when the only node is at primary (a DC of one node
// keeps the one-address form).
func NormalizeNodes(primary netip.AddrPort, nodes []netip.AddrPort) []netip.AddrPort {
	out := slices.Clone(nodes)
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	out = slices.Compact(out)
	if len(out) == 0 || len(out) == 1 && out[0] == primary {
		return nil
	}
	return out
}

// SameEndpoint reports whether a and b are the same DC at the same
// address with the same key and role, whatever node addresses each
// carries.
func (d DC) SameEndpoint(o DC) bool {
	return d.Name == o.Name && d.Address == o.Address && d.Port == o.Port && d.Identity == o.Identity && d.Witness == o.Witness
}
