package bfd

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	pkt "github.com/osrg/gobgp/v4/pkg/packet/bfd"
)

// Ports of single-hop BFD (RFC 5881).
const (
	Port          = 3784
	srcPortFirst  = 49152
	srcPortLast   = 65535
	rxQueueLength = 16
)

// Options configure a Server.
type Options struct {
	// ListenPort is where control packets are received (default 3784);
	// PeerPort where they are sent (default 3784). Tests change them.
	ListenPort, PeerPort int
	// ListenAddr is the address to listen on and to send from (default:
	// every address; the kernel picks the source).
	ListenAddr netip.Addr
	// Logger gets the sessions' state changes (default: discard).
	Logger *slog.Logger
}

// Server runs BFD sessions over UDP: one socket on ListenPort receives the
// control packets of every session (dispatched by source address); each
// session sends from its own socket, from a port in 49152-65535 to the
// peer's port 3784, with TTL 255. The listening socket is opened with the
// first session. It is safe for concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	conn     net.PacketConn
	sessions map[netip.Addr]*runner
	closed   bool
	wg       sync.WaitGroup
}

// NewServer returns a server with no session.
func NewServer(opts Options) *Server {
	if opts.ListenPort == 0 {
		opts.ListenPort = Port
	}
	if opts.PeerPort == 0 {
		opts.PeerPort = Port
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, log: log.With("component", "bfd"), sessions: map[netip.Addr]*runner{}}
}

// Add starts a session with peer (replacing one with other timers).
func (s *Server) Add(peer netip.Addr, cfg Config) error {
	peer = peer.Unmap()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("the BFD server is closed")
	}
	if r, ok := s.sessions[peer]; ok {
		if r.cfg == cfg {
			return nil
		}
		r.stop()
		delete(s.sessions, peer)
	}
	if s.conn == nil {
		addr := ":" + strconv.Itoa(s.opts.ListenPort)
		if s.opts.ListenAddr.IsValid() {
			addr = net.JoinHostPort(s.opts.ListenAddr.String(), strconv.Itoa(s.opts.ListenPort))
		}
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("BFD: listening on UDP %s: %w", addr, err)
		}
		s.conn = c
		s.wg.Add(1)
		go s.readLoop(c)
	}
	out, err := dial(s.opts.ListenAddr, peer, s.opts.PeerPort)
	if err != nil {
		return fmt.Errorf("BFD with %s: %w", peer, err)
	}
	r := &runner{peer: peer, cfg: cfg, sess: NewSession(cfg, discriminator()), out: out, log: s.log,
		rx: make(chan *pkt.BFDHeader, rxQueueLength), quit: make(chan struct{}), done: make(chan struct{})}
	r.state.Store(Down, false)
	s.sessions[peer] = r
	go r.run()
	return nil
}

// Remove ends the session with peer, telling it AdminDown.
func (s *Server) Remove(peer netip.Addr) {
	s.mu.Lock()
	r, ok := s.sessions[peer.Unmap()]
	delete(s.sessions, peer.Unmap())
	s.mu.Unlock()
	if ok {
		r.stop()
	}
}

// State returns the state of the session with peer (ok false: none).
func (s *Server) State(peer netip.Addr) (st State, ok bool) {
	st, _, ok = s.Status(peer)
	return st, ok
}

// Status returns the state of the session with peer and whether it is
// down because of a failure (see Session.Failed); ok false: no session.
func (s *Server) Status(peer netip.Addr) (st State, failed, ok bool) {
	s.mu.Lock()
	r, ok := s.sessions[peer.Unmap()]
	s.mu.Unlock()
	if !ok {
		return Down, false, false
	}
	st, failed = r.state.Load()
	return st, failed, true
}

// Close ends every session and closes the listening socket.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	rs := s.sessions
	s.sessions = map[netip.Addr]*runner{}
	c := s.conn
	s.mu.Unlock()
	for _, r := range rs {
		r.stop()
	}
	if c != nil {
		c.Close()
	}
	s.wg.Wait()
}

// readLoop dispatches the received control packets until c is closed.
func (s *Server) readLoop(c net.PacketConn) {
	defer s.wg.Done()
	buf := make([]byte, 512)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		h := &pkt.BFDHeader{}
		if err := h.UnmarshalBinary(buf[:n]); err != nil {
			continue
		}
		s.mu.Lock()
		r := s.sessions[ua.AddrPort().Addr().Unmap()]
		s.mu.Unlock()
		if r != nil {
			select {
			case r.rx <- h:
			default: // the session is behind: a lost packet, as on the wire
			}
		}
	}
}

// discriminator returns a random nonzero discriminator.
func discriminator() uint32 {
	var b [4]byte
	for {
		_, _ = rand.Read(b[:])
		if d := binary.BigEndian.Uint32(b[:]); d != 0 {
			return d
		}
	}
}

// dial opens the sending socket of a session: from a free port in
// 49152-65535 to peer's port, TTL 255 (RFC 5881).
func dial(local, peer netip.Addr, port int) (*net.UDPConn, error) {
	raddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, uint16(port)))
	var last error
	for try := 0; try < 20; try++ {
		src := srcPortFirst + mrand.IntN(srcPortLast-srcPortFirst+1)
		la := &net.UDPAddr{Port: src}
		if local.IsValid() {
			la.IP = local.AsSlice()
		}
		d := net.Dialer{LocalAddr: la, Control: setTTL255}
		c, err := d.DialContext(context.Background(), "udp", raddr.String())
		if err != nil {
			last = err
			continue
		}
		return c.(*net.UDPConn), nil
	}
	return nil, last
}

// runner drives one Session: it sends the periodic packets, processes the
// received ones and the detection timer, on its own goroutine.
type runner struct {
	peer  netip.Addr
	cfg   Config
	sess  *Session
	out   *net.UDPConn
	log   *slog.Logger
	state atomicState
	rx    chan *pkt.BFDHeader
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func (r *runner) stop() {
	r.once.Do(func() { close(r.quit) })
	<-r.done
}

func (r *runner) send(h *pkt.BFDHeader) {
	b, err := h.MarshalBinary()
	if err != nil {
		return
	}
	// A write fails while the peer's port is unreachable (ICMP): the
	// next one is tried on time all the same.
	_, _ = r.out.Write(b)
}

func (r *runner) run() {
	defer close(r.done)
	defer r.out.Close()
	tx := time.NewTimer(0)
	defer tx.Stop()
	det := time.NewTimer(time.Hour)
	defer det.Stop()
	det.Stop()
	// curIv is the transmit interval the tx timer was armed with; a
	// change (the session came Up, the remote asked for a faster or
	// slower rate) re-arms it at once rather than after the old interval.
	curIv := r.sess.TxInterval()
	report := func(was State) {
		st := r.sess.State()
		r.state.Store(st, r.sess.Failed())
		if st == was {
			return
		}
		msg := "BFD session " + StateName(was) + " -> " + StateName(st)
		if st == Down {
			r.log.Warn(msg, "peer", r.peer.String(), "diag", r.sess.Diag().String())
		} else {
			r.log.Info(msg, "peer", r.peer.String())
		}
		// A change goes out at once (the remote learns it sooner).
		r.send(r.sess.Packet(false))
		tx.Reset(r.sess.Jitter(mrand.Float64()))
	}
	rearm := func() {
		det.Stop()
		if d := r.sess.Deadline(); !d.IsZero() {
			det.Reset(max(time.Until(d), 0))
		}
	}
	for {
		select {
		case <-r.quit:
			// Tell the remote we go away on purpose (AdminDown), so
			// that it does not take this for a failure.
			h := r.sess.Packet(false)
			h.State, h.Diagnostic, h.Poll = AdminDown, pkt.DiagnosticAdministrativelyDown, false
			r.send(h)
			return
		case h := <-r.rx:
			ok, was := r.sess.Receive(time.Now(), h)
			if !ok {
				continue
			}
			if r.sess.FinalDue() {
				r.send(r.sess.Packet(true))
			}
			report(was)
			if iv := r.sess.TxInterval(); iv != curIv {
				curIv = iv
				tx.Reset(r.sess.Jitter(mrand.Float64()))
			}
			rearm()
		case <-tx.C:
			if iv := r.sess.Jitter(mrand.Float64()); iv > 0 {
				r.send(r.sess.Packet(false))
				tx.Reset(iv)
			} else {
				tx.Reset(slowTx)
			}
		case <-det.C:
			was := r.sess.State()
			if r.sess.Expire(time.Now()) {
				report(was)
			}
			rearm()
		}
	}
}

// atomicState is a session's state read from other goroutines.
type atomicState struct {
	mu     sync.Mutex
	st     State
	failed bool
}

func (a *atomicState) Store(st State, failed bool) {
	a.mu.Lock()
	a.st, a.failed = st, failed
	a.mu.Unlock()
}

func (a *atomicState) Load() (State, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st, a.failed
}
