package netlink

import (
	"fmt"
	"net/netip"
)

// AddrProto is the address protocol (IFA_PROTO) that marks the addresses
// this announcer adds.
const AddrProto uint8 = 0x56

// labelSuffix is appended to the interface name to make the IPv4 label
// (IFA_LABEL) of the addresses this announcer adds.
const labelSuffix = ":vs"

// IfaFlagNoDAD is IFA_F_NODAD: the IPv6 address skips duplicate address
// detection and is usable at once.
const IfaFlagNoDAD uint32 = 0x02

// Addr is one address on a link, as the kernel holds it.
type Addr struct {
	// Link is the name of the interface.
	Link string
	// Prefix is the address and its prefix length.
	Prefix netip.Prefix
	// Label is the IPv4 label (IFA_LABEL); always "" for IPv6.
	Label string
	// Proto is the address protocol (IFA_PROTO); 0 if unset or if the
	// kernel does not know it.
	Proto uint8
	// Flags are the IFA_F_* flags.
	Flags uint32
	// ValidLft, if not 0, is the address's lifetime in seconds: the
	// kernel removes it by itself when it passes without a refresh
	// (lifetime.go). 0: permanent.
	ValidLft uint32
}

func (a Addr) String() string {
	s := a.Prefix.String() + " dev " + a.Link
	if a.Label != "" {
		s += " label " + a.Label
	}
	if a.Proto != 0 {
		s += fmt.Sprintf(" proto %#x", a.Proto)
	}
	return s
}

// OS is the seam between the announcer and the kernel. Implementations
// must be safe for concurrent use.
type OS interface {
	// Addrs lists the addresses on link, or on every link if link is "".
	Addrs(link string) ([]Addr, error)
	// HasLink reports whether an interface named link exists.
	HasLink(link string) (bool, error)
	// AddAddr adds a to its link with a's label, protocol and flags.
	AddAddr(a Addr) error
	// DelAddr removes a from its link.
	DelAddr(a Addr) error
	// Announce sends one gratuitous ARP (IPv4: request and reply) or one
	// unsolicited neighbour advertisement (IPv6) for ip from link.
	Announce(link string, ip netip.Addr) error
}

// labelFor returns the IPv4 label of our addresses on link, or "" if the
// name is too long for one (labels start with the interface name and hold
// at most 15 bytes).
func labelFor(link string) string {
	if l := link + labelSuffix; len(l) <= 15 {
		return l
	}
	return ""
}

// marked reports whether a carries one of our marks.
func marked(a Addr) bool {
	if a.Proto == AddrProto {
		return true
	}
	return a.Prefix.Addr().Is4() && a.Label != "" && a.Label == labelFor(a.Link)
}
