package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestCLITimeoutNamesTheOperation: when the CLI stops waiting before an
// operation ends, it says which operation is still running (the daemon
// answers just before the client's --timeout) instead of a bare timeout.
func TestCLITimeoutNamesTheOperation(t *testing.T) {
	d := startDaemon(t, "dc-1")
	// A "candidate" that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	r := cli(t, d.server(), "--timeout", "1s", "dc", "add", fmt.Sprintf("dc-2,127.0.0.1,%d", l.Addr().(*net.TCPAddr).Port), "--token", formalJoinToken(t, "dc-2"))
	if r.code != 1 || !strings.Contains(r.stderr, "is still running") || !strings.Contains(r.stderr, "dc-1-") {
		t.Fatalf("exit %d after %s, stderr %q; want exit 1 naming the running operation", r.code, time.Since(start), r.stderr)
	}
	// The operation then fails by itself and the DC is standalone again.
	eventually(t, 10*time.Second, "dc-1 standalone and unlocked", func() error {
		if st := status(t, d); st.Status != "standalone" || st.OpID != "" {
			return fmt.Errorf("status %s op %q", st.Status, st.OpID)
		}
		return nil
	})
}
