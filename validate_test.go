package vipsmart

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestParseDCSpec(t *testing.T) {
	good := map[string]string{
		"dc-1,192.168.0.99,9610": "dc-1,192.168.0.99,9610",
		"dc-2,2001:db8::2,9611":  "dc-2,2001:db8::2,9611",
		"dc-3,[2001:db8::3],1":   "dc-3,2001:db8::3,1",
		"dc-4,10.0.0.1":          "dc-4,10.0.0.1,9610",
		" dc-5 , 10.0.0.1 , 80":  "dc-5,10.0.0.1,80",
	}
	for in, want := range good {
		d, err := ParseDCSpec(in)
		if err != nil || d.String() != want {
			t.Errorf("ParseDCSpec(%q) = %v, %v; want %s", in, d, err, want)
		}
	}
	bad := []string{"", "dc-1", "dc-1,1.2.3.4,9610,x", "DC1,1.2.3.4,1", "dc-1,1.2.3,1", "dc-1,1.2.3.4,0",
		"dc-1,1.2.3.4,65536", "dc-1,0.0.0.0,1", "dc-1,224.0.0.1,1", "dc-1,10.0.0.0/8,1", "-x,1.2.3.4,1", "dc-1,fe80::1%eth0,1"}
	for _, in := range bad {
		if _, err := ParseDCSpec(in); !IsCode(err, EINVALID) {
			t.Errorf("ParseDCSpec(%q) error = %v; want EINVALID", in, err)
		}
	}
}

func TestCheckValidate(t *testing.T) {
	for _, u := range []string{"tcp://127.0.0.1:80", "http://backend.example:8080/healthz", "https://[::1]/", "tcp://[2001:db8::1]:53"} {
		c := Check{URL: u}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
		if c.Rise != DefaultCheckRise || c.Fall != DefaultCheckFall || c.Interval == 0 || c.Timeout >= c.Interval {
			t.Errorf("%s: defaults not filled: %+v", u, c)
		}
	}
	for _, c := range []Check{{URL: "tcp://1.2.3.4"}, {URL: "udp://1.2.3.4:5"}, {URL: "tcp://1.2.3.4:5/x"}, {URL: "http://"},
		{URL: "tcp://1.2.3.4:99999"}, {URL: "tcp://1.2.3.4:5", Rise: -1}, {URL: "tcp://1.2.3.4:5", Interval: 1000, Timeout: 2000},
		{URL: "http://a:1/", ExpectStatus: 42}, {URL: "tcp://a:1", ExpectStatus: 200}, {URL: "tcp://a_b:1"}} {
		if err := c.Validate(); !IsCode(err, EINVALID) {
			t.Errorf("%+v: error = %v; want EINVALID", c, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, s := range []string{"a", "dc-1", "0", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"} {
		if err := ValidateName("name", s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "-a", "a-", "A", "a.b", "a_b", "é", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234"} {
		if err := ValidateName("name", s); !IsCode(err, EINVALID) {
			t.Errorf("%q: error = %v; want EINVALID", s, err)
		}
	}
}

func TestInputsOfIssue15AreRefusedClearly(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{func() error { _, err := ParseHostAddr("address", " 192.0.2.1"); return err }(), `address " 192.0.2.1" has white space before or after the address: remove it`},
		{func() error { _, err := ParseHostAddr("address", "192.0.2.1\t"); return err }(), "white space"},
		{func() error { _, err := ParseDCSpec("dc-9,127.0.0.1,+19109"); return err }(), `port "+19109" is not a number: give a port between 1 and 65535, in digits only`},
		{func() error { _, err := ParsePort("port", "99999999999999999999"); return err }(), "out of range"},
		{ValidateName("name", "wéb"), `has the character 'é' (U+00E9), which is not ASCII`},
		{ValidateName("name", "w\xffb"), "not valid UTF-8"},
		{(&VIP{Name: "web", Address: netip.MustParseAddr("127.0.0.1")}).Validate(), "address 127.0.0.1 is a loopback address"},
		{(&VIP{Name: "web", Address: netip.MustParseAddr("::1")}).Validate(), "loopback"},
		{(&GIP{Name: "g", Address: netip.MustParseAddr("127.1.2.3"), Mode: ModeFailover}).Validate(), "loopback"},
	} {
		if !IsCode(c.err, EINVALID) || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("error %v; want EINVALID saying %q", c.err, c.want)
		}
	}
	// A DC may be on loopback (several DCs on one host).
	if _, err := ParseDCSpec("dc-2,127.0.0.1,9612"); err != nil {
		t.Errorf("a DC on loopback: %v", err)
	}
}

// TestGIPPlacementTwice: a DC named twice in the placements is refused,
// with few placements (compared pairwise) and with many (a map), and
// distinct DCs pass either way.
func TestGIPPlacementTwice(t *testing.T) {
	for _, n := range []int{2, smallPlacements, smallPlacements + 1, 3 * smallPlacements} {
		g := GIP{Name: "g", Address: netip.MustParseAddr("203.0.113.1")}
		for i := range n {
			g.Placements = append(g.Placements, Placement{DC: fmt.Sprintf("dc-%d", i+1), Priority: 100})
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("%d distinct placements: %v", n, err)
		}
		g.Placements[n-1].DC = g.Placements[n/2-1].DC
		err := g.Validate()
		if !IsCode(err, EINVALID) || !strings.Contains(err.Error(), "names DC "+g.Placements[n-1].DC+" twice") {
			t.Fatalf("%d placements, one DC twice: %v; want refused naming the DC", n, err)
		}
	}
}
