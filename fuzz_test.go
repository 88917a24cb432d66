package vipsmart

import (
	"strings"
	"testing"
)

// FuzzParseDCSpec: the seed's NAME,IP,PORT from operators. A spec is
// either refused with EINVALID or parses to a valid DC whose String()
// parses back to the same DC.
func FuzzParseDCSpec(f *testing.F) {
	for _, s := range []string{"dc-1,192.168.0.99,9610", "dc-2,2001:db8::2,9611", "dc-3,[2001:db8::3],1", "dc-4,10.0.0.1", " dc-5 , 10.0.0.1 , 80",
		"", "dc-1", "dc-1,1.2.3.4,9610,x", "DC1,1.2.3.4,1", "dc-1,::ffff:1.2.3.4,1", "dc-1,fe80::1%eth0,1", "dc-1,1.2.3.4,+80", "dc-1,1.2.3.4,0x50"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDCSpec(s)
		if err != nil {
			if !IsCode(err, EINVALID) {
				t.Fatalf("ParseDCSpec(%q): %v is not EINVALID", s, err)
			}
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("ParseDCSpec(%q) = %v, which is invalid: %v", s, d, err)
		}
		back, err := ParseDCSpec(d.String())
		if err != nil || !back.SameEndpoint(d) {
			t.Fatalf("ParseDCSpec(%q) = %v; its String %q parses to %v, %v", s, d, d.String(), back, err)
		}
	})
}

// FuzzParseCheckURL: health check URLs from operators. A URL is refused
// with EINVALID or has a scheme, a host and a port the prober can dial.
func FuzzParseCheckURL(f *testing.F) {
	for _, s := range []string{"tcp://127.0.0.1:80", "http://backend.example:8080/healthz", "https://[::1]/", "tcp://[2001:db8::1]:53",
		"udp://10.0.0.1:53", "tcp://10.0.0.1", "tcp://10.0.0.1:70000", "http://u:p@h/", "http://%zz/", "tcp://h:1/path", "http://-bad-/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseCheckURL(s)
		if err != nil {
			if !IsCode(err, EINVALID) {
				t.Fatalf("ParseCheckURL(%q): %v is not EINVALID", s, err)
			}
			return
		}
		if u.Scheme != "tcp" && u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("ParseCheckURL(%q) accepted scheme %q", s, u.Scheme)
		}
		target := CheckTarget(u)
		if u.Hostname() == "" || !strings.Contains(target, ":") {
			t.Fatalf("ParseCheckURL(%q): no host to dial (%q)", s, target)
		}
		c := Check{URL: s}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseCheckURL(%q) accepts what Check.Validate refuses: %v", s, err)
		}
	})
}

// FuzzParseIdentity: key fingerprints typed by operators
// (--server-fingerprint). Accepted ones are canonical and stable.
func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"sha256:" + strings.Repeat("ab", 32), strings.Repeat("AB:", 31) + "AB", "SHA256:" + strings.Repeat("0", 64), "sha256:", "sha256:xyz", strings.Repeat("a", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity("fp", s)
		if err != nil {
			if !IsCode(err, EINVALID) {
				t.Fatalf("ParseIdentity(%q): %v", s, err)
			}
			return
		}
		if err := ValidateIdentity("fp", id); err != nil {
			t.Fatalf("ParseIdentity(%q) = %q, not canonical: %v", s, id, err)
		}
		if again, err := ParseIdentity("fp", id); err != nil || again != id {
			t.Fatalf("ParseIdentity(%q) = %q, which parses to %q, %v", s, id, again, err)
		}
	})
}
