package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/vipsmart/vipsmart"
)

// RefuseFunc is told of a connection refused during the TLS handshake:
// the remote address and why.
type RefuseFunc func(remote, why string)

// PeerServerConfig is the TLS configuration of the federation listener:
// TLS 1.3 only, the DC's current certificate, and a client certificate
// required (and, with --tls-ca, chained to the CA). Which DC the client's
// key speaks for is checked per message above this package. refuse (may be
// nil) is told of every handshake it refuses.
func (id *Identity) PeerServerConfig(refuse RefuseFunc) *tls.Config {
	base := &tls.Config{
		MinVersion:     tls.VersionTLS13,
		NextProtos:     []string{"http/1.1"},
		ClientAuth:     tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return id.current(), nil },
	}
	cfg := base.Clone()
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		remote := "?"
		if h.Conn != nil {
			remote = h.Conn.RemoteAddr().String()
		}
		c := base.Clone()
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				if refuse != nil {
					refuse(remote, "no client certificate (federation traffic is mutual TLS: only DCs with a key may connect)")
				}
				return errors.New("vipsmart: a client certificate is required")
			}
			if id.ca != nil {
				if err := id.verifyChain(rawChain(cs.PeerCertificates)); err != nil {
					if refuse != nil {
						refuse(remote, fmt.Sprintf("key %s: certificate does not chain to --tls-ca: %v", vipsmart.ShortIdentity(Fingerprint(cs.PeerCertificates[0])), err))
					}
					return fmt.Errorf("vipsmart: certificate does not chain to the CA: %w", err)
				}
			}
			return nil
		}
		return c, nil
	}
	return cfg
}

func rawChain(cs []*x509.Certificate) [][]byte {
	out := make([][]byte, len(cs))
	for i, c := range cs {
		out[i] = c.Raw
	}
	return out
}

// PinError is the error of a connection whose server presented another
// key than the one pinned.
type PinError struct {
	Got, Want string
}

func (e *PinError) Error() string {
	return fmt.Sprintf("the server presented key %s, not the pinned %s", e.Got, e.Want)
}

// PeerClientConfig is the TLS configuration of a federation client that
// dials the DC whose identity is pin: TLS 1.3, this DC's current
// certificate as the client certificate, and the connection kept only if
// the server presents the pinned key (and, with --tls-ca, a chain to the
// CA). Sessions are resumed, so reconnecting costs no full handshake.
func (id *Identity) PeerClientConfig(pin string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		NextProtos:           []string{"http/1.1"},
		InsecureSkipVerify:   true, // replaced by the pin check below
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return id.current(), nil },
		ClientSessionCache:   tls.NewLRUClientSessionCache(8),
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := checkPin(cs, pin); err != nil {
				return err
			}
			if id.ca != nil {
				if err := id.verifyChain(rawChain(cs.PeerCertificates)); err != nil {
					return fmt.Errorf("the server's certificate does not chain to --tls-ca: %w", err)
				}
			}
			return nil
		},
	}
}

func checkPin(cs tls.ConnectionState, pin string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server presented no certificate")
	}
	if got := Fingerprint(cs.PeerCertificates[0]); got != pin {
		return &PinError{Got: got, Want: pin}
	}
	return nil
}

// PinnedConfig is the TLS configuration of an operator's client that pins
// the server's key (vipsmart --server-fingerprint): no CA is consulted.
func PinnedConfig(pin string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by the pin check
		VerifyConnection:   func(cs tls.ConnectionState) error { return checkPin(cs, pin) },
	}
}

// APIServerConfig is the TLS configuration of the HTTPS operator API
// (serve --api-listen): TLS 1.3 with the DC's current certificate; clients
// authenticate with bearer tokens, not certificates.
func (id *Identity) APIServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return id.current(), nil },
	}
}

// PeerFingerprint returns the identity of the key a TLS peer presented,
// "" if it presented none.
func PeerFingerprint(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	return Fingerprint(cs.PeerCertificates[0])
}

// NewListener serves TLS with cfg on inner's connections. plain (may be
// nil) is told of every connection whose first bytes are not a TLS
// handshake (plain HTTP to a TLS port, for example); the handshake then
// fails and the connection closes.
func NewListener(inner net.Listener, cfg *tls.Config, plain RefuseFunc) net.Listener {
	return &listener{Listener: inner, cfg: cfg, plain: plain}
}

type listener struct {
	net.Listener
	cfg   *tls.Config
	plain RefuseFunc
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(&sniffConn{Conn: c, plain: l.plain}, l.cfg), nil
}

// sniffConn reports a connection whose first byte is not a TLS handshake
// record (22).
type sniffConn struct {
	net.Conn
	once  sync.Once
	plain RefuseFunc
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.once.Do(func() {
			if p[0] != 22 && c.plain != nil {
				why := "not TLS"
				if p[0] >= 'A' && p[0] <= 'Z' {
					why = "plain HTTP to the federation port (it speaks only mutual TLS)"
				}
				c.plain(c.Conn.RemoteAddr().String(), why)
			}
		})
	}
	return n, err
}
