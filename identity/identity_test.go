package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

func TestLoadMakesAKeyOnceAndKeepsIt(t *testing.T) {
	dir := t.TempDir()
	id, err := Load(Options{Dir: dir, Name: "dc-1"})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v mode %v; want 0600", err, fi.Mode())
	}
	if err := vipsmart.ValidateIdentity("identity", id.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	again, err := Load(Options{Dir: dir, Name: "dc-1"})
	if err != nil || again.Fingerprint() != id.Fingerprint() {
		t.Fatalf("reload: %v, %s != %s", err, again.Fingerprint(), id.Fingerprint())
	}
	// The fingerprint is the SHA-256 of the DER public key, as openssl
	// computes it.
	b, _ := os.ReadFile(filepath.Join(dir, CertFile))
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(c.PublicKey)
	sum := sha256.Sum256(der)
	if want := "sha256:" + hex.EncodeToString(sum[:]); id.Fingerprint() != want {
		t.Fatalf("fingerprint %s; want %s", id.Fingerprint(), want)
	}
	// A key readable by others is refused.
	if err := os.Chmod(filepath.Join(dir, KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	id, err := Load(Options{Dir: dir, Name: "dc-1"})
	if err != nil {
		t.Fatal(err)
	}
	old := id.Fingerprint()
	fp, err := id.Prepare()
	if err != nil || fp == old || id.Pending() != fp || id.Fingerprint() != old {
		t.Fatalf("prepare: %v %s (old %s, pending %s, current %s)", err, fp, old, id.Pending(), id.Fingerprint())
	}
	// A restart finds the pending key pending.
	re, err := Load(Options{Dir: dir})
	if err != nil || re.Pending() != fp || re.Fingerprint() != old {
		t.Fatalf("reload during rotation: %v pending %s current %s", err, re.Pending(), re.Fingerprint())
	}
	if err := id.Promote(); err != nil || id.Fingerprint() != fp || id.Pending() != "" {
		t.Fatalf("promote: %v current %s pending %s", err, id.Fingerprint(), id.Pending())
	}
	re, err = Load(Options{Dir: dir})
	if err != nil || re.Fingerprint() != fp || re.Pending() != "" {
		t.Fatalf("reload after promote: %v current %s pending %s", err, re.Fingerprint(), re.Pending())
	}
	// Discard drops a pending key.
	if _, err := id.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := id.Discard(); err != nil || id.Pending() != "" {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, NextKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("discarded key still on disk: %v", err)
	}
	if err := id.Promote(); err == nil {
		t.Fatal("promote without a pending key succeeded")
	}
}

// serveOnce runs one TLS server handshake with cfg on a loopback listener
// and returns its address and the handshake's result.
func serveOnce(t *testing.T, cfg *tls.Config, plain RefuseFunc) (string, chan error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tl := NewListener(l, cfg, plain)
	res := make(chan error, 1)
	go func() {
		c, err := tl.Accept()
		if err != nil {
			res <- err
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		err = tc.Handshake()
		if err == nil {
			_, _ = tc.Write([]byte("ok"))
		}
		res <- err
	}()
	return l.Addr().String(), res
}

func TestMutualTLS(t *testing.T) {
	srv, _ := Load(Options{Dir: t.TempDir(), Name: "dc-1"})
	cli, _ := Load(Options{Dir: t.TempDir(), Name: "dc-2"})
	var mu sync.Mutex
	var refused []string
	refuse := func(remote, why string) { mu.Lock(); refused = append(refused, why); mu.Unlock() }

	// The pinned key: both sides authenticated, the server sees the
	// client's fingerprint.
	addr, res := serveOnce(t, srv.PeerServerConfig(refuse), refuse)
	c, err := tls.Dial("tcp", addr, cli.PeerClientConfig(srv.Fingerprint()))
	if err != nil {
		t.Fatalf("pinned dial: %v", err)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	cs := c.ConnectionState()
	if cs.Version != tls.VersionTLS13 || PeerFingerprint(&cs) != srv.Fingerprint() {
		t.Fatalf("version %x, server key %s", cs.Version, PeerFingerprint(&cs))
	}
	c.Close()
	if err := <-res; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	// Another pin: the client refuses the server.
	addr, _ = serveOnce(t, srv.PeerServerConfig(refuse), refuse)
	if _, err := tls.Dial("tcp", addr, cli.PeerClientConfig(cli.Fingerprint())); err == nil || !strings.Contains(err.Error(), "not the pinned") {
		t.Fatalf("dial with a wrong pin: %v", err)
	}
	// No client certificate: the server refuses and says so.
	addr, res = serveOnce(t, srv.PeerServerConfig(refuse), refuse)
	if c, err := tls.Dial("tcp", addr, PinnedConfig(srv.Fingerprint())); err == nil {
		_, err = io.ReadAll(c)
		c.Close()
	}
	if err := <-res; err == nil {
		t.Fatal("server accepted a client without a certificate")
	}
	// Plain text: reported.
	addr, res = serveOnce(t, srv.PeerServerConfig(refuse), refuse)
	pc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = pc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	<-res
	pc.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != 2 || !strings.Contains(refused[0], "no client certificate") || !strings.Contains(refused[1], "plain HTTP") {
		t.Fatalf("refusals reported: %q", refused)
	}
}

// writePEM writes a certificate or key in PEM.
func writePEM(t *testing.T, path, typ string, der []byte, perm os.FileMode) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), perm); err != nil {
		t.Fatal(err)
	}
}

// newCA makes a CA and a function that issues leaf pairs signed by it.
func newCA(t *testing.T, dir, name string) (caFile string, issue func(leaf string) (cert, key string)) {
	ck, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ck.PublicKey, ck)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	caFile = filepath.Join(dir, name+".pem")
	writePEM(t, caFile, "CERTIFICATE", der, 0o644)
	n := int64(2)
	return caFile, func(leaf string) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		n++
		lt := &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: leaf}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, lt, ca, &k.PublicKey, ck)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalPKCS8PrivateKey(k)
		cert, key := filepath.Join(dir, leaf+".crt"), filepath.Join(dir, leaf+".key")
		writePEM(t, cert, "CERTIFICATE", der, 0o644)
		writePEM(t, key, "PRIVATE KEY", kd, 0o600)
		return cert, key
	}
}

