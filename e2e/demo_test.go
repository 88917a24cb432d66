package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freePorts returns the first of n consecutive TCP ports on 127.0.0.1 that
// were free a moment ago.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		base := freePort(t)
		ok := base+n-1 <= 65535
		for i := 1; ok && i < n; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no run of free ports")
	return 0
}

func runDemo(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"demo"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{so.String(), se.String(), code}
}

// TestDemoRoughEdges: --dir is created, a rerun on it resumes the
// federation, one that cannot says why; the hints use the command that was
// run; the temporary directory goes away.
func TestDemoRoughEdges(t *testing.T) {
	base := freePorts(t, 2)
	dir := filepath.Join(t.TempDir(), "new", "demo")
	r := runDemo(t, nil, "--exit", "--dcs", "2", "--base-port", strconv.Itoa(base), "--dir", dir)
	if r.code != 0 {
		t.Fatalf("demo --dir (missing): exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "$ "+bin+" --server "+filepath.Join(dir, "dc-1.sock")+" dc add dc-2,") {
		t.Errorf("the demo's commands do not use the binary that was run (%s):\n%s", bin, r.stdout)
	}
	if !strings.Contains(r.stdout, "NAME         ADDRESS") || !strings.Contains(r.stdout, "LAST SEEN") || !strings.Contains(r.stdout, "PREEMPT") {
		t.Errorf("the demo's tables lack the columns of dc list and gip list:\n%s", r.stdout)
	}
	r = runDemo(t, nil, "--exit", "--dcs", "2", "--base-port", strconv.Itoa(base), "--dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "resuming it") {
		t.Errorf("rerun on the same --dir: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	base3 := freePorts(t, 3)
	r = runDemo(t, nil, "--exit", "--dcs", "3", "--base-port", strconv.Itoa(base3), "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "cannot resume") || !strings.Contains(r.stderr, "give another --dir") {
		t.Errorf("rerun with another --dcs: exit %d, want 1 saying why\n%s", r.code, r.stderr)
	}
	tmp := t.TempDir()
	r = runDemo(t, []string{"TMPDIR=" + tmp}, "--exit", "--dcs", "2", "--base-port", strconv.Itoa(freePorts(t, 2)))
	if r.code != 0 {
		t.Fatalf("demo: exit %d\n%s", r.code, r.stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "vipsmart-demo-*")); len(left) > 0 {
		t.Errorf("the demo left its temporary directory: %v", left)
	}
}

// TestDemoKilledDCLeavesNoZombie: a DC killed from another terminal is
// reaped at once and reported.
func TestDemoKilledDCLeavesNoZombie(t *testing.T) {
	base := freePorts(t, 2)
	cmd := exec.Command(bin, "demo", "--dcs", "2", "--base-port", strconv.Itoa(base))
	var mu sync.Mutex
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = syncBuf{&mu, &buf}, syncBuf{&mu, &buf}
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	var pid int
	eventually(t, 60*time.Second, "the demo printing the pid of dc-1", func() error {
		m := regexp.MustCompile(`kill (\d+)\)`).FindStringSubmatch(output())
		if m == nil {
			return fmt.Errorf("not yet")
		}
		pid, _ = strconv.Atoi(m[1])
		return nil
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "dc-1 reaped (no zombie) and reported", func() error {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			return fmt.Errorf("process %d still exists: %s", pid, b)
		}
		if !strings.Contains(output(), "[demo] dc-1 (pid "+strconv.Itoa(pid)+") stopped: signal: killed") {
			return fmt.Errorf("not reported:\n%s", output())
		}
		return nil
	})
}
