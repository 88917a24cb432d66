package vipsmart

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// GIPMode says how many placements of a GIP are active at once.
type GIPMode string

// The GIP modes.
const (
	// ModeFailover activates the one healthy placement with the best
	// priority.
	ModeFailover GIPMode = "failover"
	// ModeAnycast activates every healthy placement.
	ModeAnycast GIPMode = "anycast"
)

// Placement puts a GIP in a DC. Priority 1-255, higher wins (as keepalived's
// VRRP priority); ties go to the DC name that sorts first. VIP optionally
// names the local VIP of that DC whose health backs the placement.
type Placement struct {
	DC       string `json:"dc"`
	Priority int    `json:"priority"`
	VIP      string `json:"vip,omitempty"`
}

// GIP is a global IP, replicated identically on every member of a
// federation. Preempt (the default) moves a failover GIP back to a better
// placement when it recovers.
type GIP struct {
	Name       string      `json:"name"`
	Address    netip.Addr  `json:"address"`
	Mode       GIPMode     `json:"mode"`
	Preempt    bool        `json:"preempt"`
	Placements []Placement `json:"placements"`
	// Partition is what a failover GIP does when the federation is
	// partitioned (see PartitionPolicy and quorum.go); "" means available.
	Partition PartitionPolicy `json:"partition"`
}

// SortPlacements orders placements by priority, best first, then DC name.
// (Without reflection: it runs for each of the 10,000 GIPs of an apply.)
func SortPlacements(ps []Placement) {
	slices.SortStableFunc(ps, func(a, b Placement) int {
		if a.Priority != b.Priority {
			return cmp.Compare(b.Priority, a.Priority)
		}
		return strings.Compare(a.DC, b.DC)
	})
}

// smallPlacements is the number of placements up to which Validate looks
// for a DC named twice without a map.
const smallPlacements = 32

// Validate checks g's fields (but not that its placements name members:
// that needs the federation).
func (g *GIP) Validate() error {
	if err := ValidateName("name", g.Name); err != nil {
		return err
	}
	if err := ValidateServiceAddr("address", g.Address); err != nil {
		return err
	}
	switch g.Mode {
	case "":
		g.Mode = ModeFailover
	case ModeFailover, ModeAnycast:
	default:
		return Errorf(EINVALID, "mode", "mode %q is unknown: give failover or anycast", g.Mode)
	}
	if err := g.validatePartition(); err != nil {
		return err
	}
	// A few placements (one per DC) are compared pairwise: a map per GIP
	// cost 10,000 maps for a batch of 10,000 GIPs. Many take a map, so
	// that a long list costs no quadratic time.
	var seen map[string]bool
	if len(g.Placements) > smallPlacements {
		seen = make(map[string]bool, len(g.Placements))
	}
	for i, p := range g.Placements {
		if err := ValidateName("placement dc", p.DC); err != nil {
			return err
		}
		dup := false
		if seen != nil {
			dup = seen[p.DC]
			seen[p.DC] = true
		} else {
			for _, q := range g.Placements[:i] {
				dup = dup || q.DC == p.DC
			}
		}
		if dup {
			return Errorf(EINVALID, "placements", "placement %d names DC %s twice: give each DC once", i+1, p.DC)
		}
		if p.Priority < 1 || p.Priority > 255 {
			return Errorf(EINVALID, "placements", "placement %s has priority %d: give 1 to 255 (higher wins)", p.DC, p.Priority)
		}
		if p.VIP != "" {
			if err := ValidateName("placement vip", p.VIP); err != nil {
				return err
			}
		}
	}
	return nil
}

// GIPInfo is a GIP as reads return it: with the DCs active for it now, as
// the local DC sees them, and (from GetGIP only) for each placement why it
// is or is not active.
type GIPInfo struct {
	GIP
	Active []string          `json:"active"`
	Why    map[string]string `json:"why,omitempty"`
	// Quorum (consistent GIPs, GetGIP and ListGIPs): this DC's view of
	// the majority and why it is or is not active.
	Quorum *GIPQuorum `json:"quorum,omitempty"`
}
