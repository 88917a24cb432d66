package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/vipsmart/vipsmart/etcd/etcdtest"
)

// The segment of issue 11: one L2 segment (lanLab's bridge) with three
// nodes, a client and an ARP watcher on it, and a 3-member etcd reachable
// from the nodes over the same segment.
//
//	n1, n2, n3  10.77.0.1-3     the nodes (vipsmart or keepalived), eth0 on the bridge
//	client      10.77.0.100     pings the VIP every 10 ms (ICMP echo) and captures
//	                            the replies with their source MAC
//	watch       10.77.0.101     asks "who has the VIP?" (ARP) every 25 ms and captures
//	                            every ARP answer for it (replies, gratuitous ARPs)
//	etcd        10.77.0.201-203 one namespace, three etcd members (one per address)
//
// The watcher is a namespace of its own so that its ARP traffic never
// touches the client's ARP cache: the client finds the holder as any host
// would (gratuitous ARP, or its own resolution once an entry failed), and
// its measured outage is a real client's. A node's "link cut" is its eth0
// set down (it loses the segment and etcd at once); its "path to etcd cut"
// is iptables in its namespace dropping everything to and from the etcd
// addresses (silently, as a broken switch or firewall would).
type segment struct {
	*lanLab
	nodes    []string // namespaces of n1..n3
	client   string
	watch    string
	etcdNS   string
	etcdURLs []string
	etcdArgs [][]string
	etcd     []*proc

	probe   *capture // in client: ICMP echo replies
	arpLog  *capture // in watch: ARP answers for the VIP
	service []net.Listener
}

// segVIP is the VIP the segment tests move (lanVIP, 10.77.0.50).
const segVIP = lanVIP

// segServicePort is the port each node's service listens on (the health
// check of both vipsmart and keepalived is a TCP connect to it).
const segServicePort = 8080

func segNodeIP(i int) string { return "10.77.0." + strconv.Itoa(i+1) }

// newSegment builds the segment: bridge, nodes n1-n3 each with a service
// listening on :8080, the client (prober started) and the watcher (ARP
// requests started); with etcd, the three etcd members too.
func newSegment(t testing.TB, withEtcd bool) *segment {
	t.Helper()
	s := &segment{lanLab: newLANLab(t)}
	for i := 0; i < 3; i++ {
		s.nodes = append(s.nodes, s.host("n"+strconv.Itoa(i+1), i+1))
		s.service = append(s.service, nil)
		s.serve(i)
	}
	s.client = s.host("client", 100)
	s.watch = s.host("watch", 101)
	if withEtcd {
		s.startEtcd()
	}
	s.probe = newCapture(t, s.client, segVIP, 0)
	s.probe.pingEvery(t, 10*time.Millisecond)
	s.arpLog = newCapture(t, s.watch, segVIP, 25*time.Millisecond)
	return s
}

// startEtcd starts a 3-member etcd in namespace etcd (10.77.0.201-203)
// and waits until every member is healthy.
func (s *segment) startEtcd() {
	t := s.t
	t.Helper()
	etcdBin := etcdtest.Need(t)
	s.etcdNS = s.host("etcd", 201)
	var peers []string
	for i := 0; i < 3; i++ {
		ip := "10.77.0." + strconv.Itoa(201+i)
		if i > 0 {
			nsExec(t, s.etcdNS, "ip", "addr", "add", ip+"/24", "dev", "eth0")
		}
		s.etcdURLs = append(s.etcdURLs, "http://"+ip+":2379")
		peers = append(peers, "m"+strconv.Itoa(i+1)+"=http://"+ip+":2380")
	}
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		ip := "10.77.0." + strconv.Itoa(201+i)
		name := "m" + strconv.Itoa(i+1)
		s.etcdArgs = append(s.etcdArgs, []string{etcdBin, "--name", name,
			"--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", s.etcdURLs[i], "--advertise-client-urls", s.etcdURLs[i],
			"--listen-peer-urls", "http://" + ip + ":2380", "--initial-advertise-peer-urls", "http://" + ip + ":2380",
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
			"--log-level", "warn"})
		s.etcd = append(s.etcd, nil)
	}
	s.restartEtcd()
}

