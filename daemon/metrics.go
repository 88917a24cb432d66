package daemon

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// The daemon's Prometheus series (docs/metrics.md lists them with example
// alerts). Counters and histograms are updated where the fact happens
// (operations, heartbeats, failovers, events, store writes); gauges are
// read from the loop at scrape time (status, epoch, reachability, GIPs,
// VIPs, announcements), so that they can never drift from what `status`
// says. Labels take only bounded values and object names (DC, GIP and VIP
// names).
type metrics struct {
	ops          *prometheus.CounterVec
	opDuration   *prometheus.HistogramVec
	heartbeatRTT *prometheus.HistogramVec
	failovers    *prometheus.CounterVec
	events       *prometheus.CounterVec
	storeWrites  *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
}

// opKind is the operation label of a proposal.
func opKind(p federation.Proposal) string {
	switch p.Kind {
	case federation.AddDC:
		return "add_dc"
	case federation.RemoveDC:
		return "remove_dc"
	case federation.Leave:
		return "leave"
	case federation.PutGIP:
		if p.Update {
			return "update_gip"
		}
		return "add_gip"
	case federation.DeleteGIP:
		return "remove_gip"
	case federation.RotateIdentity:
		return "rotate_identity"
	case federation.ApplyGIPs:
		return "apply_gips"
	}
	return "other"
}

var opKinds = []string{"add_dc", "remove_dc", "leave", "add_gip", "update_gip", "remove_gip", "rotate_identity", "apply_gips"}

// The reasons of vipsmart_gip_failovers_total: why a DC that was active for
// a GIP no longer is.
const (
	reasonUnreachable = "dc_unreachable"
	reasonVIPDown     = "vip_down"
	reasonPreempted   = "preempted"
	reasonRemoved     = "placement_removed"
)

