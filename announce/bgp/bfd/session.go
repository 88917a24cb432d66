// Package bfd runs Bidirectional Forwarding Detection (RFC 5880) for the
// BGP announcer's sessions: asynchronous mode, single hop (RFC 5881: UDP
// port 3784, TTL 255), no echo, no authentication. Its packets are GoBGP's
// codec (github.com/osrg/gobgp/v4/pkg/packet/bfd); the sessions are its
// own, because GoBGP v4's BFD resets the BGP session whenever BFD goes down
// or the router signals AdminDown, and a reset issued while the session is
// down stays queued in GoBGP and kills the next session the moment it is
// established: with BIRD, which stops its BFD session together with the
// BGP session, that never ends once a failure heals (see docs/dataplane.md).
//
// Here BFD only informs. The router runs its own BFD session with us and
// drops the BGP session, and with it our routes, when we fall silent or
// when our packets say Down; vipsmart needs no route from the router, so
// its own BGP session is left to BGP. Session is the pure state machine
// (time comes in as arguments); Server runs sessions over UDP.
//
// Invariants: a session sends at least once a second while not Up (RFC
// 5880 6.8.3), at max(DesiredMinTx, the remote's RequiredMinRx) with
// 75-100% jitter when Up, and declares the session Down when no valid
// packet arrived for the detection time: the remote's multiplier times
// max(our RequiredMinRx, the remote's DesiredMinTx).
package bfd

import (
	"time"

	pkt "github.com/osrg/gobgp/v4/pkg/packet/bfd"
)

// State is a BFD session state.
type State = pkt.StateType

// The states (RFC 5880 4.1).
const (
	AdminDown = pkt.StateAdminDown
	Down      = pkt.StateDown
	Init      = pkt.StateInit
	Up        = pkt.StateUp
)

// StateName is the lower-case name of st: admin-down, down, init, up.
func StateName(st State) string {
	switch st {
	case AdminDown:
		return "admin-down"
	case Init:
		return "init"
	case Up:
		return "up"
	}
	return "down"
}

// Config are a session's timers.
type Config struct {
	// MinRx is the RequiredMinRxInterval, MinTx the DesiredMinTxInterval
	// advertised when Up; Multiplier the DetectMult.
	MinRx, MinTx time.Duration
	Multiplier   uint8
}

// slowTx is the least interval between packets while the session is not
// Up (RFC 5880 6.8.3).
const slowTx = time.Second

// Session is the state of one BFD session (RFC 5880 6.8.1). It is not safe
// for concurrent use.
type Session struct {
	cfg Config

	state       State
	remoteState State
	localDisc   uint32
	remoteDisc  uint32
	diag        pkt.DiagnosticType
	// byAdmin is set when the session went down because the remote
	// said AdminDown: on purpose, not a failure (RFC 5882 3.2).
	byAdmin bool

	remoteMinRx time.Duration // the remote's RequiredMinRxInterval
	remoteMinTx time.Duration // the remote's DesiredMinTxInterval
	remoteMult  uint8
	lastRx      time.Time // when the last valid packet arrived
	// desiredTx is the DesiredMinTxInterval in force: slowTx until the
	// session is Up and a Poll sequence has moved to cfg.MinTx.
	desiredTx time.Duration
	polling   bool // a Poll sequence is in progress
	sendFinal bool // a packet with F must go out at once
}

// NewSession returns a session in state Down with local discriminator disc
// (nonzero, unique on the host).
func NewSession(cfg Config, disc uint32) *Session {
	return &Session{cfg: cfg, state: Down, remoteState: Down, localDisc: disc, desiredTx: slowTx}
}

// State returns the session state.
func (s *Session) State() State { return s.state }

// RemoteState returns the state the remote last reported.
func (s *Session) RemoteState() State { return s.remoteState }

// Diag returns the local diagnostic: why the session last went down.
func (s *Session) Diag() pkt.DiagnosticType { return s.diag }

// Failed reports whether the session is down because of a failure: no
// packet within the detection time, or the remote saying Down; not when
// the remote went AdminDown on purpose.
func (s *Session) Failed() bool {
	return s.state == Down && s.diag != pkt.DiagnosticNoDiagnostic && !s.byAdmin
}

// requiredRx is the RequiredMinRxInterval advertised now.
func (s *Session) requiredRx() time.Duration { return s.cfg.MinRx }

