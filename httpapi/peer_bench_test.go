package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
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
		for i := 0; i < b.N; i++ {
			if err := pc.Send(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mtls-handshake-each", func(b *testing.B) {
		pc := NewPeerClient(cliID.PeerClientConfig)
		for i := 0; i < b.N; i++ {
			pc.ResetConnections() // a new pool: a full handshake (no resumption)
			if err := pc.Send(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain-http-kept", func(b *testing.B) {
		pl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ps := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var mm federation.Message
			if _, err := decode(w, r, MaxPeerBody, &mm, ""); err != nil {
				w.WriteHeader(400)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		})}
		go ps.Serve(pl)
		defer ps.Close()
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		url := "http://" + pl.Addr().String() + PeerPath
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