// restartEtcd starts every etcd member that is not running (all of them
// at first) and waits until all are healthy.
func (s *segment) restartEtcd() {
	t := s.t
	t.Helper()
	for i, args := range s.etcdArgs {
		if s.etcd[i] == nil || s.etcd[i].exited() {
			s.etcd[i] = startProc(t, s.etcdNS, "etcd m"+strconv.Itoa(i+1), args...)
		}
	}
	hc := httpIn(s.etcdNS)
	eventually(t, 30*time.Second, "the 3 etcd members healthy", func() error {
		for _, u := range s.etcdURLs {
			resp, err := hc.Get(u + "/health")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s/health: %s", u, resp.Status)
			}
		}
		return nil
	})
}

// serve opens node i's service: a TCP listener on :8080 in its namespace
// that accepts and closes connections (what both health checks connect
// to).
func (s *segment) serve(i int) {
	s.t.Helper()
	var ln net.Listener
	if err := inNS(s.nodes[i], func() error {
		var err error
		ln, err = net.Listen("tcp", ":"+strconv.Itoa(segServicePort))
		return err
	}); err != nil {
		s.t.Fatalf("service of n%d: %v", i+1, err)
	}
	s.service[i] = ln
	s.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// failService closes node i's service: its health check fails from now.
func (s *segment) failService(i int) { s.service[i].Close() }

// cutLink sets node i's eth0 down; healLink sets it up again.
func (s *segment) cutLink(i int) { sh(s.t, "ip", "-n", s.nodes[i], "link", "set", "eth0", "down") }
func (s *segment) healLink(i int) {
	sh(s.t, "ip", "-n", s.nodes[i], "link", "set", "eth0", "up")
}

// cutEtcd drops every packet between node i and the etcd members
// (iptables in its namespace); healEtcd removes the rules.
func (s *segment) cutEtcd(i int)  { s.etcdRules(i, "-I") }
func (s *segment) healEtcd(i int) { s.etcdRules(i, "-D") }

func (s *segment) etcdRules(i int, op string) {
	s.t.Helper()
	for _, r := range [][]string{{"OUTPUT", "-d"}, {"INPUT", "-s"}} {
		nsExec(s.t, s.nodes[i], "iptables", "-w", op, r[0], r[1], "10.77.0.201/32,10.77.0.202/32,10.77.0.203/32", "-j", "DROP")
	}
}

// mac returns node i's MAC address (eth0).
func (s *segment) mac(i int) string { return mac(s.t, s.nodes[i], "eth0") }

// holderByMAC returns the index of the node whose MAC is m (-1 if none).
func (s *segment) holderByMAC(m string) int {
	for i := range s.nodes {
		if s.mac(i) == m {
			return i
		}
	}
	return -1
}

// seen is one frame the capture kept: when it arrived, its source MAC, and
// for ARP whether it was gratuitous and which of the watcher's requests
// (epoch) was the latest when it arrived.
type seen struct {
	at    time.Time
	mac   string
	garp  bool
	epoch int
}

// capture reads every frame on eth0 of a namespace (AF_PACKET) and keeps
// the ARP answers for the VIP (replies and gratuitous ARPs, from anyone)
// and the ICMP echo replies from the VIP. With an ARP interval it also
// asks for the VIP (broadcast ARP request) at that interval; with
// pingEvery it sends ICMP echo requests to the VIP.
type capture struct {
	ns   string
	vip  netip.Addr
	own  net.HardwareAddr
	ip   netip.Addr
	conn *packet.Conn
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	arps   []seen
	echoes []seen
	epoch  int
	sent   int // echo requests sent
}

func newCapture(t testing.TB, ns, vip string, arpEvery time.Duration) *capture {
	t.Helper()
	c := &capture{ns: ns, vip: netip.MustParseAddr(vip), stop: make(chan struct{})}
	err := inNS(ns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c.own = ifi.HardwareAddr
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				c.ip = p.Addr()
			}
		}
		c.conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		t.Fatalf("capture in %s: %v", ns, err)
	}
	t.Cleanup(func() {
		close(c.stop)
		c.conn.Close()
		c.wg.Wait()
	})
	c.wg.Add(1)
	go c.read()
	if arpEvery > 0 {
		c.wg.Add(1)
		go c.ask(t, arpEvery)
	}
	return c
}

