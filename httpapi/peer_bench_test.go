package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/identity"
)

type nopReceiver struct{}

func (nopReceiver) Deliver(ctx context.Context, m federation.Message) error {
	if c, ok := vipsmart.CallerFrom(ctx); !ok || c.Identity == "" {
		return vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "no key")
	}
	return nil
}

// BenchmarkPeerSend measures one federation message (a heartbeat) from
// PeerClient to a peer's federation listener on loopback: over mutual TLS
// with the connection kept (as the daemon sends), over mutual TLS with a
// new connection and full handshake for each message (what keep-alive
// saves), and as plain HTTP (what the federation spoke before mutual TLS).
//
//	go test ./httpapi -run '^$' -bench BenchmarkPeerSend -benchtime 2000x
func BenchmarkPeerSend(b *testing.B) {
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
	srv := &http.Server{Handler: PeerHandler(nopReceiver{}, identity.PeerFingerprint, nil)}
	go srv.Serve(identity.NewListener(l, srvID.PeerServerConfig(nil), nil))
	defer srv.Close()
	ap := netip.MustParseAddrPort(l.Addr().String())
	to := vipsmart.DC{Name: "dc-2", Address: ap.Addr(), Port: ap.Port(), Identity: srvID.Fingerprint()}
	from := vipsmart.DC{Name: "dc-1", Address: ap.Addr(), Port: 1, Identity: cliID.Fingerprint()}
	m := federation.Message{Type: federation.MsgHeartbeat, From: from, To: to, FedID: "f-1", Epoch: 7, SenderFed: "f-1", SenderEpoch: 7, Status: vipsmart.StatusMember}
	ctx := context.Background()

	b.Run("mtls-kept", func(b *testing.B) {
		pc := NewPeerClient(cliID.PeerClientConfig)
		cpu := cpuStart()
		for i := 0; i < b.N; i++ {
			if err := pc.Send(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	})
	b.Run("mtls-handshake-each", func(b *testing.B) {
		pc := NewPeerClient(cliID.PeerClientConfig)
		cpu := cpuStart()
		for i := 0; i < b.N; i++ {
			pc.ResetConnections() // a new pool: a full handshake (no resumption)
			if err := pc.Send(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	})
	b.Run("plain-http-kept", func(b *testing.B) {
		pl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		// The same handler, told the key a TLS connection would have shown.
		ps := &http.Server{Handler: PeerHandler(nopReceiver{}, func(*tls.ConnectionState) string { return cliID.Fingerprint() }, nil)}
		go ps.Serve(pl)
		defer ps.Close()
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		url := "http://" + pl.Addr().String() + PeerPath
		cpu := cpuStart()
		defer cpu.report(b)
		for i := 0; i < b.N; i++ {
			body, _ := json.Marshal(m)
			resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Fatal(resp.Status)
			}
		}
	})
}

// cpuMark is the process's CPU time (both ends of the connection run in
// this process) at the start of a benchmark.
type cpuMark time.Duration

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func cpuStart() cpuMark { return cpuMark(cpuNow()) }

// report adds the CPU time per message, client and server together: it
// depends little on how busy the machine is, unlike ns/op.
func (c cpuMark) report(b *testing.B) {
	b.ReportMetric(float64((cpuNow()-time.Duration(c)).Microseconds())/float64(b.N), "cpu-us/op")
}
