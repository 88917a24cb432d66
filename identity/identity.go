// Package identity is a DC's TLS identity and the mutual TLS of federation
// traffic: the DC's key pair (made at first start in the data directory, or
// the operator's own certificate and key), its fingerprint, a pending key
// during rotation, and the TLS configurations of the federation listener,
// the federation client, and the HTTPS operator API.
//
// Invariants: a private key is written with mode 0600 and never leaves the
// data directory; every federation connection is TLS 1.3 with a
// certificate on both sides; a client connection is kept only when the
// server presents the key pinned for the DC it dials. Which DC a client's
// key may speak for is decided above this package (by the committed member
// list), from the fingerprint the connection exposes (Fingerprint).
package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
)

// The files of a generated identity in the data directory. The pending
// pair of a rotation sits beside them until its fingerprint is committed.
const (
	KeyFile      = "identity.key"
	CertFile     = "identity.crt"
	NextKeyFile  = "identity.next.key"
	NextCertFile = "identity.next.crt"
	// NextSuffix is appended to --tls-cert and --tls-key to find the
	// operator's pending pair when rotating an own-PKI identity.
	NextSuffix = ".next"
)

// Options say where the identity lives.
type Options struct {
	// Dir is the data directory where a generated identity is kept.
	Dir string
	// CertFile and KeyFile are the operator's own certificate and key
	// (PEM); both or neither. CAFile, if set, is a PEM bundle that every
	// peer's chain must also verify against.
	CertFile, KeyFile, CAFile string
	// Name (a DNS name) and Addrs go into a generated certificate's
	// subject alternative names.
	Name  string
	Addrs []netip.Addr
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// pair is one loaded certificate with its fingerprint.
type pair struct {
	cert *tls.Certificate
	fp   string
}

// Identity is the DC's key pair now and, during a rotation, the pending
// one. It is safe for concurrent use: TLS configurations read the current
// pair at each handshake, so a promoted pair is used by the next
// connection.
type Identity struct {
	opts Options
	ca   *x509.CertPool

	mu   sync.RWMutex
	cur  pair
	next *pair
}

// Load returns the DC's identity: the operator's own pair if
// Options.CertFile is set, else the generated one in Options.Dir (made,
// with a self-signed certificate, if there is none yet). A pending pair
// left by an interrupted rotation is loaded as pending.
func Load(o Options) (*Identity, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "--tls-cert", "--tls-cert and --tls-key go together: give both (your own certificate and its key) or neither (a generated key)")
	}
	if o.CAFile != "" && o.CertFile == "" {
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "--tls-ca", "--tls-ca needs --tls-cert and --tls-key: a DC that requires its peers' chains to a CA must present a certificate of that CA itself")
	}
	id := &Identity{opts: o}
	if o.CAFile != "" {
		b, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading --tls-ca: %w", err)
		}
		id.ca = x509.NewCertPool()
		if !id.ca.AppendCertsFromPEM(b) {
			return nil, vipsmart.Errorf(vipsmart.EINVALID, "--tls-ca", "--tls-ca %s holds no PEM certificate", o.CAFile)
		}
	}
	certPath, keyPath := id.paths(false)
	if o.CertFile == "" {
		if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
			if err := id.generate(certPath, keyPath); err != nil {
				return nil, err
			}
		}
	}
	p, err := loadPair(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	if err := id.verifyOwn(p); err != nil {
		return nil, err
	}
	id.cur = p
	nc, nk := id.paths(true)
	if fileExists(nc) && fileExists(nk) && o.CertFile == "" {
		if np, err := loadPair(nc, nk); err == nil {
			id.next = &np
		}
	}
	return id, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// paths returns the certificate and key files of the current or the
// pending pair.
func (id *Identity) paths(next bool) (cert, key string) {
	o := id.opts
	if o.CertFile != "" {
		if next {
			return o.CertFile + NextSuffix, o.KeyFile + NextSuffix
		}
		return o.CertFile, o.KeyFile
	}
	if next {
		return filepath.Join(o.Dir, NextCertFile), filepath.Join(o.Dir, NextKeyFile)
	}
	return filepath.Join(o.Dir, CertFile), filepath.Join(o.Dir, KeyFile)
}

// verifyOwn checks an own-PKI certificate against --tls-ca, so that a
// mismatch shows at start rather than as refusals by every peer.
func (id *Identity) verifyOwn(p pair) error {
	if id.ca == nil {
		return nil
	}
	if err := id.verifyChain(p.cert.Certificate); err != nil {
		return vipsmart.Errorf(vipsmart.EINVALID, "--tls-cert", "--tls-cert does not chain to --tls-ca: %v", err)
	}
	return nil
}

// Fingerprint returns the identity of the current key.
func (id *Identity) Fingerprint() string {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.cur.fp
}

// Pending returns the identity of the pending key, "" if there is none.
func (id *Identity) Pending() string {
	id.mu.RLock()
	defer id.mu.RUnlock()
	if id.next == nil {
		return ""
	}
	return id.next.fp
}

// Prepare makes the pending pair of a rotation and returns its identity:
// a new key and certificate for a generated identity, or the operator's
// files at --tls-cert.next and --tls-key.next for an own one. A pending
// pair made earlier is replaced.
func (id *Identity) Prepare() (string, error) {
	cert, key := id.paths(true)
	if id.opts.CertFile == "" {
		if err := id.generate(cert, key); err != nil {
			return "", err
		}
	} else if !fileExists(cert) || !fileExists(key) {
		return "", vipsmart.Errorf(vipsmart.EINVALID, "", "this DC uses its own certificate (--tls-cert): put the new certificate and key at %s and %s, then rotate again", cert, key)
	}
	p, err := loadPair(cert, key)
	if err != nil {
		return "", err
	}
	if err := id.verifyOwn(p); err != nil {
		return "", err
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	if p.fp == id.cur.fp {
		return "", vipsmart.Errorf(vipsmart.EINVALID, "", "the new key at %s is the current key: put a new one there", key)
	}
	id.next = &p
	return p.fp, nil
}

// Promote makes the pending pair the current one (its fingerprint has
// been committed): the files are renamed over the current ones and new
// connections use it. It fails if there is no pending pair.
func (id *Identity) Promote() error {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.next == nil {
		return errors.New("identity: no pending key to promote")
	}
	nc, nk := id.paths(true)
	cc, ck := id.paths(false)
	if err := os.Rename(nk, ck); err != nil {
		return fmt.Errorf("identity: installing the new key: %w", err)
	}
	if err := os.Rename(nc, cc); err != nil {
		return fmt.Errorf("identity: installing the new certificate: %w", err)
	}
	if err := syncDir(filepath.Dir(ck)); err != nil {
		return err
	}
	id.cur, id.next = *id.next, nil
	return nil
}

// Discard drops the pending pair (its rotation did not commit).
func (id *Identity) Discard() error {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.next == nil {
		return nil
	}
	id.next = nil
	if id.opts.CertFile != "" {
		return nil // the operator's files stay where they put them
	}
	nc, nk := id.paths(true)
	err := errors.Join(os.Remove(nk), os.Remove(nc))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func (id *Identity) current() *tls.Certificate {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.cur.cert
}

// generate writes a new P-256 key (0600) and a self-signed certificate.
func (id *Identity) generate(certPath, keyPath string) error {
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("identity: generating a key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := id.opts.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.opts.Name, Organization: []string{"vipsmart"}},
		// The pin is the key, not the certificate's dates: the
		// certificate lives as long as the key.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(100, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if id.opts.Name != "" {
		tmpl.DNSNames = []string{id.opts.Name}
	}
	for _, a := range id.opts.Addrs {
		if a.IsValid() && !a.IsUnspecified() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("identity: making the certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFile writes b to path atomically and durably with mode perm.
func writeFile(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("identity: writing %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func loadPair(certPath, keyPath string) (pair, error) {
	if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return pair{}, vipsmart.Errorf(vipsmart.EINVALID, "--tls-key", "the key %s is readable by others (mode %#o): chmod 600 it", keyPath, fi.Mode().Perm())
	}
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return pair{}, fmt.Errorf("identity: loading %s and %s: %w", certPath, keyPath, err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return pair{}, fmt.Errorf("identity: %s: %w", certPath, err)
	}
	c.Leaf = leaf
	return pair{cert: &c, fp: Fingerprint(leaf)}, nil
}

// Fingerprint returns the identity of a certificate's key: "sha256:" and
// the hex SHA-256 of its DER SubjectPublicKeyInfo.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return vipsmart.IdentityPrefix + hex.EncodeToString(sum[:])
}

// FingerprintOfKey returns the identity of a public key.
func FingerprintOfKey(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return vipsmart.IdentityPrefix + hex.EncodeToString(sum[:]), nil
}

// verifyChain checks a presented chain (leaf first) against the CA pool.
func (id *Identity) verifyChain(raw [][]byte) error {
	if len(raw) == 0 {
		return errors.New("no certificate")
	}
	certs := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return err
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: id.ca, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: id.opts.Now()})
	return err
}
