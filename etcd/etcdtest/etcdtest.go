// Package etcdtest runs real etcd server processes for tests: a single
// member or a cluster of several on 127.0.0.1 with random ports, each with
// its own data directory, stopped (and their directories removed) when the
// test ends. Members can be killed, stopped and started again to make
// etcd lose and regain quorum.
//
// The etcd binary is $VIPSMART_ETCD if set, else "etcd" on $PATH. CI
// builds it from tools/etcd (etcd's own main at the version pinned there;
// see docs/ha.md). When no binary is found, Start skips the test with the
// reason, unless VIPSMART_REQUIRE_ETCD=1, which makes it fail instead (CI
// sets it, so that the etcd tests can never be skipped silently there).
package etcdtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EnvBinary names the etcd binary to use; EnvRequire=1 makes a missing
// binary fail the test rather than skip it.
const (
	EnvBinary  = "VIPSMART_ETCD"
	EnvRequire = "VIPSMART_REQUIRE_ETCD"
)

// Binary returns the etcd binary the tests use, or an error that says how
// to get one.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("no etcd binary: set $%s or put etcd on $PATH; build the pinned one with `go -C tools/etcd build -o /usr/local/bin/etcd .`", EnvBinary)
	}
	return p, nil
}

// Need returns the etcd binary, skipping t when there is none (failing it
// when $VIPSMART_REQUIRE_ETCD=1).
func Need(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%v ($%s=1: the etcd tests must run)", err, EnvRequire)
		}
		t.Skipf("skipping: %v", err)
	}
	return bin
}

// Options shape a cluster. The zero value is one member over plain HTTP.
type Options struct {
	// Members is the number of members (0 means 1).
	Members int
	// TLS serves clients over https with client certificate
	// authentication; the cluster's CA, ClientCert and ClientKey files
	// are what a client needs.
	TLS bool
}

// Cluster is a running etcd cluster.
type Cluster struct {
	t       testing.TB
	bin     string
	dir     string
	Members []*Member
	// With Options.TLS: the PEM files a client needs.
	CA, ClientCert, ClientKey string
}

// Member is one etcd process.
type Member struct {
	c          *Cluster
	Name       string
	ClientURL  string
	PeerURL    string
	dataDir    string
	args       []string
	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	logs       *bytes.Buffer
	logsBefore string
}

// Start starts a cluster and waits until it serves requests. It stops the
// cluster when the test ends and logs the members' output if the test
// failed.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	bin := Need(t)
	n := max(1, o.Members)
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := start(t, bin, n, o)
		if err == nil {
			return c
		}
		last = err
		// A port taken between choosing it and etcd binding it: retry
		// with new ports.
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("starting etcd: %v", last)
	return nil
}

func start(t testing.TB, bin string, n int, o Options) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "vipsmart-etcd-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{t: t, bin: bin, dir: dir}
	scheme := "http"
	if o.TLS {
		if err := c.makeCerts(); err != nil {
			return nil, err
		}
		scheme = "https"
	}
	var initial []string
	for i := range n {
		m := &Member{
			c:         c,
			Name:      "m" + strconv.Itoa(i),
			ClientURL: scheme + "://127.0.0.1:" + strconv.Itoa(freePort(t)),
			PeerURL:   "http://127.0.0.1:" + strconv.Itoa(freePort(t)),
			dataDir:   filepath.Join(dir, "m"+strconv.Itoa(i)),
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	token := fmt.Sprintf("vipsmart-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	for _, m := range c.Members {
		m.args = []string{
			"--name", m.Name,
			"--data-dir", m.dataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--logger", "zap",
			"--log-level", "warn",
		}
		if o.TLS {
			m.args = append(m.args,
				"--cert-file", filepath.Join(dir, "server.pem"),
				"--key-file", filepath.Join(dir, "server-key.pem"),
				"--trusted-ca-file", c.CA,
				"--client-cert-auth")
		}
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
		}
		if t.Failed() {
			for _, m := range c.Members {
				t.Logf("etcd member %s output:\n%s", m.Name, m.Logs())
			}
		}
		os.RemoveAll(dir)
	})
	for _, m := range c.Members {
		if err := m.Start(); err != nil {
			return nil, err
		}
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		for _, m := range c.Members {
			m.Kill()
			err = fmt.Errorf("%w\nmember %s output:\n%s", err, m.Name, m.Logs())
		}
		return nil, err
	}
	return c, nil
}