func (c *capture) read() {
	defer c.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		at := time.Now()
		var f ethernet.Frame
		if err := f.UnmarshalBinary(buf[:n]); err != nil || f.Source.String() == c.own.String() {
			continue
		}
		switch f.EtherType {
		case ethernet.EtherTypeARP:
			var p arp.Packet
			if p.UnmarshalBinary(f.Payload) != nil || p.SenderIP != c.vip {
				continue
			}
			garp := p.TargetIP == c.vip
			if p.Operation != arp.OperationReply && !garp {
				continue // a request from the VIP's holder for some other host
			}
			c.mu.Lock()
			c.arps = append(c.arps, seen{at: at, mac: p.SenderHardwareAddr.String(), garp: garp, epoch: c.epoch})
			c.mu.Unlock()
		case ethernet.EtherTypeIPv4:
			h, err := ipv4.ParseHeader(f.Payload)
			if err != nil || h.Protocol != 1 || h.Src.String() != c.vip.String() || len(f.Payload) < h.Len {
				continue
			}
			m, err := icmp.ParseMessage(1, f.Payload[h.Len:])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			c.mu.Lock()
			c.echoes = append(c.echoes, seen{at: at, mac: f.Source.String()})
			c.mu.Unlock()
		}
	}
}

// ask broadcasts an ARP request for the VIP every interval.
func (c *capture) ask(t testing.TB, every time.Duration) {
	defer c.wg.Done()
	p, err := arp.NewPacket(arp.OperationRequest, c.own, c.ip, ethernet.Broadcast, c.vip)
	if err != nil {
		t.Errorf("ARP request: %v", err)
		return
	}
	pb, _ := p.MarshalBinary()
	fb, _ := (&ethernet.Frame{Destination: ethernet.Broadcast, Source: c.own, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tk.C:
		}
		c.mu.Lock()
		c.epoch++
		c.mu.Unlock()
		_, _ = c.conn.WriteTo(fb, &packet.Addr{HardwareAddr: ethernet.Broadcast})
	}
}

// pingEvery sends an ICMP echo request to the VIP every interval from the
// capture's namespace (through the kernel: the client's own ARP cache
// decides where it goes). The replies are read by the capture.
func (c *capture) pingEvery(t testing.TB, every time.Duration) {
	p := newPinger(t, c.ns)
	dst := &net.IPAddr{IP: net.IP(c.vip.AsSlice())}
	c.wg.Add(2)
	go func() { // drain the ICMP socket (the capture reads the replies)
		defer c.wg.Done()
		buf := make([]byte, 1500)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			_ = p.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, _, _ = p.c.ReadFrom(buf)
		}
	}()
	go func() {
		defer c.wg.Done()
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-tk.C:
			}
			_, _ = p.send(dst) // errors (no route, unreachable) while the VIP moves: keep sending
			c.mu.Lock()
			c.sent++
			c.mu.Unlock()
		}
	}()
}

func (c *capture) snapshot() (arps, echoes []seen) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]seen(nil), c.arps...), append([]seen(nil), c.echoes...)
}

// waitEcho waits until an echo reply from MAC m arrived after since and
// returns when the first one did.
func (c *capture) waitEcho(t testing.TB, m string, since time.Time, timeout time.Duration, what string) time.Time {
	t.Helper()
	return c.waitFrom(t, "echo reply", func() []seen { _, es := c.snapshot(); return es }, m, since, timeout, what)
}

// waitARP waits until an ARP answer for the VIP from MAC m arrived after
// since.
func (c *capture) waitARP(t testing.TB, m string, since time.Time, timeout time.Duration, what string) time.Time {
	t.Helper()
	return c.waitFrom(t, "ARP answer", func() []seen { as, _ := c.snapshot(); return as }, m, since, timeout, what)
}

// waitFrom waits until list (a snapshot of one kind of capture, named
// kind) holds an entry from MAC m after since, and returns its time.
func (c *capture) waitFrom(t testing.TB, kind string, list func() []seen, m string, since time.Time, timeout time.Duration, what string) time.Time {
	t.Helper()
	var at time.Time
	eventually(t, timeout, what, func() error {
		xs := list()
		for _, x := range xs {
			if x.at.After(since) && x.mac == m {
				at = x.at
				return nil
			}
		}
		last := "none"
		if len(xs) > 0 {
			last = xs[len(xs)-1].mac + " at " + xs[len(xs)-1].at.Format("15:04:05.000")
		}
		return fmt.Errorf("no %s from %s since %s (last: %s)", kind, m, since.Format("15:04:05.000"), last)
	})
	return at
}

