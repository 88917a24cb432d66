package vipsmart

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidateName checks that s is a DNS label as RFC 1123 defines it, in lower
// case: 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with
// '-'. field names the input in the error.
func ValidateName(field, s string) error {
	if s == "" {
		return Errorf(EINVALID, field, "%s is empty: give a DNS label such as dc-1", field)
	}
	if len(s) > 63 {
		return Errorf(EINVALID, field, "%s %q is %d characters long: a DNS label has at most 63", field, clip(s), len(s))
	}
	if !utf8.ValidString(s) {
		return Errorf(EINVALID, field, "%s %q is not valid UTF-8 text: a DNS label may hold only a-z, 0-9 and '-'", field, clip(s))
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
		if !ok {
			switch {
			case c >= 'A' && c <= 'Z':
				return Errorf(EINVALID, field, "%s %q has upper-case letters: use lower case (a DNS label of a-z, 0-9 and '-')", field, clip(s))
			case c > unicode.MaxASCII:
				return Errorf(EINVALID, field, "%s %q has the character %q (U+%04X), which is not ASCII: a DNS label may hold only a-z, 0-9 and '-' (write internationalized names in their xn-- form)", field, clip(s), c, c)
			}
			return Errorf(EINVALID, field, "%s %q has the character %q: a DNS label may hold only a-z, 0-9 and '-'", field, clip(s), c)
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return Errorf(EINVALID, field, "%s %q starts or ends with '-': a DNS label must start and end with a letter or digit", field, s)
	}
	return nil
}

// clip shortens s for an error message (at a character boundary).
func clip(s string) string {
	if len(s) > 70 {
		cut := 67
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return s[:cut] + "..."
	}
	return s
}

// hasSpaceAround reports whether s starts or ends with white space.
func hasSpaceAround(s string) bool {
	return s != strings.TrimSpace(s)
}

// ParseHostAddr parses s as an IPv4 or IPv6 host address and checks it with
// ValidateHostAddr. An IPv4-mapped IPv6 address is returned as IPv4.
func ParseHostAddr(field, s string) (netip.Addr, error) {
	if hasSpaceAround(s) && strings.TrimSpace(s) != "" {
		return netip.Addr{}, Errorf(EINVALID, field, "%s %q has white space before or after the address: remove it", field, clip(s))
	}
	if strings.TrimSpace(s) == "" {
		return netip.Addr{}, Errorf(EINVALID, field, "%s is empty: give an IPv4 or IPv6 address such as 192.0.2.10 or 2001:db8::10", field)
	}
	if strings.Contains(s, "/") {
		return netip.Addr{}, Errorf(EINVALID, field, "%s %q has a prefix length: give a host address without /N", field, clip(s))
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, Errorf(EINVALID, field, "%s %q is not an IP address: give an IPv4 or IPv6 address such as 192.0.2.10 or 2001:db8::10", field, clip(s))
	}
	a = a.Unmap()
	return a, ValidateHostAddr(field, a)
}

// ValidateHostAddr checks that a is usable as a host address: valid, no
// IPv6 zone, not unspecified, not multicast and not the IPv4 broadcast
// address.
func ValidateHostAddr(field string, a netip.Addr) error {
	switch {
	case !a.IsValid():
		return Errorf(EINVALID, field, "%s is missing: give an IPv4 or IPv6 address", field)
	case a.Zone() != "":
		return Errorf(EINVALID, field, "%s %s has an IPv6 zone: give the address without %%zone", field, a)
	case a.IsUnspecified():
		return Errorf(EINVALID, field, "%s %s is the unspecified address: give a host address", field, a)
	case a.IsMulticast():
		return Errorf(EINVALID, field, "%s %s is a multicast address: give a unicast host address", field, a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return Errorf(EINVALID, field, "%s %s is the broadcast address: give a unicast host address", field, a)
	}
	return nil
}

// ValidateServiceAddr checks an address that a VIP or a GIP is announced
// on: a host address (ValidateHostAddr) that other hosts can reach, so not
// a loopback address (127.0.0.0/8, ::1), which never leaves the host it is
// on. (A DC's own address may be loopback: several DCs on one host, as in
// tests and the demo.)
func ValidateServiceAddr(field string, a netip.Addr) error {
	if err := ValidateHostAddr(field, a); err != nil {
		return err
	}
	if a.Unmap().IsLoopback() {
		return Errorf(EINVALID, field, "%s %s is a loopback address, which no other host can reach: give an address the service is reached on", field, a)
	}
	return nil
}

// ParsePort parses a TCP port number, 1-65535, written in decimal digits
// only (no sign, no white space).
func ParsePort(field, s string) (uint16, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, Errorf(EINVALID, field, "%s %q is not a number: give a port between 1 and 65535, in digits only", field, clip(s))
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, Errorf(EINVALID, field, "%s %s is out of range: give a port between 1 and 65535", field, clip(s))
	}
	if n < 1 || n > 65535 {
		return 0, Errorf(EINVALID, field, "%s %d is out of range: give a port between 1 and 65535", field, n)
	}
	return uint16(n), nil
}

// ParseDCSpec parses the seed's DC syntax NAME,IP,PORT (PORT may be left out
// and defaults to DefaultPort). IPv6 addresses are written bare:
// dc-2,2001:db8::2,9610. White space around the commas is allowed; inside
// a part it is not.
func ParseDCSpec(s string) (DC, error) {
	parts := strings.Split(s, ",")
	if len(parts) < 2 || len(parts) > 3 {
		return DC{}, Errorf(EINVALID, "dc", "%q is not NAME,IP,PORT: give for example dc-1,192.168.0.99,9610", clip(s))
	}
	var d DC
	d.Name = strings.TrimSpace(parts[0])
	if err := ValidateName("name", d.Name); err != nil {
		return DC{}, err
	}
	a, err := ParseHostAddr("address", strings.Trim(strings.TrimSpace(parts[1]), "[]"))
	if err != nil {
		return DC{}, err
	}
	d.Address = a
	d.Port = DefaultPort
	if len(parts) == 3 {
		p, err := ParsePort("port", strings.TrimSpace(parts[2]))
		if err != nil {
			return DC{}, err
		}
		d.Port = p
	}
	return d, nil
}

// ValidateInterface checks a Linux interface name: 1 to 15 bytes, no '/',
// no whitespace or ':', and not "." or "..".
func ValidateInterface(field, s string) error {
	if s == "" {
		return Errorf(EINVALID, field, "%s is empty: give an interface name such as eth0", field)
	}
	if len(s) > 15 {
		return Errorf(EINVALID, field, "%s %q is %d bytes long: Linux interface names have at most 15", field, clip(s), len(s))
	}
	if s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\r") {
		return Errorf(EINVALID, field, "%s %q is not a valid interface name: no '/', ':' or whitespace", field, s)
	}
	for _, r := range s {
		// A NUL ends the name in the kernel; escape sequences and
		// direction overrides would reach terminals through vip list.
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return Errorf(EINVALID, field, "%s %q is not a valid interface name: no control or invisible characters", field, s)
		}
	}
	return nil
}