// Endpoints returns the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// TLSConfig returns the client TLS configuration for a TLS cluster (nil
// for a plain one).
func (c *Cluster) TLSConfig() *tls.Config {
	if c.CA == "" {
		return nil
	}
	cfg, err := transport.TLSInfo{CertFile: c.ClientCert, KeyFile: c.ClientKey, TrustedCAFile: c.CA}.ClientConfig()
	if err != nil {
		c.t.Fatalf("client TLS config: %v", err)
	}
	return cfg
}

// Client returns a new client of the cluster, closed when the test ends.
func (c *Cluster) Client() *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: c.TLSConfig(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatalf("etcd client: %v", err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// WaitReady waits until a write through every running member succeeds.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, TLS: c.TLSConfig(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return err
		}
		var last error
	retry:
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, last = cli.Put(ctx, "/etcdtest/ready", m.Name)
			cancel()
			if last == nil || time.Now().After(deadline) {
				break
			}
			select {
			case <-m.done:
				last = fmt.Errorf("member %s exited", m.Name)
				break retry
			case <-time.After(100 * time.Millisecond):
			}
		}
		cli.Close()
		if last != nil {
			return fmt.Errorf("etcd member %s not ready within %s: %w", m.Name, timeout, last)
		}
	}
	return nil
}

// Start starts (or restarts, on its data directory) the member's process.
func (m *Member) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		select {
		case <-m.done:
		default:
			return fmt.Errorf("etcd member %s is already running", m.Name)
		}
		m.logsBefore += m.logs.String()
	}
	cmd := exec.Command(m.c.bin, m.args...)
	m.logs = &bytes.Buffer{}
	w := lockedWriter{&m.mu, m.logs}
	cmd.Stdout, cmd.Stderr = w, w
	// The member dies with the test process, even if that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting etcd member %s: %w", m.Name, err)
	}
	m.cmd = cmd
	done := make(chan struct{})
	m.done = done
	go func() { _ = cmd.Wait(); close(done) }()
	return nil
}

// Running reports whether the member's process is running.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the member and waits for it to exit.
func (m *Member) Kill() { m.signal(syscall.SIGKILL) }

// Stop sends SIGTERM to the member and waits for it to exit.
func (m *Member) Stop() { m.signal(syscall.SIGTERM) }

func (m *Member) signal(sig syscall.Signal) {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Logs returns what the member printed, across restarts.
func (m *Member) Logs() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.logs == nil {
		return m.logsBefore
	}
	return m.logsBefore + m.logs.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// makeCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, into the cluster's directory.
func (c *Cluster) makeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vipsmart etcdtest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	c.CA = filepath.Join(c.dir, "ca.pem")
	if err := writePEM(c.CA, "CERTIFICATE", caDER); err != nil {
		return err
	}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, certFile, keyFile string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{netip.MustParseAddr("127.0.0.1").AsSlice()},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(keyFile, "EC PRIVATE KEY", kder)
	}
	if err := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, filepath.Join(c.dir, "server.pem"), filepath.Join(c.dir, "server-key.pem")); err != nil {
		return err
	}
	c.ClientCert, c.ClientKey = filepath.Join(c.dir, "client.pem"), filepath.Join(c.dir, "client-key.pem")
	return leaf(3, "vipsmart", x509.ExtKeyUsageClientAuth, c.ClientCert, c.ClientKey)
}

func writePEM(path, typ string, der []byte) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if b == nil {
		return errors.New("pem encoding failed")
	}
	return os.WriteFile(path, b, 0o600)
}
