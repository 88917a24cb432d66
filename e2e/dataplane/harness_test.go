// Package dataplane runs the real vipsmart binary inside Linux network
// namespaces and checks what its announcers make real: routes in real BGP
// routers (every BGP test runs against Debian's BIRD 2 and Debian's FRR 8,
// each with its configuration from docs/dataplane.md as written) and
// addresses that answer ICMP, ARP and neighbour discovery on a bridge. It
// needs root and the ip, bird, FRR, iptables and keepalived binaries;
// without them the tests skip and say why. CI (.ci/run) runs it as root.
package dataplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/httpapi"
)

// bin is the vipsmart binary built once for the package ("" when the
// package cannot run: skipReason says why).
var (
	bin        string
	skipReason string
)

func TestMain(m *testing.M) {
	switch {
	case runtime.GOOS != "linux":
		skipReason = "data-plane tests need Linux network namespaces"
	case os.Geteuid() != 0:
		skipReason = "data-plane tests need root (network namespaces, veth, BIRD); CI runs them as root"
	default:
		if _, err := exec.LookPath("ip"); err != nil {
			skipReason = "data-plane tests need the ip command (apt-get install iproute2)"
		}
	}
	code := 0
	if skipReason == "" {
		dir, err := os.MkdirTemp("", "vipsmart-dataplane-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		bin = filepath.Join(dir, "vipsmart")
		out, err := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "../../cmd/vipsmart").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building vipsmart: %v\n%s", err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
		code = m.Run()
		os.RemoveAll(dir)
	} else {
		code = m.Run()
	}
	os.Exit(code)
}

// need skips t unless the package can run and every named binary exists.
func need(t testing.TB, bins ...string) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s is not installed (Debian: apt-get install -y bird2 frr keepalived iptables iproute2; .ci/run installs them)", b)
		}
	}
}

