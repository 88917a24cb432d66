package bfd

import (
	"net/netip"
	"testing"
	"time"

	pkt "github.com/osrg/gobgp/v4/pkg/packet/bfd"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

var fast = Config{MinRx: 100 * time.Millisecond, MinTx: 100 * time.Millisecond, Multiplier: 3}

// exchange hands a's next packet to b and b's to a at now.
func exchange(t *testing.T, a, b *Session, now time.Time) {
	t.Helper()
	for _, p := range []struct{ from, to *Session }{{a, b}, {b, a}} {
		if ok, _ := p.to.Receive(now, p.from.Packet(false)); !ok {
			t.Fatalf("a valid packet was refused")
		}
		if p.to.FinalDue() {
			if ok, _ := p.from.Receive(now, p.to.Packet(true)); !ok {
				t.Fatalf("a final was refused")
			}
		}
	}
}

func TestThreeWayHandshakeAndFastRate(t *testing.T) {
	a, b := NewSession(fast, 1), NewSession(fast, 2)
	if a.TxInterval() != time.Second {
		t.Fatalf("while down: tx every %s, want 1s (RFC 5880 6.8.3)", a.TxInterval())
	}
	exchange(t, a, b, t0) // a Down -> b Init; b Init -> a Up
	if b.State() != Init || a.State() != Up {
		t.Fatalf("after one exchange: a %s, b %s", StateName(a.State()), StateName(b.State()))
	}
	exchange(t, a, b, t0) // a Up -> b Up
	if b.State() != Up {
		t.Fatalf("b %s, want up", StateName(b.State()))
	}
	// Up: a Poll sequence moved both to 100 ms; the finals ended it.
	if a.polling || b.polling {
		t.Fatalf("a poll sequence is still running: a %v b %v", a.polling, b.polling)
	}
	if a.TxInterval() != 100*time.Millisecond || b.TxInterval() != 100*time.Millisecond {
		t.Fatalf("tx intervals %s %s, want 100ms", a.TxInterval(), b.TxInterval())
	}
	if d := a.DetectionTime(); d != 300*time.Millisecond {
		t.Fatalf("detection time %s, want 300ms", d)
	}
	// A slower remote receiver slows our transmission.
	slow := Config{MinRx: 300 * time.Millisecond, MinTx: 100 * time.Millisecond, Multiplier: 3}
	c, d := NewSession(slow, 3), NewSession(fast, 4)
	exchange(t, d, c, t0)
	exchange(t, d, c, t0)
	if c.State() != Up || d.State() != Up {
		t.Fatalf("c %s d %s", StateName(c.State()), StateName(d.State()))
	}
	for i := 0; i < 100; i++ {
		r := float64(i) / 100
		if j := d.Jitter(r); j < 225*time.Millisecond || j > 300*time.Millisecond {
			t.Fatalf("jitter %s outside 75-100%% of 300ms", j)
		}
	}
}

func TestDetectionAndRecovery(t *testing.T) {
	a, b := NewSession(fast, 1), NewSession(fast, 2)
	exchange(t, a, b, t0)
	exchange(t, a, b, t0)
	if a.Expire(t0.Add(300 * time.Millisecond)) {
		t.Fatal("expired at the detection time, want only after it")
	}
	if !a.Expire(t0.Add(301*time.Millisecond)) || a.State() != Down || a.Diag() != pkt.DiagnosticControlDetectionTimeExpired || !a.Failed() {
		t.Fatalf("after 301ms of silence: %s diag %s", StateName(a.State()), a.Diag())
	}
	if a.Packet(false).YourDiscriminator != 0 || a.TxInterval() != time.Second {
		t.Fatal("a down session keeps the remote's discriminator or the fast rate")
	}
	// b still Up hears a's Down: it goes down too (neighbor signaled).
	if ok, _ := b.Receive(t0.Add(time.Second), a.Packet(false)); !ok || b.State() != Down || b.Diag() != pkt.DiagnosticNeighborSignaledSessionDown || !b.Failed() {
		t.Fatalf("b %s diag %s", StateName(b.State()), b.Diag())
	}
	// And they come back.
	now := t0.Add(2 * time.Second)
	exchange(t, a, b, now)
	exchange(t, a, b, now)
	if a.State() != Up || b.State() != Up {
		t.Fatalf("after recovery: a %s b %s", StateName(a.State()), StateName(b.State()))
	}
}

func TestAdminDownAndInvalidPackets(t *testing.T) {
	a, b := NewSession(fast, 1), NewSession(fast, 2)
	exchange(t, a, b, t0)
	exchange(t, a, b, t0)
	h := b.Packet(false)
	h.State = AdminDown
	if ok, was := a.Receive(t0, h); !ok || was != Up || a.State() != Down || a.Diag() != pkt.DiagnosticNeighborSignaledSessionDown || a.Failed() {
		t.Fatalf("AdminDown: ok %v, %s, failed %v", ok, StateName(a.State()), a.Failed())
	}
	for name, h := range map[string]*pkt.BFDHeader{
		"version 0":                {Version: 0, DetectTimeMultiplier: 3, MyDiscriminator: 9, State: Down},
		"multiplier 0":             {Version: 1, MyDiscriminator: 9, State: Down},
		"my discriminator 0":       {Version: 1, DetectTimeMultiplier: 3, State: Down},
		"another session":          {Version: 1, DetectTimeMultiplier: 3, MyDiscriminator: 9, YourDiscriminator: 77, State: Up},
		"up without discriminator": {Version: 1, DetectTimeMultiplier: 3, MyDiscriminator: 9, State: Up},
	} {
		c := NewSession(fast, 5)
		if ok, _ := c.Receive(t0, h); ok || c.State() != Down {
			t.Errorf("%s: accepted, state %s", name, StateName(c.State()))
		}
	}
}

func TestServerLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	a1, a2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	cfg := Config{MinRx: 20 * time.Millisecond, MinTx: 20 * time.Millisecond, Multiplier: 3}
	// Two servers on one host: each listens on its own address and port
	// and sends to the other's.
	s1 := NewServer(Options{ListenAddr: a1, ListenPort: 47841, PeerPort: 47842})
	s2 := NewServer(Options{ListenAddr: a2, ListenPort: 47842, PeerPort: 47841})
	defer s1.Close()
	if err := s1.Add(a2, cfg); err != nil {
		t.Fatal(err)
	}
	if err := s2.Add(a1, cfg); err != nil {
		t.Fatal(err)
	}
	wait := func(s *Server, peer netip.Addr, want State) time.Duration {
		start := time.Now()
		for {
			if st, _ := s.State(peer); st == want {
				return time.Since(start)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("session with %s not %s within 10s", peer, StateName(want))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait(s1, a2, Up)
	wait(s2, a1, Up)
	// Closing s2 tells s1 AdminDown: s1 goes down at once.
	s2.Close()
	if d := wait(s1, a2, Down); d > time.Second {
		t.Errorf("down %s after the peer closed", d)
	}
}