// newMetrics creates the daemon's series and registers them, with the
// scrape-time collector of d, on reg. A nil reg gives nil (no metrics).
func newMetrics(reg prometheus.Registerer, d *Daemon) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipsmart_operations_total",
			Help: "Federation operations this DC coordinated (dc add/remove/leave, gip add/update/remove), by kind and outcome (ok or the error code).",
		}, []string{"kind", "outcome"}),
		opDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vipsmart_operation_duration_seconds",
			Help:    "Time from proposal to result of the federation operations this DC coordinated.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind"}),
		heartbeatRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vipsmart_peer_heartbeat_rtt_seconds",
			Help:    "Round trip of one heartbeat delivery to a member (request sent to answer received).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
		}, []string{"dc"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipsmart_gip_failovers_total",
			Help: "Times a DC stopped being active for a GIP in this DC's view, by GIP and reason (dc_unreachable, vip_down, preempted, placement_removed).",
		}, []string{"gip", "reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipsmart_events_total",
			Help: "Events recorded in this DC's event log, by kind.",
		}, []string{"kind"}),
		storeWrites: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vipsmart_store_write_duration_seconds",
			Help:    "Duration of durable store writes (fsync included), by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipsmart_store_write_errors_total",
			Help: "Store writes that failed, by operation.",
		}, []string{"op"}),
	}
	for _, k := range opKinds {
		m.ops.WithLabelValues(k, "ok")
	}
	for _, k := range []string{vipsmart.EventStatus, vipsmart.EventFederation, vipsmart.EventHealth, vipsmart.EventGIP, vipsmart.EventVIP, vipsmart.EventConfig} {
		m.events.WithLabelValues(k)
	}
	for _, c := range []prometheus.Collector{m.ops, m.opDuration, m.heartbeatRTT, m.failovers, m.events, m.storeWrites, m.storeErrors, &collector{d: d}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// operation counts one proposal's outcome; call it deferred with the
// proposal's start and a pointer to its error.
func (m *metrics) operation(p federation.Proposal, start time.Time, now func() time.Time, errp *error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err := *errp; err != nil {
		outcome = string(vipsmart.ErrorCodeOf(err))
	}
	k := opKind(p)
	m.ops.WithLabelValues(k, outcome).Inc()
	m.opDuration.WithLabelValues(k).Observe(now().Sub(start).Seconds())
}

func (m *metrics) heartbeat(dc string, rtt time.Duration) {
	if m == nil {
		return
	}
	m.heartbeatRTT.WithLabelValues(dc).Observe(rtt.Seconds())
}

func (m *metrics) eventsAppended(evs []vipsmart.Event) {
	if m == nil {
		return
	}
	for _, e := range evs {
		m.events.WithLabelValues(e.Kind).Inc()
	}
}

// activeChanged counts the failovers of g between two evaluations: each DC
// that was active and no longer is, with the reason.
func (m *metrics) activeChanged(g vipsmart.GIP, was, now []string, view vipsmart.HealthView) {
	if m == nil {
		return
	}
	for _, dc := range was {
		if slices.Contains(now, dc) {
			continue
		}
		reason := reasonPreempted
		i := slices.IndexFunc(g.Placements, func(p vipsmart.Placement) bool { return p.DC == dc })
		if i < 0 {
			reason = reasonRemoved
		} else if ok, why := vipsmart.PlacementHealthy(view, g.Placements[i]); !ok {
			reason = reasonVIPDown
			if strings.HasSuffix(why, "unreachable") {
				reason = reasonUnreachable
			}
		}
		m.failovers.WithLabelValues(g.Name, reason).Inc()
	}
}

// store wraps s so that its writes are timed.
func (m *metrics) store(s vipsmart.Store, now func() time.Time) vipsmart.Store {
	if m == nil {
		return s
	}
	for _, op := range []string{"save_federation", "append_events", "create_vip", "delete_vip"} {
		m.storeWrites.WithLabelValues(op)
		m.storeErrors.WithLabelValues(op)
	}
	return &timedStore{Store: s, m: m, now: now}
}

// timedStore is a vipsmart.Store whose writes feed
// vipsmart_store_write_duration_seconds; reads pass through.
type timedStore struct {
	vipsmart.Store
	m   *metrics
	now func() time.Time
}

func (s *timedStore) observe(op string, start time.Time, err error) {
	s.m.storeWrites.WithLabelValues(op).Observe(s.now().Sub(start).Seconds())
	if err != nil {
		s.m.storeErrors.WithLabelValues(op).Inc()
	}
}

func (s *timedStore) CreateVIP(ctx context.Context, v vipsmart.VIP) error {
	start := s.now()
	err := s.Store.CreateVIP(ctx, v)
	s.observe("create_vip", start, err)
	return err
}

func (s *timedStore) DeleteVIP(ctx context.Context, name string) error {
	start := s.now()
	err := s.Store.DeleteVIP(ctx, name)
	s.observe("delete_vip", start, err)
	return err
}

func (s *timedStore) SaveFederation(ctx context.Context, u vipsmart.FederationUpdate) error {
	start := s.now()
	err := s.Store.SaveFederation(ctx, u)
	s.observe("save_federation", start, err)
	return err
}

func (s *timedStore) AppendEvents(ctx context.Context, evs []vipsmart.Event) ([]vipsmart.Event, error) {
	start := s.now()
	out, err := s.Store.AppendEvents(ctx, evs)
	s.observe("append_events", start, err)
	return out, err
}

// Unwrap returns the wrapped store (for code that looks for an optional
// interface of the real store).
func (s *timedStore) Unwrap() vipsmart.Store { return s.Store }

// collector reads the gauges from the loop at scrape time.
type collector struct{ d *Daemon }

var (
	descStatus = prometheus.NewDesc("vipsmart_dc_status",
		"The local DC's membership status: 1 for the current one of standalone, invited, member, candidate-review, leaving.", []string{"status"}, nil)
	descTimeLeft = prometheus.NewDesc("vipsmart_temporary_status_remaining_seconds",
		"Time left before a temporary status (invited, candidate-review, leaving) reverts by itself; 0 when the status is not temporary.", nil, nil)
	descEpoch = prometheus.NewDesc("vipsmart_federation_epoch",
		"The local DC's federation epoch (raised by every committed change; never goes down).", nil, nil)
	descMembers = prometheus.NewDesc("vipsmart_federation_members",
		"Members of the local DC's federation; 0 when standalone.", nil, nil)
	descReachable = prometheus.NewDesc("vipsmart_peer_reachable",
		"1 if the member DC is reachable (heard from within the detection window), else 0.", []string{"dc"}, nil)
	descLastSeen = prometheus.NewDesc("vipsmart_peer_last_seen_seconds",
		"Seconds since the member DC was last heard from.", []string{"dc"}, nil)
	descPeerEpoch = prometheus.NewDesc("vipsmart_peer_epoch",
		"The epoch the member DC last reported.", []string{"dc"}, nil)
	descGIPs = prometheus.NewDesc("vipsmart_gips",
		"GIPs of the federation held by this DC.", nil, nil)
	descGIPActive = prometheus.NewDesc("vipsmart_gip_active",
		"1 if this DC is active for the GIP (announces it as active), else 0.", []string{"gip"}, nil)
	descGIPPlacements = prometheus.NewDesc("vipsmart_gip_active_placements",
		"Placements active for the GIP in this DC's view (failover: 1, or 0 when none is healthy).", []string{"gip"}, nil)
	descVIPs = prometheus.NewDesc("vipsmart_vips",
		"VIPs of the local DC.", nil, nil)
	descVIPState = prometheus.NewDesc("vipsmart_vip_state",
		"Health of a local VIP: 1 for its current state of up, down, unknown.", []string{"vip", "state"}, nil)
	descAnnounced = prometheus.NewDesc("vipsmart_announced_addresses",
		"Addresses the DC's announcers make real now, by announcer (none, netlink, bgp) and kind (vip, gip-active, gip-standby).", []string{"announcer", "kind"}, nil)
	descScrapeOK = prometheus.NewDesc("vipsmart_daemon_up",
		"1 if the daemon's loop answered this scrape, 0 if it did not in time (the other daemon gauges are then missing).", nil, nil)
)

var statuses = []vipsmart.Status{vipsmart.StatusStandalone, vipsmart.StatusInvited, vipsmart.StatusMember, vipsmart.StatusCandidateReview, vipsmart.StatusLeaving}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStatus, descTimeLeft, descEpoch, descMembers, descReachable, descLastSeen, descPeerEpoch,
		descGIPs, descGIPActive, descGIPPlacements, descVIPs, descVIPState, descAnnounced, descScrapeOK} {
		ch <- d
	}
}

