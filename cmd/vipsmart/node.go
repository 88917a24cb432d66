package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/daemon"
	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/httpapi"
	"github.com/vipsmart/vipsmart/identity"
)

// A DC on etcd runs one or more nodes (docs/ha.md). nodeRuntime is this
// node's part beyond the daemon: while another node leads, it serves the
// operator API by forwarding to the leader (reads fall back to the store
// when the leader cannot be reached), passes federation messages on to
// the leader, and, while the DC has no reachable leader, sends the DC's
// heartbeats itself so the other DCs keep hearing the DC. Every node
// answers `node list` and names the DC's live nodes in its federation
// answers (httpapi.NodesHeader). The leader's part is the daemon, plus
// the routes under /v1/node/ on its federation listener that only the
// DC's own key may use.
type nodeRuntime struct {
	log     *slog.Logger
	st      *etcd.Store
	se      *etcd.Session
	node    string
	self    vipsmart.DC // this node's address, the DC's key
	hbEvery time.Duration
	ttl     time.Duration // the session lease (--etcd-lease-ttl)
	peers   *httpapi.PeerClient
	tr      *http.Transport // to the leader, presenting and pinning the DC's key
	reads   http.Handler    // operator answers from the store

	leading atomic.Bool
	store   *openedStore
	// leaderServes is set once this node serves as the leader, through
	// served (the listeners' switched handler).
	leaderServes atomic.Bool
	served       http.Handler

	mu       sync.Mutex
	claims   []etcd.Claim
	leader   string
	leaderUp bool
	refused  int
	report   *federation.Report
	record   []byte

	// mirror announces the leader's set on this node while it follows
	// (nodeannounce.go); nil without an announcer a follower runs.
	mirror *mirror

	// id is the DC's key this node presents (it changes with a rotation:
	// sharedkey.go); pendingKey the fingerprint of a rotation's pending
	// key (string), accepted from the leader too.
	id         *identity.Identity
	pendingKey atomic.Value
	retired    atomic.Pointer[retiredKey]
}

// nodeOpPrefix is where a leader serves the operator API forwarded by its
// followers, on its federation listener; nodeReportPath is its health
// report for their heartbeats.
const (
	nodeOpPrefix   = "/v1/node/op"
	nodeReportPath = "/v1/node/report"
)

func newNodeRuntime(log *slog.Logger, o *serveOptions, self vipsmart.DC, store *openedStore, id *identity.Identity, peers *httpapi.PeerClient) *nodeRuntime {
	hb := o.fed.HeartbeatInterval
	if hb <= 0 {
		hb = federation.DefaultHeartbeatInterval
	}
	n := &nodeRuntime{log: log, st: store.etcd, se: store.session, node: o.store.node, self: self, hbEvery: hb, ttl: o.store.leaseTTL, peers: peers, store: store, id: id}
	n.tr = &http.Transport{
		TLSClientConfig:     id.OwnClientConfig(n.pendingFP),
		TLSHandshakeTimeout: 2 * time.Second,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
	}
	n.reads = (&httpapi.Server{Service: &storeReads{st: store.etcd, node: n}, Logger: log}).Handler()
	return n
}

// start runs the node's background work until ctx ends: following the
// DC's claims, probing the leader, and the standby heartbeats.
func (n *nodeRuntime) start(ctx context.Context) {
	go func() {
		for cs := range n.st.WatchClaims(ctx) {
			n.mu.Lock()
			n.claims = cs
			n.mu.Unlock()
		}
	}()
	go n.loop(ctx)
}

// follow serves this node as a follower (on the listeners of ts) until it
// wins the DC's leadership, and returns that.
func (n *nodeRuntime) follow(ctx context.Context, ts *trustServe, errc chan error) (*etcd.Leadership, error) {
	ts.start(n.followerOp(), n.followerFed(), n.log, errc)
	if leader, _, err := n.st.Leader(ctx); err == nil && leader != n.node {
		n.log.Info("follower: the DC has a leader; this node forwards changes to it and waits for the leadership", "leader", leader, "node", n.node)
	}
	type won struct {
		l   *etcd.Leadership
		err error
	}
	for {
		cctx, cancel := context.WithCancel(ctx)
		wc := make(chan won, 1)
		se := n.se
		go func() {
			l, err := se.Campaign(cctx)
			wc <- won{l, err}
		}()
		select {
		case w := <-wc:
			cancel()
			if w.err == nil {
				n.leading.Store(true)
				return w.l, nil
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("node %s campaigning for the leadership of DC %s: %w", n.node, n.self.Name, w.err)
			}
			n.log.Warn("campaign failed; trying again", "node", n.node, "err", w.err)
		case <-se.Done():
			cancel()
			<-wc
		case err := <-errc:
			cancel()
			return nil, err
		}
		if err := n.renew(ctx); err != nil {
			return nil, err
		}
	}
}

// renew gives a follower a new session if its lease ended (etcd was
// unreachable for longer than the lease): it retries every half second
// until etcd answers, serving on meanwhile.
func (n *nodeRuntime) renew(ctx context.Context) error {
	select {
	case <-n.se.Done():
	default:
		select { // the session lives: the campaign failed for another reason
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
			return nil
		}
	}
	n.log.Warn("the etcd lease of this node ended (etcd unreachable?): it serves on and takes a new lease when etcd answers", "node", n.node)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		c, cancel := context.WithTimeout(ctx, 3*n.ttl)
		se, err := n.st.NewSession(c, n.node, n.ttl)
		if err == nil {
			if err = se.Claim(c, n.claimInfo()); err != nil {
				_ = se.Close()
			}
		}
		cancel()
		if err == nil {
			n.se = se
			n.store.setSession(se)
			n.log.Info("new etcd lease; following", "node", n.node)
			return nil
		}
	}
}

// claimInfo is what the node publishes in its claim.
func (n *nodeRuntime) claimInfo() []byte {
	b, _ := json.Marshal(nodeInfo{Node: n.node, DC: n.self.Name, Address: n.self.AddrPort().String(), Identity: n.id.Fingerprint(), Version: buildInfo().Version, PID: os.Getpid()})
	return b
}

// leaderAddr returns the leader's node name and federation address, as
// last seen.
func (n *nodeRuntime) leaderAddr() (name, addr string, claim etcd.Claim) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.claims {
		if c.Node == n.leader {
			var ni nodeInfo
			if json.Unmarshal(c.Info, &ni) == nil {
				return n.leader, ni.Address, c
			}
		}
	}
	return n.leader, "", etcd.Claim{}
}

// waitLeader waits up to d (and ctx) for a node to lead, asking etcd
// every 50ms; it returns the leader's name and address, this node's name
// and "" once this node serves as the leader, or "".
func (n *nodeRuntime) waitLeader(ctx context.Context, d time.Duration) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		if n.leaderServes.Load() {
			return n.node, ""
		}
		if l, _, err := n.st.Leader(ctx); err == nil && l != n.node {
			n.mu.Lock()
			n.leader = l
			n.mu.Unlock()
			if _, addr, _ := n.leaderAddr(); addr != "" {
				return l, addr
			}
		}
		select {
		case <-ctx.Done():
			return "", ""
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// nodeAddrs are the federation addresses of the DC's live nodes.
func (n *nodeRuntime) nodeAddrs() []netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(n.claims))
	for _, c := range n.claims {
		var ni nodeInfo
		if json.Unmarshal(c.Info, &ni) != nil {
			continue
		}
		if ap, err := netip.ParseAddrPort(ni.Address); err == nil {
			out = append(out, ap)
		}
	}
	return out
}

// loop probes the leader twice per heartbeat interval: its health report
// is kept for the standby heartbeats, which this node sends (once per
// interval) while the leader does not answer within an interval. A leader
// whose listener refuses connections three times in a row has no process
// behind it (kill -9, crash): the node evicts it (revokes its lease)
// rather than waiting for the lease to expire, so that a new leader takes
// over at once. The probes ask nothing of etcd, so a slow etcd does not
// slow them; who leads and the record are read from etcd beside them
// (watch).
func (n *nodeRuntime) loop(ctx context.Context) {
	go n.watch(ctx)
	t := time.NewTicker(n.hbEvery / 2)
	defer t.Stop()
	var lastBeat time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.leading.Load() {
			return
		}
		if !n.probe(ctx) && !n.leading.Load() && time.Since(lastBeat) >= n.hbEvery*9/10 {
			lastBeat = time.Now()
			n.standbyHeartbeats(ctx)
		}
	}
}

// watch reads who leads every heartbeat interval and the federation
// record every second, until this node leads.
func (n *nodeRuntime) watch(ctx context.Context) {
	t := time.NewTicker(n.hbEvery)
	defer t.Stop()
	var lastRecord time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.leading.Load() {
			return
		}
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		leader, _, err := n.st.Leader(lctx)
		cancel()
		n.mu.Lock()
		if err == nil {
			n.leader = leader
		} else if vipsmart.ErrorCodeOf(err) == vipsmart.ENOTFOUND {
			n.leader = ""
		}
		n.mu.Unlock()
		if time.Since(lastRecord) >= time.Second {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			if rec, err := n.st.Record(rctx); err == nil {
				n.mu.Lock()
				n.record = rec
				n.mu.Unlock()
				lastRecord = time.Now()
			}
			cancel()
		}
	}
}

// probe fetches the leader's report; it says whether the leader answered.
func (n *nodeRuntime) probe(ctx context.Context) bool {
	name, addr, claim := n.leaderAddr()
	if name == "" || addr == "" || name == n.node {
		n.setUp(false)
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, max(n.hbEvery, 100*time.Millisecond))
	defer cancel()
	req, _ := http.NewRequestWithContext(pctx, http.MethodGet, "https://"+addr+nodeReportPath, nil)
	resp, err := n.tr.RoundTrip(req)
	if err == nil {
		defer resp.Body.Close()
		var r federation.Report
		if resp.StatusCode == http.StatusOK && json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r) == nil {
			if n.mirror != nil {
				n.mirror.want(resp.Header.Get(announceGenHeader), addr)
			}
			n.mu.Lock()
			n.report, n.leaderUp, n.refused = &r, true, 0
			n.mu.Unlock()
			return true
		}
		n.setUp(false)
		return false
	}
	n.setUp(false)
	if errors.Is(err, syscall.ECONNREFUSED) {
		n.mu.Lock()
		n.refused++
		evict := n.refused >= 3
		if evict {
			n.refused = 0
		}
		n.mu.Unlock()
		if evict {
			ectx, cancel := context.WithTimeout(ctx, time.Second)
			err := n.st.EvictLeader(ectx, claim)
			cancel()
			n.log.Warn("the leader's federation listener refuses connections: evicted it (revoked its etcd lease) so that a live node leads", "leader", name, "address", addr, "err", err)
		}
	}
	return false
}

func (n *nodeRuntime) setUp(up bool) {
	n.mu.Lock()
	n.leaderUp = up
	n.mu.Unlock()
}

// standbyHeartbeats sends the DC's heartbeats to the other members from
// the stored record and the leader's last report.
func (n *nodeRuntime) standbyHeartbeats(ctx context.Context) {
	n.mu.Lock()
	rec, rep := n.record, n.report
	n.mu.Unlock()
	self := n.self
	self.Identity = n.id.Fingerprint()
	msgs, err := federation.StandbyHeartbeats(rec, self, rep)
	if err != nil {
		n.log.Warn("standby heartbeats", "err", err)
		return
	}
	for _, m := range msgs {
		go func() {
			sctx, cancel := context.WithTimeout(ctx, max(n.hbEvery*3, time.Second))
			defer cancel()
			if err := n.peers.Send(sctx, m); err != nil {
				n.log.Debug("standby heartbeat not delivered", "to", m.To.Name, "err", err)
			}
		}()
	}
}

// withNodes serves GET /v1/nodes itself and the rest with h.
func (n *nodeRuntime) withNodes(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+httpapi.NodesPath, n.listNodes)
	mux.Handle("/", h)
	return mux
}

func (n *nodeRuntime) listNodes(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	claims, err := n.st.Claims(ctx)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	leader, _, err := n.st.Leader(ctx)
	if err != nil && vipsmart.ErrorCodeOf(err) != vipsmart.ENOTFOUND {
		httpapi.WriteError(w, err)
		return
	}
	now := time.Now()
	out := make([]vipsmart.NodeInfo, 0, len(claims))
	for _, c := range claims {
		var ni nodeInfo
		_ = json.Unmarshal(c.Info, &ni)
		row := vipsmart.NodeInfo{Name: c.Node, Address: ni.Address, Identity: ni.Identity, Role: vipsmart.RoleFollower, LeaseRemaining: vipsmart.Duration(c.TTL), Version: ni.Version, PID: ni.PID}
		if c.Node == leader {
			row.Role = vipsmart.RoleLeader
		}
		if c.Granted > 0 && c.TTL > 0 {
			seen := now.Add(c.TTL - c.Granted).Truncate(time.Second)
			row.LastSeen = &seen
		}
		out = append(out, row)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// followerOp is the operator API of a follower: everything goes to the
// leader; what cannot reach it is answered from the store (reads) or
// refused (changes).
func (n *nodeRuntime) followerOp() http.Handler {
	return n.withNodes(http.HandlerFunc(n.forwardOp))
}

func (n *nodeRuntime) forwardOp(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "role": vipsmart.RoleFollower})
		return
	}
	leader, addr, _ := n.leaderAddr()
	if leader == "" || addr == "" || leader == n.node {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			n.noLeader(w, r, errors.New("no node leads the DC right now"))
			return
		}
		// A change waits a little for a leader (a failover, or the DC's
		// first node still campaigning) rather than failing at once.
		leader, addr = n.waitLeader(r.Context(), 5*time.Second)
		if leader == n.node && addr == "" {
			// This node won meanwhile and serves as the leader now.
			n.served.ServeHTTP(w, r)
			return
		}
		if addr == "" {
			n.noLeader(w, r, errors.New("no node leads the DC right now"))
			return
		}
	}
	caller, _ := vipsmart.CallerFrom(r.Context())
	cb, _ := json.Marshal(caller)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "https", addr
			pr.Out.URL.Path = nodeOpPrefix + pr.In.URL.Path
			pr.Out.URL.RawPath = ""
			pr.Out.Host = addr
			pr.Out.Header.Set(httpapi.ForwardedCallerHeader, string(cb))
		},
		Transport: n.tr,
		ErrorLog:  nil,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			n.noLeader(w, r, fmt.Errorf("the leader %s (%s) cannot be reached: %w", leader, addr, err))
		},
	}
	rp.ServeHTTP(w, r)
}

// readPaths are the operator reads a follower answers from the store
// when the leader cannot be reached.
func readPath(p string) bool {
	for _, pre := range []string{"/v1/status", "/v1/vips", "/v1/gips", "/v1/dcs", "/v1/events"} {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}

func (n *nodeRuntime) noLeader(w http.ResponseWriter, r *http.Request, why error) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && readPath(r.URL.Path) {
		n.reads.ServeHTTP(w, r)
		return
	}
	httpapi.WriteError(w, &vipsmart.Error{Code: vipsmart.EUNAVAILABLE, Message: fmt.Sprintf("node %s of DC %s cannot pass the change on: %v; a change the leader received before it went may or may not have been applied; retry in a few seconds (a new leader takes over within seconds)", n.node, n.self.Name, why)})
}

// followerFed is the federation listener of a follower: messages go on
// to the leader with the key their sender presented; while the leader
// cannot be reached, heartbeats are taken (the standby heartbeats keep
// the DC heard) and other messages refused with 503, which the sender
// retries.
func (n *nodeRuntime) followerFed() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+httpapi.PeerPath, n.forwardPeer)
	mux.HandleFunc("/v1/node/", func(w http.ResponseWriter, r *http.Request) {
		leader, _, _ := n.leaderAddr()
		httpapi.WriteError(w, &vipsmart.Error{Code: vipsmart.EUNAVAILABLE, Message: fmt.Sprintf("node %s is a follower of DC %s; the leader is %q", n.node, n.self.Name, leader)})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, vipsmart.Errorf(vipsmart.ENOTFOUND, "", "no such endpoint %s %s on the federation listener of node %s", r.Method, r.URL.Path, n.node))
	})
	return httpapi.WithNodes(mux, n.nodeAddrs)
}

func (n *nodeRuntime) forwardPeer(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpapi.MaxPeerBody))
	if err != nil {
		httpapi.WriteError(w, vipsmart.Errorf(vipsmart.EINVALID, "", "reading the message: %v", err))
		return
	}
	key := identity.PeerFingerprint(r.TLS)
	leader, addr, _ := n.leaderAddr()
	if leader != "" && addr != "" && leader != n.node {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+httpapi.PeerPath, bytes.NewReader(body))
		ctype := r.Header.Get("Content-Type") // JSON, or a batch frame (httpapi.BatchMessageType)
		if ctype == "" {
			ctype = "application/json"
		}
		req.Header.Set("Content-Type", ctype)
		req.Header.Set(httpapi.ForwardedPeerKeyHeader, key)
		if resp, err := n.tr.RoundTrip(req); err == nil {
			defer resp.Body.Close()
			for _, h := range []string{"Content-Type", "Retry-After"} {
				if v := resp.Header.Get(h); v != "" {
					w.Header().Set(h, v)
				}
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
			return
		}
	}
	var m struct {
		Type federation.MsgType `json:"type"`
	}
	if json.Unmarshal(body, &m) == nil && (m.Type == federation.MsgHeartbeat || m.Type == federation.MsgHeartbeatResp) {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	httpapi.WriteError(w, &vipsmart.Error{Code: vipsmart.EUNAVAILABLE, Message: fmt.Sprintf("DC %s has no reachable leader right now (node %s answered); retry", n.self.Name, n.node)})
}

// leaderFed is the federation listener of the leader: the peer routes of
// the daemon, believing a follower's forwarded sender key, and the node
// routes for the DC's own key only.
func (n *nodeRuntime) leaderFed(d *daemon.Daemon, op http.Handler, log *slog.Logger) http.Handler {
	own := n.ownKey
	peer := (&httpapi.Server{Peer: d, Logger: log, TrustForward: own}).Peers(identity.PeerFingerprint)
	mux := http.NewServeMux()
	mux.Handle("/", peer)
	mux.HandleFunc(nodeReportPath, func(w http.ResponseWriter, r *http.Request) {
		if !own(identity.PeerFingerprint(r.TLS)) {
			httpapi.WriteError(w, vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "only the nodes of DC %s may ask for its report", n.self.Name))
			return
		}
		rep, err := d.Report(r.Context())
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		w.Header().Set(announceGenHeader, leaderGen(d))
		httpapi.WriteJSON(w, http.StatusOK, rep)
	})
	mux.HandleFunc("GET "+nodeAnnouncePath, n.serveAnnouncements(d))
	mux.HandleFunc(nodeOpPrefix+"/", func(w http.ResponseWriter, r *http.Request) {
		if !own(identity.PeerFingerprint(r.TLS)) {
			httpapi.WriteError(w, vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "only the nodes of DC %s may forward operator requests to it", n.self.Name))
			return
		}
		var c vipsmart.Caller
		if err := json.Unmarshal([]byte(r.Header.Get(httpapi.ForwardedCallerHeader)), &c); err != nil || c.Via == "" {
			httpapi.WriteError(w, vipsmart.Errorf(vipsmart.EINVALID, "", "a forwarded operator request needs the %s header", httpapi.ForwardedCallerHeader))
			return
		}
		r2 := r.Clone(vipsmart.WithCaller(r.Context(), c))
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, nodeOpPrefix)
		r2.URL.RawPath = ""
		r2.RequestURI = r2.URL.RequestURI()
		op.ServeHTTP(w, r2)
	})
	return httpapi.WithNodes(mux, n.nodeAddrs)
}

