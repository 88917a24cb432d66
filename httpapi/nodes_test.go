package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
)

// A DC's answers name its nodes; the client tries the address that
// answered last, then the member record's, then the others, and ignores
// what is not IP:PORT.
func TestPeerClientLearnsNodes(t *testing.T) {
	h := WithNodes(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(202) }), func() []netip.AddrPort {
		return []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:9610"), netip.MustParseAddrPort("10.0.0.2:9610"), netip.MustParseAddrPort("[2001:db8::3]:9610")}
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", PeerPath, nil))
	if got := rec.Header().Get(NodesHeader); got != "10.0.0.1:9610,10.0.0.2:9610,[2001:db8::3]:9610" {
		t.Fatalf("%s: %q", NodesHeader, got)
	}
	p := NewPeerClient(nil)
	if got := p.candidates("k", "10.0.0.1:9610", nil); !slices.Equal(got, []string{"10.0.0.1:9610"}) {
		t.Fatalf("before learning: %v", got)
	}
	hdr := rec.Header().Clone()
	hdr.Set(NodesHeader, hdr.Get(NodesHeader)+",junk,10.0.0.9")
	p.learn("k", hdr)
	if got := p.candidates("k", "10.0.0.1:9610", nil); !slices.Equal(got, []string{"10.0.0.1:9610", "10.0.0.2:9610", "[2001:db8::3]:9610"}) {
		t.Fatalf("after learning: %v", got)
	}
	if got := p.candidates("other-key", "10.0.0.1:9610", nil); len(got) != 1 {
		t.Fatalf("another DC's key got this DC's nodes: %v", got)
	}
	p.prefer("k", "10.0.0.2:9610")
	if got := p.candidates("k", "10.0.0.1:9610", nil); !slices.Equal(got, []string{"10.0.0.2:9610", "10.0.0.1:9610", "[2001:db8::3]:9610"}) {
		t.Fatalf("after 10.0.0.2 answered: %v", got)
	}
}

// The member record's node addresses (committed) are tried after its
// address, before any learned one, and with nothing learned at all (a
// peer just restarted).
func TestPeerClientTriesCommittedNodes(t *testing.T) {
	p := NewPeerClient(nil)
	committed := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:9610"), netip.MustParseAddrPort("10.0.0.3:9610")}
	if got := p.candidates("k", "10.0.0.1:9610", committed); !slices.Equal(got, []string{"10.0.0.1:9610", "10.0.0.3:9610"}) {
		t.Fatalf("committed only: %v", got)
	}
	hdr := http.Header{}
	hdr.Set(NodesHeader, "10.0.0.4:9610,10.0.0.3:9610")
	p.learn("k", hdr)
	if got := p.candidates("k", "10.0.0.1:9610", committed); !slices.Equal(got, []string{"10.0.0.1:9610", "10.0.0.3:9610", "10.0.0.4:9610"}) {
		t.Fatalf("committed and learned: %v", got)
	}
}
