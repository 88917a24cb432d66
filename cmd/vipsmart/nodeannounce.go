package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/announce"
	"github.com/vipsmart/vipsmart/announce/netlink"
	"github.com/vipsmart/vipsmart/daemon"
	"github.com/vipsmart/vipsmart/httpapi"
	"github.com/vipsmart/vipsmart/identity"
)

// Every node of a DC on etcd announces the DC's set (docs/ha.md, "BGP
// with several nodes"), MetalLB style: the leader computes the set and
// hands it to its announcers; each follower mirrors it through its own
// announcers (all but netlink: an address bound on several hosts of one
// segment would conflict) with Set(the leader's set), learned from the
// leader. When the leader is gone a follower keeps announcing what it
// announced; when it becomes the leader it hands its announcers to its
// daemon, which keeps that set announced until it knows better
// (daemon.Config.Inherited), so that a failover withdraws nothing but the
// dead node's own routes.

const (
	// nodeAnnouncePath is where the leader serves its set to its
	// followers (the DC's own key only).
	nodeAnnouncePath = "/v1/node/announcements"
	// announceGenHeader carries, on the leader's report, the generation
	// of its set: a follower fetches the set when it changes.
	announceGenHeader = "Vipsmart-Announcements"
)

// announceSet is the answer of nodeAnnouncePath.
type announceSet struct {
	Generation    string                  `json:"generation"`
	Announcements []vipsmart.Announcement `json:"announcements"`
}

// runID tells this process's generations from another's (a leader that
// restarts counts from 1 again).
var runID = func() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// leaderSet is the leader daemon's set with its generation ("" before
// the daemon handed its announcers anything).
func leaderSet(d *daemon.Daemon) announceSet {
	gen, set := d.Announcements()
	if gen == 0 {
		return announceSet{}
	}
	if set == nil {
		set = []vipsmart.Announcement{}
	}
	return announceSet{Generation: runID + "-" + strconv.FormatUint(gen, 10), Announcements: set}
}

// leaderGen is the generation of the leader daemon's set, as leaderSet
// names it, without copying the set (for every report).
func leaderGen(d *daemon.Daemon) string {
	gen := d.AnnouncementsGeneration()
	if gen == 0 {
		return ""
	}
	return runID + "-" + strconv.FormatUint(gen, 10)
}

// serveAnnouncements is the leader's nodeAnnouncePath.
func (n *nodeRuntime) serveAnnouncements(d *daemon.Daemon) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if key := identity.PeerFingerprint(r.TLS); !n.ownKey(key) {
			httpapi.WriteError(w, vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "only the nodes of DC %s may ask for its announcements", n.self.Name))
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, leaderSet(d))
	}
}

// followerAnnouncer is what a follower announces with: every announcer of
// a (announce.Multi or one), less netlink; nil if none is left.
func followerAnnouncer(a vipsmart.Announcer) vipsmart.Announcer {
	parts, ok := a.(announce.Multi)
	if !ok {
		parts = announce.Multi{a}
	}
	var out announce.Multi
	for _, p := range parts {
		if _, isNL := p.(*netlink.Announcer); !isNL {
			out = append(out, p)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}

// mirror applies the leader's set to a follower's announcer: want is
// called with the generation the leader's last report named; a change is
// fetched from the leader and handed to Set, retried every second while
// it fails. It never withdraws anything on its own: without a leader,
// what was announced stays.
type mirror struct {
	log   *slog.Logger
	ann   vipsmart.Announcer
	fetch func(ctx context.Context, addr string) (announceSet, error)

	mu      sync.Mutex
	wantGen string
	addr    string
	haveGen string
	set     []vipsmart.Announcement // last handed to Set
	handed  bool
	stopped bool
	kick    chan struct{}
	done    chan struct{}
	cancel  context.CancelFunc
}

func newMirror(log *slog.Logger, ann vipsmart.Announcer, fetch func(ctx context.Context, addr string) (announceSet, error)) *mirror {
	return &mirror{log: log, ann: ann, fetch: fetch, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// start runs the mirror until stop or ctx ends.
func (m *mirror) start(ctx context.Context) {
	ctx, m.cancel = context.WithCancel(ctx)
	go m.run(ctx)
}

// want notes the generation the leader at addr announces.
func (m *mirror) want(gen, addr string) {
	if gen == "" {
		return // a leader of an older version, or one not announcing yet
	}
	m.mu.Lock()
	changed := gen != m.wantGen
	m.wantGen, m.addr = gen, addr
	m.mu.Unlock()
	if changed {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

func (m *mirror) run(ctx context.Context) {
	defer close(m.done)
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-retry.C:
		}
		m.mu.Lock()
		gen, addr, have := m.wantGen, m.addr, m.haveGen
		m.mu.Unlock()
		if gen == "" || gen == have {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := m.fetch(fctx, addr)
		cancel()
		if err != nil {
			m.log.Debug("fetching the leader's announcements", "leader", addr, "err", err)
			continue
		}
		if s.Generation == "" {
			continue
		}
		m.mu.Lock()
		if m.stopped {
			m.mu.Unlock()
			return
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = m.ann.Set(sctx, s.Announcements)
		cancel()
		m.set, m.handed = s.Announcements, true
		if err == nil {
			m.haveGen = s.Generation
		} else {
			m.log.Warn("announcing the DC's set on this node failed; retrying", "err", err)
		}
		m.mu.Unlock()
	}
}

// stop ends the mirror and returns the set last handed to the announcer
// (nil if none): the announcer is the caller's from then on.
func (m *mirror) stop() []vipsmart.Announcement {
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.handed {
		return nil
	}
	return slices.Clone(m.set)
}

// fetchAnnouncements asks the leader at addr for its set.
func (n *nodeRuntime) fetchAnnouncements(ctx context.Context, addr string) (announceSet, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+nodeAnnouncePath, nil)
	resp, err := n.tr.RoundTrip(req)
	if err != nil {
		return announceSet{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return announceSet{}, fmt.Errorf("the leader at %s answered %s", addr, resp.Status)
	}
	var s announceSet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&s); err != nil {
		return announceSet{}, fmt.Errorf("the leader's announcements: %w", err)
	}
	return s, nil
}
