package httpapi

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// Several nodes per DC (docs/ha.md). Every node of a DC run on etcd
// answers on its own federation listener and presents the DC's one key;
// the answers carry NodesHeader, the federation addresses of the DC's
// live nodes. A PeerClient tries, after the address that answered last
// and the member record's address, the node addresses the member record
// lists (committed by the DC itself: federation.SetNodes), then those
// learned from answers. So peers reach the DC through any live node,
// across their own restarts, with no operator action.
const (
	// NodesHeader lists the federation addresses (IP:PORT, comma
	// separated) of the live nodes of the answering DC.
	NodesHeader = "Vipsmart-Nodes"
	// ForwardedPeerKeyHeader carries, on a federation message a follower
	// node forwards to its DC's leader, the key the original sender's
	// connection presented. The leader believes it only from a connection
	// that presented the DC's own key (Server.TrustForward).
	ForwardedPeerKeyHeader = "Vipsmart-Forwarded-Peer-Key"
	// ForwardedCallerHeader carries, on an operator request a follower
	// forwards to its leader, the caller the follower authenticated
	// (JSON vipsmart.Caller).
	ForwardedCallerHeader = "Vipsmart-Forwarded-Caller"
)

// WithNodes adds NodesHeader, listing nodes(), to every answer of h.
func WithNodes(h http.Handler, nodes func() []netip.AddrPort) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ns := nodes(); len(ns) > 0 {
			s := make([]string, len(ns))
			for i, n := range ns {
				s[i] = n.String()
			}
			w.Header().Set(NodesHeader, strings.Join(s, ","))
		}
		h.ServeHTTP(w, r)
	})
}

// learn remembers the node addresses a DC whose key is pin announced in
// an answer (at most 16, valid IP:PORT only).
func (p *PeerClient) learn(pin string, h http.Header) {
	v := h.Get(NodesHeader)
	if v == "" {
		return
	}
	var addrs []string
	for _, s := range strings.Split(v, ",") {
		ap, err := netip.ParseAddrPort(strings.TrimSpace(s))
		if err != nil || !ap.IsValid() || ap.Port() == 0 {
			continue
		}
		if len(addrs) < 16 && !slices.Contains(addrs, ap.String()) {
			addrs = append(addrs, ap.String())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nodes == nil {
		p.nodes = map[string][]string{}
	}
	p.nodes[pin] = addrs
}

// candidates returns the addresses to try for the DC whose key is pin:
// the one that answered last (if it is not addr), addr, the node
// addresses its member record lists (committed), then the node addresses
// learned from its answers.
func (p *PeerClient) candidates(pin, addr string, committed []netip.AddrPort) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []string{addr}
	if l := p.last[pin]; l != "" && l != addr {
		out = []string{l, addr}
	}
	for _, ap := range committed {
		if a := ap.String(); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, a := range p.nodes[pin] {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// prefer remembers addr as the address of the DC whose key is pin that
// answered last.
func (p *PeerClient) prefer(pin, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last = map[string]string{}
	}
	p.last[pin] = addr
}

// WriteError writes err as the JSON error answer of the API (its code
// mapped by StatusFor): for handlers outside this package, such as the
// forwarding of a follower node.
func WriteError(w http.ResponseWriter, err error) { writeError(w, err) }

// WriteJSON writes v as a JSON answer with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }
