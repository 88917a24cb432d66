package identity

import (
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSharedPairs: a rotation's pairs move between nodes as PEM (what
// etcd keeps): the leader's pending pair becomes another node's pending
// pair (SetPending) or its current one (Install); connections between two
// nodes pin the current key, or the pending one.
func TestSharedPairs(t *testing.T) {
	leader, err := Load(Options{Dir: t.TempDir(), Name: "dc-1"})
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := leader.PEM(false)
	if err != nil {
		t.Fatal(err)
	}
	if fp, err := FingerprintPEM(cert, key); err != nil || fp != leader.Fingerprint() {
		t.Fatalf("FingerprintPEM of the current pair: %s %v; want %s", fp, err, leader.Fingerprint())
	}
	if _, _, err := leader.PEM(true); err == nil {
		t.Fatal("PEM(true) without a pending pair")
	}
	// A follower with its own (older) key takes the leader's.
	fdir := t.TempDir()
	follower, _ := Load(Options{Dir: fdir, Name: "dc-1"})
	if _, err := follower.Install(cert, key); err != nil || follower.Fingerprint() != leader.Fingerprint() {
		t.Fatalf("Install: %v; %s want %s", err, follower.Fingerprint(), leader.Fingerprint())
	}
	if again, err := Load(Options{Dir: fdir}); err != nil || again.Fingerprint() != leader.Fingerprint() {
		t.Fatalf("after a restart the follower has %s (%v)", again.Fingerprint(), err)
	}
	if fi, err := os.Stat(filepath.Join(fdir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("installed key file: %v %v", err, fi)
	}

	next, err := leader.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	ncert, nkey, err := leader.PEM(true)
	if err != nil {
		t.Fatal(err)
	}
	// A node that leads in the middle of the rotation takes the pending
	// pair and can promote it.
	other, _ := Load(Options{Dir: t.TempDir(), Name: "dc-1"})
	if err := other.SetPending(ncert, nkey); err != nil || other.Pending() != next {
		t.Fatalf("SetPending: %v; pending %s want %s", err, other.Pending(), next)
	}
	if err := other.Promote(); err != nil || other.Fingerprint() != next {
		t.Fatalf("Promote after SetPending: %v", err)
	}
	if _, err := FingerprintPEM(ncert, key); err == nil {
		t.Fatal("FingerprintPEM of a certificate with another key")
	}

	// Node to node: the follower (old key) dials the leader.
	addr, _ := serveOnce(t, leader.PeerServerConfig(nil), nil)
	c, err := dialRead(addr, follower.OwnClientConfig(nil))
	if err != nil {
		t.Fatalf("same key: %v", err)
	}
	c.Close()
	// The leader promoted: the follower, not yet switched, accepts it
	// only as the pending key.
	if err := leader.Promote(); err != nil {
		t.Fatal(err)
	}
	addr, _ = serveOnce(t, leader.PeerServerConfig(nil), nil)
	if _, err := dialRead(addr, follower.OwnClientConfig(nil)); err == nil || !strings.Contains(err.Error(), "not the pinned") {
		t.Fatalf("the leader's new key without a pending one: %v", err)
	}
	addr, _ = serveOnce(t, leader.PeerServerConfig(nil), nil)
	c, err = dialRead(addr, follower.OwnClientConfig(func() string { return next }))
	if err != nil {
		t.Fatalf("the leader's new key as the pending one: %v", err)
	}
	c.Close()
}

// dialRead dials addr with cfg and reads until the server closes.
func dialRead(addr string, cfg *tls.Config) (*tls.Conn, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	_, err = io.ReadAll(c)
	return c, err
}