// sh runs a command (in the host namespace) and fails t unless it succeeds.
func sh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nsExec runs a command inside namespace ns and fails t unless it succeeds.
func nsExec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return sh(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lab is a set of network namespaces a test created; all are deleted in
// t.Cleanup (after the processes started in them, whose cleanups run first).
type lab struct {
	t      testing.TB
	prefix string
}

// newLab returns a lab whose namespaces are named vs-<random>-<role>, so
// that parallel runs never collide.
func newLab(t testing.TB) *lab {
	return &lab{t: t, prefix: "vs-" + randHex(4) + "-"}
}

// ns creates namespace <prefix><role> with lo up and returns its name.
func (l *lab) ns(role string) string {
	l.t.Helper()
	name := l.prefix + role
	sh(l.t, "ip", "netns", "add", name)
	l.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			l.t.Logf("ip netns delete %s: %v %s", name, err, out)
		}
	})
	sh(l.t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// veth creates a veth pair with one end (ifA) in nsA and the other (ifB)
// in nsB, both up; nothing is created in the host namespace. Addresses
// (CIDR, "" for none) go on each end.
func (l *lab) veth(nsA, ifA, addrA, nsB, ifB, addrB string) {
	l.t.Helper()
	sh(l.t, "ip", "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	for _, e := range []struct{ ns, ifc, addr string }{{nsA, ifA, addrA}, {nsB, ifB, addrB}} {
		if e.addr != "" {
			sh(l.t, "ip", "-n", e.ns, "addr", "add", e.addr, "dev", e.ifc)
		}
		sh(l.t, "ip", "-n", e.ns, "link", "set", e.ifc, "up")
	}
}

// mac returns the MAC address of ifc in ns.
func mac(t testing.TB, ns, ifc string) string {
	t.Helper()
	out := sh(t, "ip", "-n", ns, "-o", "link", "show", ifc)
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no MAC address for %s in %s: %s", ifc, ns, out)
	return ""
}

// inNS runs f on an OS thread switched into namespace ns. The thread is
// never unlocked, so it is discarded when f returns and no other goroutine
// ever runs in ns by accident. Sockets opened by f stay in ns and may be
// used from anywhere afterwards.
func inNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // deliberately never unlocked
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// httpIn returns an HTTP client whose connections are opened in ns.
func httpIn(ns string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := inNS(ns, func() error {
				var err error
				c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a long-running process inside a namespace.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	logs *syncBuf
	done chan struct{}
}

// startProc starts args inside ns (ip netns exec execs the command, so the
// process id is the command's own). It is killed in t.Cleanup and its
// output is logged if t failed.
func startProc(t testing.TB, ns, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, logs: &syncBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() || os.Getenv("DEBUG_PROCS") != "" {
			t.Logf("output of %s:\n%s", name, p.logs.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	if p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits up to d for the process to exit.
func (p *proc) term(d time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if !p.cmd.ProcessState.Success() {
			return fmt.Errorf("%s exited with %v", p.name, p.cmd.ProcessState)
		}
		return nil
	case <-time.After(d):
		p.kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM", p.name, d)
	}
}

// dc is one vipsmart daemon in its own namespace.
type dc struct {
	t       testing.TB
	name    string
	ns      string
	ip      string // the namespace address it listens on
	dataDir string
	sock    string // its operator socket (a path: reachable from any namespace)
	extra   []string
	p       *proc
	http    *http.Client // over the operator socket
}

const apiPort = "9610"

func newDC(t testing.TB, name, ns, ip string, extra ...string) *dc {
	sd, err := os.MkdirTemp("", "vs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sd) })
	sock := filepath.Join(sd, name+".sock")
	return &dc{t: t, name: name, ns: ns, ip: ip, dataDir: filepath.Join(t.TempDir(), name), sock: sock, extra: extra, http: httpapi.NewClient(sock).HTTP}
}

func (d *dc) addr() string { return net.JoinHostPort(d.ip, apiPort) }
func (d *dc) spec() string { return d.name + "," + d.ip + "," + apiPort }

// url names a path of the DC's operator API (on its socket, with d.http).
func (d *dc) url(path string) string { return "http://vipsmart" + path }

// start runs `vipsmart serve` in the DC's namespace and waits for /healthz.
func (d *dc) start() {
	d.t.Helper()
	args := append([]string{bin, "serve", "--name", d.name, "--listen", d.addr(), "--data-dir", d.dataDir, "--socket", d.sock}, d.extra...)
	d.p = startProc(d.t, d.ns, d.name, args...)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if d.p.exited() {
			d.t.Fatalf("%s exited at start:\n%s", d.name, d.p.logs.String())
		}
		resp, err := d.http.Get(d.url("/healthz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("%s did not answer within 20s:\n%s", d.name, d.p.logs.String())
}

// cli runs the vipsmart CLI against this DC (its socket), from its
// namespace.
func (d *dc) cli(args ...string) string {
	d.t.Helper()
	return nsExec(d.t, d.ns, append([]string{bin, "--server", d.sock}, args...)...)
}

// dcAdd adds cand to d's federation as an operator would: a join token
// made on cand, then dc add on d.
func (d *dc) dcAdd(cand *dc) string {
	d.t.Helper()
	tok := strings.TrimSpace(cand.cli("dc", "join-token"))
	return d.cli("dc", "add", cand.spec(), "--token", tok)
}

// get decodes GET path of the DC's API into v.
func (d *dc) get(path string, v any) error {
	resp, err := d.http.Get(d.url(path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (d *dc) status() (vipsmart.StatusInfo, error) {
	var s vipsmart.StatusInfo
	err := d.get("/v1/status", &s)
	return s, err
}

// announced returns the DC's announced list as "addr=kind" strings.
func (d *dc) announced() ([]string, error) {
	s, err := d.status()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range s.Announced {
		out = append(out, a.Addr.String()+"="+string(a.Kind))
	}
	sort.Strings(out)
	return out, nil
}

// waitMembers waits until every DC sees all the others reachable.
func waitMembers(t testing.TB, ds ...*dc) {
	t.Helper()
	eventually(t, 20*time.Second, "every DC sees every member reachable", func() error {
		for _, d := range ds {
			var rows []vipsmart.DCInfo
			if err := d.get("/v1/dcs", &rows); err != nil {
				return err
			}
			n := 0
			for _, r := range rows {
				if r.Reachable || r.Self {
					n++
				}
			}
			if n != len(ds) {
				return fmt.Errorf("%s sees %d of %d members reachable: %+v", d.name, n, len(ds), rows)
			}
		}
		return nil
	})
}

// eventually retries f every 20ms until it returns nil or timeout passes,
// and returns how long that took.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