// scrape is what Collect reads from the loop.
type scrape struct {
	st     vipsmart.StatusInfo
	dcs    []vipsmart.DCInfo
	gips   []vipsmart.GIP
	active map[string][]string
	vips   map[string]vipsmart.VIPState
	now    time.Time
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var s scrape
	err := d.call(ctx, func() error {
		s.now = d.cfg.Now()
		s.st = d.node.Status(s.now)
		s.dcs = d.node.DCs(s.now)
		s.gips = d.node.GIPs()
		s.active = make(map[string][]string, len(d.active))
		for g, a := range d.active {
			s.active[g] = a
		}
		s.vips = make(map[string]vipsmart.VIPState, len(d.vips))
		for name := range d.vips {
			s.vips[name], _ = d.vipState(name)
		}
		return nil
	})
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descScrapeOK, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descScrapeOK, prometheus.GaugeValue, 1)
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	for _, st := range statuses {
		gauge(descStatus, b2f(s.st.Status == st), string(st))
	}
	left := 0.0
	if s.st.TimeLeft != nil && s.st.Status.Temporary() {
		left = time.Duration(*s.st.TimeLeft).Seconds()
	}
	gauge(descTimeLeft, left)
	epoch, members := s.st.Epoch, 0
	if f := s.st.Federation; f != nil {
		epoch, members = f.Epoch, len(f.Members)
	}
	gauge(descEpoch, float64(epoch))
	gauge(descMembers, float64(members))
	for _, m := range s.dcs {
		if m.Self {
			continue
		}
		gauge(descReachable, b2f(m.Reachable), m.Name)
		gauge(descPeerEpoch, float64(m.LastEpoch), m.Name)
		if m.LastSeen != nil {
			gauge(descLastSeen, s.now.Sub(*m.LastSeen).Seconds(), m.Name)
		}
	}
	gauge(descGIPs, float64(len(s.gips)))
	self := d.cfg.Self.Name
	for _, g := range s.gips {
		act := s.active[g.Name]
		gauge(descGIPActive, b2f(slices.Contains(act, self)), g.Name)
		gauge(descGIPPlacements, float64(len(act)), g.Name)
	}
	gauge(descVIPs, float64(len(s.vips)))
	for name, st := range s.vips {
		for _, x := range []vipsmart.VIPState{vipsmart.VIPUp, vipsmart.VIPDown, vipsmart.VIPUnknown} {
			gauge(descVIPState, b2f(st == x), name, string(x))
		}
	}
	type annKey struct{ via, kind string }
	counts := map[annKey]int{}
	for _, a := range d.cfg.Announcer.Announced() {
		via, _, _ := strings.Cut(a.Via, " ") // "netlink eth0" -> netlink
		counts[annKey{via, string(a.Kind)}]++
	}
	for k, n := range counts {
		gauge(descAnnounced, float64(n), k.via, k.kind)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