// Receive processes a received control packet (RFC 5880 6.8.6) at now. It
// returns whether the packet was valid for this session and the state
// before it, so the caller can report a change.
func (s *Session) Receive(now time.Time, h *pkt.BFDHeader) (ok bool, was State) {
	was = s.state
	if h.Version != 1 || h.DetectTimeMultiplier == 0 || h.MyDiscriminator == 0 {
		return false, was
	}
	if h.YourDiscriminator != 0 && h.YourDiscriminator != s.localDisc {
		return false, was
	}
	if h.YourDiscriminator == 0 && h.State != Down && h.State != AdminDown {
		return false, was
	}
	s.remoteDisc = h.MyDiscriminator
	s.remoteState = h.State
	s.remoteMinRx = time.Duration(h.RequiredMinRxInterval) * time.Microsecond
	s.remoteMinTx = time.Duration(h.DesiredMinTxInterval) * time.Microsecond
	s.remoteMult = h.DetectTimeMultiplier
	s.lastRx = now
	if h.Final && s.polling {
		s.polling = false
	}
	if s.state == AdminDown {
		return true, was
	}
	if h.State == AdminDown {
		if s.state != Down {
			s.toDown(pkt.DiagnosticNeighborSignaledSessionDown)
			s.byAdmin = true
		}
	} else {
		switch s.state {
		case Down:
			switch h.State {
			case Down:
				s.state = Init
			case Init:
				s.toUp()
			}
		case Init:
			if h.State == Init || h.State == Up {
				s.toUp()
			}
		case Up:
			if h.State == Down {
				s.toDown(pkt.DiagnosticNeighborSignaledSessionDown)
			}
		}
	}
	if h.Poll {
		s.sendFinal = true
	}
	return true, was
}

func (s *Session) toUp() {
	s.state = Up
	s.diag = pkt.DiagnosticNoDiagnostic
	if s.desiredTx != s.cfg.MinTx {
		// Move to the fast rate with a Poll sequence (RFC 5880 6.8.3).
		s.desiredTx = s.cfg.MinTx
		s.polling = true
	}
}

func (s *Session) toDown(d pkt.DiagnosticType) {
	s.state = Down
	s.diag = d
	s.byAdmin = false
	s.desiredTx = slowTx
	s.polling = false
}

// DetectionTime is how long the session waits for a packet before it
// declares the remote down (RFC 5880 6.8.4); 0 before any packet arrived.
func (s *Session) DetectionTime() time.Duration {
	if s.remoteMult == 0 {
		return 0
	}
	return time.Duration(s.remoteMult) * max(s.requiredRx(), s.remoteMinTx)
}

// Expire declares the session Down if it is Init or Up and no valid packet
// arrived within the detection time before now (RFC 5880 6.8.4). It
// returns whether it did.
func (s *Session) Expire(now time.Time) bool {
	if s.state != Init && s.state != Up {
		return false
	}
	if d := s.DetectionTime(); d > 0 && now.Sub(s.lastRx) > d {
		s.toDown(pkt.DiagnosticControlDetectionTimeExpired)
		s.remoteDisc = 0
		return true
	}
	return false
}

// Deadline is when Expire must next be called (zero: not before a packet
// arrives).
func (s *Session) Deadline() time.Time {
	if (s.state != Init && s.state != Up) || s.DetectionTime() == 0 {
		return time.Time{}
	}
	return s.lastRx.Add(s.DetectionTime() + time.Millisecond)
}

// TxInterval is the interval between periodic packets before jitter
// (RFC 5880 6.8.7): max(DesiredMinTx, the remote's RequiredMinRx); 0 when
// the remote asked for none (RequiredMinRx 0 after it was heard).
func (s *Session) TxInterval() time.Duration {
	if s.remoteMult != 0 && s.remoteMinRx == 0 {
		return 0
	}
	return max(s.desiredTx, s.remoteMinRx)
}

// Jitter returns the interval to the next periodic packet: TxInterval
// reduced by 0-25% (0-10% more when the multiplier is 1), as RFC 5880
// 6.8.7 requires; r is a random number in [0, 1).
func (s *Session) Jitter(r float64) time.Duration {
	spread := 0.25
	if s.cfg.Multiplier == 1 {
		spread = 0.15 // 75-90%
	}
	return time.Duration(float64(s.TxInterval()) * (0.75 + spread*r))
}

// FinalDue reports whether a packet with the Final bit must be sent now
// (the remote polled).
func (s *Session) FinalDue() bool { return s.sendFinal }

// Packet returns the next control packet to send: periodic, or the answer
// to a Poll (final). Sending the answer clears FinalDue.
func (s *Session) Packet(final bool) *pkt.BFDHeader {
	h := &pkt.BFDHeader{
		Version:               1,
		Diagnostic:            s.diag,
		State:                 s.state,
		DetectTimeMultiplier:  s.cfg.Multiplier,
		MyDiscriminator:       s.localDisc,
		YourDiscriminator:     s.remoteDisc,
		DesiredMinTxInterval:  uint32(s.desiredTx.Microseconds()),
		RequiredMinRxInterval: uint32(s.requiredRx().Microseconds()),
	}
	if final {
		h.Final = true
		s.sendFinal = false
	} else {
		h.Poll = s.polling
	}
	return h
}