func TestOwnPKI(t *testing.T) {
	dir := t.TempDir()
	caFile, issue := newCA(t, dir, "ca")
	otherCA, issueOther := newCA(t, dir, "other")
	_ = otherCA
	c1, k1 := issue("dc-1")
	c2, k2 := issue("dc-2")
	c3, k3 := issueOther("dc-3")
	srv, err := Load(Options{CertFile: c1, KeyFile: k1, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	good, err := Load(Options{CertFile: c2, KeyFile: k2, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	// A certificate of another CA is refused at start with --tls-ca.
	if _, err := Load(Options{CertFile: c3, KeyFile: k3, CAFile: caFile}); err == nil || !strings.Contains(err.Error(), "--tls-ca") {
		t.Fatalf("own certificate of another CA: %v", err)
	}
	bad, err := Load(Options{CertFile: c3, KeyFile: k3})
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	refuse := func(remote, why string) { refused = append(refused, why) }
	addr, res := serveOnce(t, srv.PeerServerConfig(refuse), refuse)
	c, err := tls.Dial("tcp", addr, good.PeerClientConfig(srv.Fingerprint()))
	if err != nil {
		t.Fatalf("a peer of the CA: %v", err)
	}
	io.ReadAll(c)
	c.Close()
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	// Pinned but not of the CA: refused by the server.
	addr, res = serveOnce(t, srv.PeerServerConfig(refuse), refuse)
	if c, err := tls.Dial("tcp", addr, bad.PeerClientConfig(srv.Fingerprint())); err == nil {
		io.ReadAll(c)
		c.Close()
	}
	if err := <-res; err == nil || len(refused) != 1 || !strings.Contains(refused[0], "--tls-ca") {
		t.Fatalf("a peer of another CA: %v, refused %q", err, refused)
	}
	// --tls-cert alone, or --tls-ca without it, is refused.
	if _, err := Load(Options{CertFile: c1}); err == nil {
		t.Fatal("--tls-cert without --tls-key accepted")
	}
	if _, err := Load(Options{Dir: dir, CAFile: caFile}); err == nil {
		t.Fatal("--tls-ca without --tls-cert accepted")
	}
	// Rotation of an own certificate reads the files at .next.
	if _, err := srv.Prepare(); err == nil || !strings.Contains(err.Error(), c1+NextSuffix) {
		t.Fatalf("prepare without .next files: %v", err)
	}
	c4, k4 := issue("dc-1b")
	os.Rename(c4, c1+NextSuffix)
	os.Rename(k4, k1+NextSuffix)
	fp, err := srv.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Promote(); err != nil || srv.Fingerprint() != fp {
		t.Fatalf("promote: %v", err)
	}
	if re, err := Load(Options{CertFile: c1, KeyFile: k1, CAFile: caFile}); err != nil || re.Fingerprint() != fp {
		t.Fatalf("reload after an own rotation: %v", err)
	}
}
