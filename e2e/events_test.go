package e2e

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestEventsFollow: `vipsmart events --follow -o json` prints one JSON
// object per line as events happen.
func TestEventsFollow(t *testing.T) {
	d := startDaemon(t, "dc-1")
	cmd := exec.Command(bin, "--server", d.server(), "events", "--follow", "-o", "json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(300 * time.Millisecond)
	mustCLI(t, d.server(), "vip", "add", "web", "192.0.2.10")
	mustCLI(t, d.server(), "vip", "remove", "web")
	want := []string{"VIP web 192.0.2.10 added", "VIP web 192.0.2.10 removed"}
	timeout := time.After(10 * time.Second)
	var lastSeq uint64
	for len(want) > 0 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("events --follow ended; still waiting for %q", want)
			}
			var e struct {
				Seq     uint64 `json:"seq"`
				Kind    string `json:"kind"`
				DC      string `json:"dc"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("line %q is not one JSON object: %v", l, err)
			}
			if e.Seq <= lastSeq || e.DC != "dc-1" {
				t.Fatalf("event %+v after seq %d", e, lastSeq)
			}
			lastSeq = e.Seq
			if strings.Contains(e.Message, want[0]) {
				if e.Kind != "vip" {
					t.Fatalf("event %+v has kind %s; want vip", e, e.Kind)
				}
				want = want[1:]
			}
		case <-timeout:
			t.Fatalf("events --follow did not print %q within 10s", want)
		}
	}
}
