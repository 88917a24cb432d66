package vipsmart

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// VIP is an address local to one DC. Name and Address are each unique among
// the DC's VIPs. Interface, if set, is where the netlink announcer binds it
// (overriding the daemon's default interface). Check, if set, is the health
// check that marks the VIP up or down; a VIP without a check is always up.
type VIP struct {
	Name      string     `json:"name"`
	Address   netip.Addr `json:"address"`
	Interface string     `json:"interface,omitempty"`
	Check     *Check     `json:"check,omitempty"`
	Created   time.Time  `json:"created"`
	// Nodes, if set, are the nodes of a DC on etcd that may hold the VIP,
	// each with its priority (the eligible node of highest priority
	// holds it); empty: every node, at equal priority (vipmove.go).
	Nodes []VIPNode `json:"nodes,omitempty"`
	// Preempt lets an eligible node of higher priority take the VIP from
	// a live holder (an orderly handover); false: the holder keeps it
	// while it is eligible.
	Preempt bool `json:"preempt,omitempty"`
}

// Validate checks every field of v and fills in the check's defaults.
func (v *VIP) Validate() error {
	if err := ValidateName("name", v.Name); err != nil {
		return err
	}
	if err := ValidateServiceAddr("address", v.Address); err != nil {
		return err
	}
	if v.Interface != "" {
		if err := ValidateInterface("interface", v.Interface); err != nil {
			return err
		}
	}
	if err := ValidateVIPNodes(v.Nodes); err != nil {
		return err
	}
	if v.Check != nil {
		return v.Check.Validate()
	}
	return nil
}

// VIPState is the health of a VIP as its check last saw it.
type VIPState string

// The states of a VIP. A VIP without a check is always up; one with a check
// is unknown until the check has passed Rise times or failed Fall times.
const (
	VIPUp      VIPState = "up"
	VIPDown    VIPState = "down"
	VIPUnknown VIPState = "unknown"
)

// VIPInfo is a VIP with its current health, as reads return it.
type VIPInfo struct {
	VIP
	State     VIPState `json:"state"`
	LastError string   `json:"last_error,omitempty"`
	// Announced is how the announcers handle the VIP's address now (empty
	// while the VIP is not up).
	Announced []Announced `json:"announced,omitempty"`
	// Warnings say why an announcer cannot announce the VIP (the netlink
	// announcer with no interface for it), even before it is up.
	Warnings []string `json:"warnings,omitempty"`
	// Holder is the node that holds the VIP in a DC of several nodes on
	// etcd (nil on a one-node DC, or while no node holds it);
	// Eligibility says, for each node, whether it may hold it and why
	// (vipmove.go).
	Holder      *VIPHolder        `json:"holder,omitempty"`
	Eligibility []NodeEligibility `json:"eligibility,omitempty"`
}

// The health check defaults.
const (
	DefaultCheckInterval = time.Second
	DefaultCheckTimeout  = 500 * time.Millisecond
	DefaultCheckRise     = 2
	DefaultCheckFall     = 2
)

// Check is a VIP's health check. URL is tcp://HOST:PORT (a TCP connect) or
// http://HOST:PORT/PATH (a GET whose status must equal ExpectStatus, 200 by
// default). Timeout must be shorter than Interval. Rise consecutive successes
// mark the VIP up, Fall consecutive failures mark it down.
type Check struct {
	URL          string   `json:"url"`
	Interval     Duration `json:"interval,omitempty"`
	Timeout      Duration `json:"timeout,omitempty"`
	Rise         int      `json:"rise,omitempty"`
	Fall         int      `json:"fall,omitempty"`
	ExpectStatus int      `json:"expect_status,omitempty"`
}

// Validate checks c and fills in defaults for the fields left zero.
func (c *Check) Validate() error {
	if _, err := ParseCheckURL(c.URL); err != nil {
		return err
	}
	if c.Interval == 0 {
		c.Interval = Duration(DefaultCheckInterval)
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultCheckTimeout)
		if c.Timeout >= c.Interval {
			c.Timeout = c.Interval / 2
		}
	}
	if c.Rise == 0 {
		c.Rise = DefaultCheckRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultCheckFall
	}
	if strings.HasPrefix(c.URL, "http") && c.ExpectStatus == 0 {
		c.ExpectStatus = 200
	}
	switch {
	case c.Interval < Duration(10*time.Millisecond) || c.Interval > Duration(time.Hour):
		return Errorf(EINVALID, "check.interval", "check.interval %s is out of range: give 10ms to 1h", time.Duration(c.Interval))
	case c.Timeout <= 0 || c.Timeout >= c.Interval:
		return Errorf(EINVALID, "check.timeout", "check.timeout %s must be positive and shorter than check.interval %s", time.Duration(c.Timeout), time.Duration(c.Interval))
	case c.Rise < 1 || c.Rise > 100:
		return Errorf(EINVALID, "check.rise", "check.rise %d is out of range: give 1 to 100", c.Rise)
	case c.Fall < 1 || c.Fall > 100:
		return Errorf(EINVALID, "check.fall", "check.fall %d is out of range: give 1 to 100", c.Fall)
	case c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599):
		return Errorf(EINVALID, "check.expect_status", "check.expect_status %d is not an HTTP status: give 100 to 599", c.ExpectStatus)
	case c.ExpectStatus != 0 && strings.HasPrefix(c.URL, "tcp"):
		return Errorf(EINVALID, "check.expect_status", "check.expect_status applies to http:// checks only")
	}
	return nil
}

// ParseCheckURL parses a check target: tcp://HOST:PORT, http://HOST[:PORT]/PATH
// or https://HOST[:PORT]/PATH. HOST is an IP address or a DNS name.
func ParseCheckURL(s string) (*url.URL, error) {
	const how = "give tcp://HOST:PORT or http://HOST:PORT/PATH"
	if s == "" {
		return nil, Errorf(EINVALID, "check.url", "check.url is empty: %s", how)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, Errorf(EINVALID, "check.url", "check %q is not a URL: %s", clip(s), how)
	}
	if u.User != nil {
		return nil, Errorf(EINVALID, "check.url", "check %q has user information: credentials are not supported", clip(s))
	}
	switch u.Scheme {
	case "tcp":
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, Errorf(EINVALID, "check.url", "check %q: a tcp check takes no path or query: give tcp://HOST:PORT", clip(s))
		}
		if u.Port() == "" {
			return nil, Errorf(EINVALID, "check.url", "check %q has no port: give tcp://HOST:PORT", clip(s))
		}
	case "http", "https":
	default:
		return nil, Errorf(EINVALID, "check.url", "check %q has scheme %q: %s", clip(s), u.Scheme, how)
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
		return nil, Errorf(EINVALID, "check.url", "check %q: host %q is neither an IP address nor a DNS name", clip(s), clip(host))
	}
	if p := u.Port(); p != "" {
		if _, err := ParsePort("check.url port", p); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// CheckTarget returns the host:port a check connects to.
func CheckTarget(u *url.URL) string {
	p := u.Port()
	if p == "" {
		p = "80"
		if u.Scheme == "https" {
			p = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), p)
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if ValidateName("host", strings.ToLower(l)) != nil {
			return false
		}
	}
	_, err := strconv.Atoi(h) // a bare number is not a host name
	return err != nil
}
