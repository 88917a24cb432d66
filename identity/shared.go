package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The nodes of a DC on etcd present one key, kept in etcd (docs/ha.md);
// a rotation's pending pair is kept there too. These methods move pairs
// between etcd and the data directory: PEM returns a pair's files,
// SetPending and Install write pairs read from etcd.

// PEM returns the PEM certificate and key of the current pair, or of the
// pending one if next.
func (id *Identity) PEM(next bool) (cert, key []byte, err error) {
	id.mu.RLock()
	defer id.mu.RUnlock()
	if next && id.next == nil {
		return nil, nil, errors.New("identity: no pending key")
	}
	c, k := id.paths(next)
	if cert, err = os.ReadFile(c); err != nil {
		return nil, nil, fmt.Errorf("identity: %w", err)
	}
	if key, err = os.ReadFile(k); err != nil {
		return nil, nil, fmt.Errorf("identity: %w", err)
	}
	return cert, key, nil
}

// FingerprintPEM returns the identity of a PEM pair, checking that the key
// matches the certificate.
func FingerprintPEM(cert, key []byte) (string, error) {
	c, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	return Fingerprint(leaf), nil
}

// SetPending makes cert and key (PEM, read from etcd) the pending pair of
// a generated identity, written beside the current one: a node that
// leads in the middle of a rotation another node began.
func (id *Identity) SetPending(cert, key []byte) error {
	if id.opts.CertFile != "" {
		return errors.New("identity: an own certificate (--tls-cert) has no shared pending pair")
	}
	nc, nk := id.paths(true)
	if err := writeFile(nk, key, 0o600); err != nil {
		return err
	}
	if err := writeFile(nc, cert, 0o644); err != nil {
		return err
	}
	p, err := loadPair(nc, nk)
	if err != nil {
		return err
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	id.next = &p
	return nil
}

// Install makes cert and key (PEM, read from etcd) the current pair of a
// generated identity: the files are replaced and the next connections
// present it. A pending pair is dropped. It returns the new identity.
func (id *Identity) Install(cert, key []byte) (string, error) {
	if id.opts.CertFile != "" {
		return "", errors.New("identity: an own certificate (--tls-cert) is not installed from etcd")
	}
	cc, ck := id.paths(false)
	nc, nk := id.paths(true)
	if err := writeFile(ck+".new", key, 0o600); err != nil {
		return "", err
	}
	if err := writeFile(cc+".new", cert, 0o644); err != nil {
		return "", err
	}
	p, err := loadPair(cc+".new", ck+".new")
	if err != nil {
		return "", err
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	if err := os.Rename(ck+".new", ck); err != nil {
		return "", fmt.Errorf("identity: installing the key: %w", err)
	}
	if err := os.Rename(cc+".new", cc); err != nil {
		return "", fmt.Errorf("identity: installing the certificate: %w", err)
	}
	if err := syncDir(filepath.Dir(ck)); err != nil {
		return "", err
	}
	id.cur, id.next = p, nil
	_ = os.Remove(nc)
	_ = os.Remove(nk)
	return p.fp, nil
}

// OwnClientConfig is the TLS configuration of a node of a DC dialing
// another node of the same DC: it presents the current key and keeps the
// connection if the server presents the current key too, or also() (if
// not empty: the pending key of a rotation, which the other node may have
// installed a moment before this one). Sessions are not resumed.
func (id *Identity) OwnClientConfig(also func() string) *tls.Config {
	c := id.PeerClientConfig("")
	// No resumption: a resumed session keeps the keys of the first
	// handshake, which a rotation may have replaced on either side.
	c.ClientSessionCache = nil
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		err := checkPin(cs, id.Fingerprint())
		if err != nil && also != nil {
			if a := also(); a != "" && checkPin(cs, a) == nil {
				err = nil
			}
		}
		if err != nil {
			return err
		}
		if id.ca != nil {
			if err := id.verifyChain(rawChain(cs.PeerCertificates)); err != nil {
				return fmt.Errorf("the server's certificate does not chain to --tls-ca: %w", err)
			}
		}
		return nil
	}
	return c
}