// followThenLead runs this node as a follower of its DC until it wins
// the leadership (then store is fenced by it and led is true) or a
// signal ends the wait (led false, nil error: a clean stop). While it
// follows, fann (if not nil) announces the leader's set; on winning,
// inherited is the set it last announced, which the daemon keeps until it
// knows better.
func followThenLead(ctx context.Context, log *slog.Logger, o *serveOptions, self vipsmart.DC, store *openedStore, ts *trustServe, peers *httpapi.PeerClient, errc chan error, fann vipsmart.Announcer) (led bool, inherited []vipsmart.Announcement, err error) {
	nr := newNodeRuntime(log, o, self, store, ts.id, peers)
	ts.node = nr
	if err := store.session.Claim(ctx, nr.claimInfo()); err != nil {
		return false, nil, fmt.Errorf("node %s of DC %s: %w", nr.node, self.Name, err)
	}
	if fann != nil {
		if w, ok := fann.(vipsmart.Watcher); ok {
			// Session changes are logged by the announcer; the event log
			// is the leader's, which gets them once this node leads.
			w.Watch(func(string, string) {})
		}
		nr.mirror = newMirror(log, fann, nr.fetchAnnouncements)
		nr.mirror.start(ctx)
	}
	nr.start(ctx)
	go nr.watchKey(ctx, ts.id, o.trust.tlsCert != "", &nr.pendingKey)
	sctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	lead, err := nr.follow(sctx, ts, errc)
	if nr.mirror != nil {
		inherited = nr.mirror.stop()
	}
	if err != nil {
		if sctx.Err() != nil && ctx.Err() == nil {
			log.Info("stopped while following", "node", nr.node)
			return false, nil, nil
		}
		return false, nil, err
	}
	store.lead(lead)
	log.Info("leading the DC", "dc", self.Name, "node", nr.node, "election_key", lead.Key(), "inherited_announcements", len(inherited))
	return true, inherited, nil
}

// regain is what a leader does once its lease ended (it was cut from
// etcd, or frozen): it keeps serving from memory (the daemon runs on;
// every write fails, fenced or unavailable) and asks etcd every half
// second who leads. While etcd does not answer, it waits. If another node
// leads, it stops (error: its supervisor restarts it, and it follows). If
// none does, it starts a new session and campaigns: on winning it leads
// again with the same daemon, its writes fenced by the new term.
func (n *nodeRuntime) regain(ctx context.Context, store *openedStore) error {
	ttl := time.Duration(max(2, int(n.ttl.Seconds()))) * time.Second
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		leader, _, err := n.st.Leader(c)
		cancel()
		if err != nil && vipsmart.ErrorCodeOf(err) != vipsmart.ENOTFOUND {
			// etcd does not answer this node. If another node of the DC
			// answers as the leader, etcd answers the others: this node
			// alone is cut off, and it stops. Else serve on.
			if other := n.otherLeader(ctx); other != "" {
				return fmt.Errorf("node %s lost the leadership of DC %s to node %s, which answers as the leader, while this node cannot reach etcd: stopping, so that only the leader acts; restarted, it follows", n.node, n.self.Name, other)
			}
			continue
		}
		if err == nil && leader != n.node {
			return fmt.Errorf("node %s lost the leadership of DC %s to node %s (its etcd lease ended: etcd unreachable or this process frozen for longer than %s): stopping, so that only the leader acts; restarted, it follows", n.node, n.self.Name, leader, ttl)
		}
		c, cancel = context.WithTimeout(ctx, 3*ttl)
		se, err := n.st.NewSession(c, n.node, ttl)
		if err != nil {
			cancel()
			continue
		}
		if err := se.Claim(c, n.claimInfo()); err != nil {
			cancel()
			_ = se.Close()
			continue
		}
		l, err := se.Campaign(c)
		cancel()
		if err != nil {
			_ = se.Close()
			continue
		}
		n.se = se
		store.setSession(se)
		store.lead(l)
		return nil
	}
}

// otherLeader asks the DC's other nodes (as last seen in etcd) for the
// leader's report: the name of one that answers as the leader, or "".
func (n *nodeRuntime) otherLeader(ctx context.Context) string {
	n.mu.Lock()
	claims := slices.Clone(n.claims)
	n.mu.Unlock()
	for _, c := range claims {
		var ni nodeInfo
		if c.Node == n.node || json.Unmarshal(c.Info, &ni) != nil || ni.Address == "" {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		req, _ := http.NewRequestWithContext(pctx, http.MethodGet, "https://"+ni.Address+nodeReportPath, nil)
		resp, err := n.tr.RoundTrip(req)
		cancel()
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return c.Node
		}
	}
	return ""
}
