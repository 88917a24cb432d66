package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/vipsmart/vipsmart/announce/netlink"
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

func startGuard(log *slog.Logger) (*guardProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "addr-guard")
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

// set tells the guard the addresses bound and the deadline.
func (g *guardProc) set(addrs []netlink.Addr, deadline time.Time) {
	var d int64
	if left := time.Until(deadline); left > 0 && len(addrs) > 0 {
		d = monoNow() + int64(left)
	}
	b, _ := json.Marshal(guardMsg{Deadline: d, Addrs: addrs})
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
	return &cobra.Command{
		Use:    "addr-guard",
		Short:  "Internal: removes the VIPs `vipsmart serve` bound when its renew deadline passes (started by serve)",
		Hidden: true,
		Args:   exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			runGuard(os.Stdin, netlink.NewLinuxOS(), slog.New(slog.NewTextHandler(os.Stderr, nil)).With("part", "addr-guard"))
			return nil
		},
	}
}

// runGuard is the guard's loop: it returns when in ends, after removing
// the addresses it was last told about.
func runGuard(in io.Reader, os netlink.OS, log *slog.Logger) {
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
				return
			}
			cur = m
		case <-timer.C:
		}
	}
}