// move is what the segment saw around one event that should move the VIP
// from the node with MAC from to the node with MAC to.
type move struct {
	takeover time.Duration // event to the first echo reply from the new holder
	outage   time.Duration // longest time without an echo reply, from the last one before the event
	arpMoved time.Duration // event to the first ARP answer from the new holder
	gap      time.Duration // first ARP answer of the new holder minus the last of the old one (<= 0: both answered)
	lateOld  int           // ARP answers from the old holder after the new one's first
	overlap  time.Duration // the old holder's last answer minus the new one's first (when lateOld > 0)
	doubles  []string      // watcher requests answered by two MACs
	oldSeen  bool          // the old holder answered ARP before the event (so gap means something)
}

// twoMACs reports whether the capture saw two MACs answering within the
// same moment.
func (m move) twoMACs() bool { return m.lateOld > 0 || len(m.doubles) > 0 }

func (m move) String() string {
	s := fmt.Sprintf("takeover %s, client outage %s, ARP moved %s", m.takeover.Round(time.Millisecond), m.outage.Round(time.Millisecond), m.arpMoved.Round(time.Millisecond))
	if m.oldSeen {
		s += fmt.Sprintf(", gap old->new ARP answers %s", m.gap.Round(time.Millisecond))
	}
	if m.twoMACs() {
		d := m.doubles
		if len(d) > 3 {
			d = append(d[:3:3], "...")
		}
		s += fmt.Sprintf(", TWO MACS: %d answers of the old holder after the new one's first (the last %s after it), %d requests answered by both %v", m.lateOld, m.overlap.Round(time.Millisecond), len(m.doubles), d)
	}
	return s
}

// analyse returns what was seen between event and until for a move from
// MAC from to MAC to. ARP answers from 3 s before the event count for the
// old holder's last answer; requests answered by two MACs count from since
// on (when the segment was last seen steady, at most 3 s before the
// event).
func (s *segment) analyse(since, event, until time.Time, from, to string) move {
	arps, _ := s.arpLog.snapshot()
	_, pings := s.probe.snapshot()
	var m move
	lookback := event.Add(-3 * time.Second)
	if since.Before(lookback) {
		since = lookback
	}
	var firstNew, lastOld time.Time
	byEpoch := map[int]map[string]bool{}
	for _, a := range arps {
		if a.at.Before(lookback) || a.at.After(until) {
			continue
		}
		if !a.garp && !a.at.Before(since) {
			if byEpoch[a.epoch] == nil {
				byEpoch[a.epoch] = map[string]bool{}
			}
			byEpoch[a.epoch][a.mac] = true
		}
		switch {
		case a.mac == to && !a.at.Before(event) && firstNew.IsZero():
			firstNew = a.at
		case a.mac == from:
			if !firstNew.IsZero() {
				m.lateOld++
				m.overlap = a.at.Sub(firstNew)
			} else {
				lastOld = a.at
			}
		}
	}
	for e, macs := range byEpoch {
		if len(macs) > 1 {
			var l []string
			for k := range macs {
				l = append(l, k)
			}
			sort.Strings(l)
			m.doubles = append(m.doubles, fmt.Sprintf("#%d by %s", e, strings.Join(l, "+")))
		}
	}
	sort.Strings(m.doubles)
	if !firstNew.IsZero() {
		m.arpMoved = firstNew.Sub(event)
		if !lastOld.IsZero() {
			m.oldSeen = true
			m.gap = firstNew.Sub(lastOld)
		}
	}
	var prev time.Time
	for _, e := range pings {
		if e.at.After(until) {
			break
		}
		if e.at.Before(event) {
			prev = e.at
			continue
		}
		if m.takeover == 0 && e.mac == to {
			m.takeover = e.at.Sub(event)
		}
		if !prev.IsZero() && e.at.Sub(prev) > m.outage {
			m.outage = e.at.Sub(prev)
		}
		prev = e.at
	}
	if !prev.IsZero() && until.Sub(prev) > m.outage {
		m.outage = until.Sub(prev)
	}
	return m
}

// errTwoMACs is returned by check when the capture saw two holders.
var errTwoMACs = errors.New("two MACs answered ARP for the VIP within the same moment")

// check returns errTwoMACs (wrapped with what was seen) if m saw two
// MACs.
func (m move) check() error {
	if m.twoMACs() {
		return fmt.Errorf("%w: %s", errTwoMACs, m)
	}
	return nil
}

// execOut runs a command in the host namespace and returns its output.
func execOut(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
