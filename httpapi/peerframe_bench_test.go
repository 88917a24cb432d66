package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"testing"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/identity"
)

// validator checks each message delivered to it as the daemon's deliver
// does (Validate, which checks the batch of a lock).
type validator struct{}

func (validator) Deliver(ctx context.Context, m federation.Message) error { return m.Validate() }

// BenchmarkLockSend measures a lock of 10,000 GIPs placed in 10 DCs sent
// by PeerClient to a peer's federation listener on loopback (mutual TLS,
// connection kept) whose receiver validates it: the sender's encoding,
// the transfer, and the member's reading, decoding and check (the
// member's share of the lock phase before it persists its lock).
// frame: the batch in binary (what Propose makes); json: the batch in
// JSON, cached and spliced (what the coordinator sent before frames, and
// what it sends to an older DC). cpu-us/op is client and server together.
//
//	go test ./httpapi -run '^$' -bench BenchmarkLockSend -benchmem
func BenchmarkLockSend(b *testing.B) {
	srvID, err := identity.Load(identity.Options{Dir: b.TempDir(), Name: "dc-2"})
	if err != nil {
		b.Fatal(err)
	}
	cliID, err := identity.Load(identity.Options{Dir: b.TempDir(), Name: "dc-1"})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: PeerHandler(validator{}, identity.PeerFingerprint, nil)}
	go srv.Serve(identity.NewListener(l, srvID.PeerServerConfig(nil), nil))
	defer srv.Close()
	ap := netip.MustParseAddrPort(l.Addr().String())
	to := vipsmart.DC{Name: "dc-2", Address: ap.Addr(), Port: ap.Port(), Identity: srvID.Fingerprint()}
	from := vipsmart.DC{Name: "dc-1", Address: ap.Addr(), Port: 1, Identity: cliID.Fingerprint()}
	put := make([]vipsmart.GIP, 10000)
	for i := range put {
		g := vipsmart.GIP{Name: fmt.Sprintf("g%05d", i), Address: netip.AddrFrom4([4]byte{10, byte(100 + i>>16), byte(i >> 8), byte(i)}), Mode: vipsmart.ModeFailover, Preempt: true}
		for j := range 10 {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: fmt.Sprintf("dc-%d", j+1), Priority: 200 - j})
		}
		put[i] = g
	}
	lock := func(bt *federation.Batch) federation.Message {
		return federation.Message{Type: federation.MsgLock, From: from, To: to, OpID: "dc-1-1", FedID: "f", Epoch: 3, ToEpoch: 4,
			SenderFed: "f", SenderEpoch: 3, Status: vipsmart.StatusMember, Change: &federation.Change{Kind: federation.ApplyGIPs, By: "bench", Batch: bt}}
	}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		prep func(*federation.Batch)
	}{
		{"frame", func(bt *federation.Batch) { bt.CacheBinary() }},
		{"json", func(bt *federation.Batch) {
			if err := bt.Cache(); err != nil {
				b.Fatal(err)
			}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			pc := NewPeerClient(cliID.PeerClientConfig)
			bt := federation.NewBatch(put, nil)
			c.prep(bt)
			m := lock(bt)
			if err := pc.Send(ctx, m); err != nil { // a connection, before the clock starts
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu := cpuStart()
			for range b.N {
				m := lock(bt)
				if err := pc.Send(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}
