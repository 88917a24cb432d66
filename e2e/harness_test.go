// Package e2e runs the real vipsmart binary as separate processes on
// loopback, with real data directories, and drives it through its CLI and
// its HTTP API exactly as an operator would.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/httpapi"
	"github.com/vipsmart/vipsmart/internal/daemonenv"
)

// bin is the vipsmart binary built once for the whole package.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vipsmart-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "vipsmart")
	args := []string{"build", "-buildvcs=false", "-o", bin}
	if os.Getenv("VIPSMART_E2E_RACE") != "" {
		args = append(args, "-race") // daemons built with the race detector
	}
	out, err := exec.Command("go", append(args, "../cmd/vipsmart")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building vipsmart: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
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

// daemon is one `vipsmart serve` process.
type daemon struct {
	t       testing.TB
	name    string
	port    int
	dataDir string
	sock    string // its operator socket (--socket)
	extra   []string
	env     []string
	cmd     *exec.Cmd
	logs    *bytes.Buffer
	mu      sync.Mutex
	done    chan struct{}
}

// addr is d's federation address (IP:PORT of --listen).
func (d *daemon) addr() string { return "127.0.0.1:" + strconv.Itoa(d.port) }

// server is what the CLI's --server takes to reach d's operator API: the
// path of its socket. Tests reach the operator API only through server and
// client, so that the transport of the operator API is decided here alone.
func (d *daemon) server() string { return d.sock }

// client is a vipsmart.Service (and TrustService) over d's operator API.
func (d *daemon) client() *httpapi.Client { return httpapi.NewClient(d.server()) }

// http is a plain HTTP client of d's operator API (over its socket), for
// tests that send requests the CLI would not; url names a path on it.
func (d *daemon) http() *http.Client { return d.client().HTTP }

func (d *daemon) url(path string) string { return "http://vipsmart" + path }

// spec is the DC's NAME,IP,PORT.
func (d *daemon) spec() string { return d.name + ",127.0.0.1," + strconv.Itoa(d.port) }

// newDaemon prepares (but does not start) a daemon with its own data dir
// and its own socket (in a short temporary directory: a socket path has
// at most 107 bytes, and test names make t.TempDir long).
func newDaemon(t testing.TB, name string, extra ...string) *daemon {
	sd, err := os.MkdirTemp("", "vs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sd) })
	return &daemon{t: t, name: name, port: freePort(t), dataDir: filepath.Join(t.TempDir(), name), sock: filepath.Join(sd, name+".sock"), extra: extra,
		env: daemonenv.Env(1)} // the runtime settings vipsmart's launchers give a daemon (startFederation: of n)
}

// startDaemon starts a fresh daemon and waits until it answers.
func startDaemon(t testing.TB, name string, extra ...string) *daemon {
	d := newDaemon(t, name, extra...)
	d.start()
	return d
}

type syncBuf struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (s syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// serveArgs are the arguments of d's `vipsmart serve`. No --log-level:
// info is the default, and a test may set it in a config file (a
// command-line flag would win over it).
func (d *daemon) serveArgs() []string {
	return append([]string{"serve", "--name", d.name, "--listen", d.addr(), "--data-dir", d.dataDir, "--socket", d.sock}, d.extra...)
}

// start runs the process and waits for /healthz.
func (d *daemon) start() {
	d.t.Helper()
	args := d.serveArgs()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), d.env...)
	d.logs = &bytes.Buffer{}
	cmd.Stdout = syncBuf{&d.mu, d.logs}
	cmd.Stderr = syncBuf{&d.mu, d.logs}
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.cmd = cmd
	d.done = make(chan struct{})
	go func() { cmd.Wait(); close(d.done) }()
	d.t.Cleanup(func() {
		d.kill()
		if strings.Contains(d.Logs(), "WARNING: DATA RACE") {
			d.t.Errorf("the race detector found a data race in %s", d.name)
		}
		if d.t.Failed() {
			d.t.Logf("logs of %s:\n%s", d.name, d.Logs())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	hc := d.http()
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			d.t.Fatalf("daemon %s exited at start:\n%s", d.name, d.Logs())
		default:
		}
		resp, err := hc.Get(d.url("/healthz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("daemon %s did not answer within 20s:\n%s", d.name, d.Logs())
}

// Logs returns what the daemon printed.
func (d *daemon) Logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.logs == nil {
		return ""
	}
	return d.logs.String()
}

// kill sends SIGKILL and waits for the process to go.
func (d *daemon) kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.kill()
		return fmt.Errorf("%s did not stop within 10s of SIGTERM", d.name)
	}
	if !d.cmd.ProcessState.Success() {
		return fmt.Errorf("%s exited with %v", d.name, d.cmd.ProcessState)
	}
	return nil
}

// result is one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the vipsmart CLI against server.
func cli(t testing.TB, server string, args ...string) result {
	t.Helper()
	r, _ := runCLI(t, 60*time.Second, server, args...)
	return r
}

// runCLI runs the vipsmart CLI against server, killed after timeout, and
// also returns the CPU time (user and system) it spent.
func runCLI(t testing.TB, timeout time.Duration, server string, args ...string) (result, time.Duration) {
	t.Helper()
	return runCLITo(t, timeout, nil, server, args...)
}

// runCLITo is runCLI with the CLI's standard output written straight to
// the file out, as `vipsmart ... > FILE` does (nil: a pipe the test reads,
// as runCLI); the result's stdout is then empty.
func runCLITo(t testing.TB, timeout time.Duration, out *os.File, server string, args ...string) (result, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--server", server}, args...)...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if out != nil {
		cmd.Stdout = out
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running vipsmart %v: %v", args, err)
	}
	return result{so.String(), se.String(), code}, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// dcAdd runs `vipsmart dc add` of cand on coord, as an operator would: it
// makes a join token on cand (`vipsmart dc join-token`) and passes it with
// --token, unless extra (appended) has a --token of its own. If cand
// refuses to make a token (it is a member already), that refusal is the
// result.
func dcAdd(t testing.TB, coord, cand *daemon, extra ...string) result {
	t.Helper()
	args := []string{"dc", "add", cand.spec()}
	if !slices.Contains(extra, "--token") {
		r := cli(t, cand.server(), "dc", "join-token")
		if r.code != 0 {
			return r
		}
		args = append(args, "--token", strings.TrimSpace(r.stdout))
	}
	return cli(t, coord.server(), append(args, extra...)...)
}

// joinToken makes a join token on d with `vipsmart dc join-token`.
func joinToken(t testing.TB, d *daemon, extra ...string) string {
	t.Helper()
	return strings.TrimSpace(mustCLI(t, d.server(), append([]string{"dc", "join-token"}, extra...)...))
}

// mustDCAdd is dcAdd that fails the test unless it exits 0.
func mustDCAdd(t testing.TB, coord, cand *daemon, extra ...string) string {
	t.Helper()
	r := dcAdd(t, coord, cand, extra...)
	if r.code != 0 {
		t.Fatalf("vipsmart dc add %s on %s: exit %d\nstdout: %s\nstderr: %s", cand.spec(), coord.name, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func mustCLI(t testing.TB, server string, args ...string) string {
	t.Helper()
	r := cli(t, server, args...)
	if r.code != 0 {
		t.Fatalf("vipsmart %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// cliJSON runs a read command with --output json and decodes its answer.
func cliJSON(t testing.TB, server string, out any, args ...string) {
	t.Helper()
	s := mustCLI(t, server, append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(s), out); err != nil {
		t.Fatalf("vipsmart %v: output is not JSON: %v\n%s", args, err, s)
	}
}

// eventually retries f until it returns nil or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s: %v", what, timeout, err)
}

// jsonDecode decodes a JSON answer.
func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// startFederation starts n fresh daemons dc-1..dc-N and federates them
// with dc add on dc-1 (through the API, as a pipeline would).
func startFederation(t testing.TB, n int, extra ...string) []*daemon {
	ds := make([]*daemon, n)
	for i := range ds {
		ds[i] = newDaemon(t, fmt.Sprintf("dc-%d", i+1), extra...)
		ds[i].env = daemonenv.Env(n) // as the demo's: GOMAXPROCS=1 too when the DCs outnumber the cores
		ds[i].start()
	}
	c := ds[0].client()
	for _, d := range ds[1:] {
		if _, err := c.AddDC(context.Background(), dcOf(d), apiJoinToken(t, d)); err != nil {
			t.Fatalf("federating %s: %v", d.name, err)
		}
	}
	return ds
}

// apiJoinToken makes a join token on d through its API (as
// startFederation's pipeline would).
func apiJoinToken(t testing.TB, d *daemon) string {
	t.Helper()
	jt, err := d.client().CreateJoinToken(context.Background(), 10*time.Minute)
	if err != nil {
		t.Fatalf("join token of %s: %v", d.name, err)
	}
	return jt.Token
}

func dcOf(d *daemon) vipsmart.DC {
	return vipsmart.DC{Name: d.name, Address: netip.MustParseAddr("127.0.0.1"), Port: uint16(d.port)}
}
