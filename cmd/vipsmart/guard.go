package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/vipsmart/vipsmart/announce/netlink"
	"github.com/vipsmart/vipsmart/etcd"
)

// The address guard: a holder that is killed (kill -9) or frozen
// (SIGSTOP) cannot remove the VIPs it bound, and the kernel's address
// lifetime counts in whole seconds (about 1-1.7 s for the shortest). So
// `vipsmart serve` starts a child process, `vipsmart addr-guard`, and tells
// it through a pipe which addresses it binds and until when (its renew
// deadline, on CLOCK_MONOTONIC, which both processes share). The guard
// removes them when that deadline passes without a newer one, and at once
// when the pipe closes (the daemon died). It does nothing else, so it does
// not freeze or die with the daemon unless the whole process group is
// signalled; then the kernel's lifetime is the last resort (docs/ha.md).

// guardMsg is one line on the guard's stdin: the addresses bound and the
// deadline (CLOCK_MONOTONIC nanoseconds; 0: remove them now).
type guardMsg struct {
	Deadline int64          `json:"deadline"`
	Addrs    []netlink.Addr `json:"addrs"`
	// Inc is the daemon's incarnation (its beat's create revision; 0:
	// none): when the daemon dies, the guard fences that beat once the
	// addresses are gone, so the other nodes take its VIPs at once.
	Inc int64 `json:"inc,omitempty"`
}

// guardEtcd is how the guard reaches etcd to fence the dead daemon's
// beat: the daemon's own store flags.
type guardEtcd struct {
	dc, node, prefix string
	endpoints        []string
	cert, key, ca    string
}

func (g guardEtcd) args() []string {
	a := []string{"--dc", g.dc, "--node", g.node, "--etcd-prefix", g.prefix, "--etcd-endpoints", strings.Join(g.endpoints, ",")}
	for _, f := range []struct{ flag, v string }{{"--etcd-cert", g.cert}, {"--etcd-key", g.key}, {"--etcd-ca", g.ca}} {
		if f.v != "" {
			a = append(a, f.flag, f.v)
		}
	}
	return a
}

// fence marks the beat of incarnation inc fenced (docs/ha.md).
func (g guardEtcd) fence(inc int64, log *slog.Logger) {
	if inc == 0 || len(g.endpoints) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var tlsCfg *tls.Config
	if g.cert != "" || g.ca != "" {
		c, err := etcd.TLSConfig(g.cert, g.key, g.ca)
		if err != nil {
			log.Warn("fencing the dead daemon's beat: TLS", "err", err)
			return
		}
		tlsCfg = c
	}
	st, err := etcd.Open(ctx, etcd.Config{Endpoints: g.endpoints, TLS: tlsCfg, Prefix: g.prefix, DC: g.dc, RequestTimeout: 2 * time.Second, DialTimeout: 2 * time.Second})
	if err != nil {
		log.Warn("fencing the dead daemon's beat: opening etcd", "err", err)
		return
	}
	defer st.Close()
	ok, err := st.FenceBeat(ctx, g.node, inc, "addr-guard")
	log.Info("fenced the dead daemon's beat: the other nodes take its VIPs at once", "node", g.node, "incarnation", inc, "fenced", ok, "err", err)
}

func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// guardProc is the daemon's end of the guard.
type guardProc struct {
	log  *slog.Logger
	cmd  *exec.Cmd
	mu   sync.Mutex
	in   io.WriteCloser
	dead bool
}

func startGuard(log *slog.Logger, ge guardEtcd) (*guardProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{"addr-guard"}, ge.args()...)...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s addr-guard: %w", exe, err)
	}
	g := &guardProc{log: log, cmd: cmd, in: in}
	go func() {
		err := cmd.Wait()
		g.mu.Lock()
		g.dead = true
		g.mu.Unlock()
		log.Warn("the address guard exited", "err", err)
	}()
	log.Info("address guard started", "pid", cmd.Process.Pid)
	return g, nil
}

// set tells the guard the addresses bound, the deadline and the
// incarnation.
func (g *guardProc) set(addrs []netlink.Addr, deadline time.Time, inc int64) {
	var d int64
	if left := time.Until(deadline); left > 0 && len(addrs) > 0 {
		d = monoNow() + int64(left)
	}
	b, _ := json.Marshal(guardMsg{Deadline: d, Addrs: addrs, Inc: inc})
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead {
		return
	}
	if _, err := g.in.Write(append(b, '\n')); err != nil {
		g.log.Warn("telling the address guard", "err", err)
	}
}

// close ends the guard (it removes what it was told about, which the
// daemon removed already) and waits a little for it.
func (g *guardProc) close() {
	g.set(nil, time.Time{}, 0) // a clean stop: nothing to fence
	g.mu.Lock()
	_ = g.in.Close()
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for {
			g.mu.Lock()
			d := g.dead
			g.mu.Unlock()
			if d {
				close(done)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		_ = g.cmd.Process.Kill()
	}
}

func newGuardCmd() *cobra.Command {
	var ge guardEtcd
	c := &cobra.Command{
		Use:    "addr-guard",
		Short:  "Internal: removes the VIPs `vipsmart serve` bound when its renew deadline passes (started by serve)",
		Hidden: true,
		Args:   exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("part", "addr-guard")
			if inc := runGuard(os.Stdin, netlink.NewLinuxOS(), log); inc != 0 {
				ge.fence(inc, log)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&ge.dc, "dc", "", "the DC's name")
	f.StringVar(&ge.node, "node", "", "the daemon's node name")
	f.StringVar(&ge.prefix, "etcd-prefix", "", "the DC's etcd prefix")
	f.StringSliceVar(&ge.endpoints, "etcd-endpoints", nil, "etcd client URLs")
	f.StringVar(&ge.cert, "etcd-cert", "", "etcd client certificate")
	f.StringVar(&ge.key, "etcd-key", "", "etcd client key")
	f.StringVar(&ge.ca, "etcd-ca", "", "etcd CA")
	return c
}

// runGuard is the guard's loop: it returns when in ends, after removing
// the addresses it was last told about, with the daemon's last
// incarnation (0 at a clean stop, when the daemon said so).
func runGuard(in io.Reader, os netlink.OS, log *slog.Logger) int64 {
	msgs := make(chan guardMsg)
	go func() {
		defer close(msgs)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var m guardMsg
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				msgs <- m
			}
		}
	}()
	var cur guardMsg
	remove := func(why string) {
		for _, a := range cur.Addrs {
			a.ValidLft = 0
			if err := os.DelAddr(a); err == nil {
				log.Warn("address removed: "+why, "address", a.Prefix.String(), "interface", a.Link)
			}
		}
		cur.Addrs = nil
	}
	timer := time.NewTimer(time.Hour)
	for {
		if len(cur.Addrs) > 0 {
			left := time.Duration(cur.Deadline - monoNow())
			if left <= 0 {
				remove("the daemon's renew deadline passed")
				continue
			}
			timer.Reset(left)
		}
		select {
		case m, ok := <-msgs:
			if !ok {
				remove("the daemon is gone")
				return cur.Inc
			}
			cur = m
		case <-timer.C:
		}
	}
}
