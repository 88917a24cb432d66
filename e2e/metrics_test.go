package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startMetricsFederation starts n daemons, each with its own
// --metrics-listen, and federates them with dc add on dc-1. It returns the
// daemons and their metrics addresses.
func startMetricsFederation(t *testing.T, n int) ([]*daemon, []string) {
	t.Helper()
	ds := make([]*daemon, n)
	addrs := make([]string, n)
	for i := range ds {
		addrs[i] = "127.0.0.1:" + strconv.Itoa(freePort(t))
		ds[i] = newDaemon(t, fmt.Sprintf("dc-%d", i+1), append(fedTimers, "--metrics-listen", addrs[i])...)
		ds[i].start()
	}
	for _, d := range ds[1:] {
		mustDCAdd(t, ds[0], d)
	}
	return ds, addrs
}

// scrape is one scrape of a /metrics endpoint: the text and its samples by
// series (name{labels} exactly as exposed; client_golang sorts labels).
type scrape struct {
	text    string
	samples map[string]float64
}

func scrapeMetrics(t testing.TB, addr string) (scrape, error) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return scrape{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return scrape{}, err
	}
	if resp.StatusCode != 200 {
		return scrape{}, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	s := scrape{text: string(b), samples: map[string]float64{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return scrape{}, fmt.Errorf("bad sample line %q", line)
		}
		s.samples[line[:i]] = v
	}
	return s, nil
}

// want checks that series has value v.
func (s scrape) want(series string, v float64) error {
	got, ok := s.samples[series]
	if !ok {
		return fmt.Errorf("%s is missing", series)
	}
	if got != v {
		return fmt.Errorf("%s = %g, want %g", series, got, v)
	}
	return nil
}

// promtoolCheck runs `promtool check metrics` on a scrape (lint: names,
// units, help, counters' _total...).
func promtoolCheck(t *testing.T, what string, s scrape) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skipf("promtool is not installed (Debian package prometheus; CI installs it): %s not linted", what)
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(s.text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics on %s: %v\n%s", what, err, out)
	}
}

// TestMetricsAfterFailover scrapes a federation that has done adds, a
// refusal and a failover: the key series move as they should and every
// scrape passes promtool's lint.
func TestMetricsAfterFailover(t *testing.T) {
	ds, addrs := startMetricsFederation(t, 3)
	mustCLI(t, ds[0].server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-2:150,dc-3:100")
	// Refusals: a candidate nobody answers for, and a GIP that exists.
	ghost := newDaemon(t, "dc-9")
	if r := dcAdd(t, ds[0], ghost, "--token", formalJoinToken(t, ghost.name)); r.code != 1 {
		t.Fatalf("dc add of a DC that is not running: exit %d, want 1\n%s", r.code, r.stderr)
	}
	if r := cli(t, ds[0].server(), "gip", "add", "www", "203.0.113.11", "--placement", "dc-1:10"); r.code == 0 {
		t.Fatalf("gip add of an existing name succeeded")
	}

	var before scrape
	eventually(t, 10*time.Second, "dc-1 active for www and counted in dc-1's and dc-2's metrics", func() error {
		s1, err := scrapeMetrics(t, addrs[0])
		if err != nil {
			return err
		}
		for _, c := range []struct {
			series string
			v      float64
		}{
			{`vipsmart_dc_status{status="member"}`, 1},
			{`vipsmart_federation_members`, 3},
			{`vipsmart_gip_active{gip="www"}`, 1},
			{`vipsmart_operations_total{kind="add_dc",outcome="ok"}`, 2},
			{`vipsmart_operations_total{kind="add_dc",outcome="unavailable"}`, 1},
			{`vipsmart_operations_total{kind="add_gip",outcome="ok"}`, 1},
			{`vipsmart_operations_total{kind="add_gip",outcome="conflict"}`, 1},
			{`vipsmart_operation_duration_seconds_count{kind="add_dc"}`, 3},
		} {
			if err := s1.want(c.series, c.v); err != nil {
				return fmt.Errorf("dc-1: %w", err)
			}
		}
		s2, err := scrapeMetrics(t, addrs[1])
		if err != nil {
			return err
		}
		for _, c := range []struct {
			series string
			v      float64
		}{
			{`vipsmart_peer_reachable{dc="dc-1"}`, 1},
			{`vipsmart_gip_active{gip="www"}`, 0},
			{`vipsmart_gip_active_placements{gip="www"}`, 1},
		} {
			if err := s2.want(c.series, c.v); err != nil {
				return fmt.Errorf("dc-2: %w", err)
			}
		}
		if s2.samples[`vipsmart_peer_heartbeat_rtt_seconds_count{dc="dc-1"}`] == 0 {
			return fmt.Errorf("dc-2 counted no heartbeat round trip to dc-1")
		}
		if s2.samples[`vipsmart_store_write_duration_seconds_count{op="save_federation"}`] == 0 {
			return fmt.Errorf("dc-2 timed no store write")
		}
		before = s2
		return nil
	})
	s1, err := scrapeMetrics(t, addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	epoch := before.samples["vipsmart_federation_epoch"]
	gipEvents := before.samples[`vipsmart_events_total{kind="gip"}`]

	ds[0].kill()
	var after scrape
	eventually(t, 10*time.Second, "dc-2 taking www over from the killed dc-1, in its metrics", func() error {
		s, err := scrapeMetrics(t, addrs[1])
		if err != nil {
			return err
		}
		for _, c := range []struct {
			series string
			v      float64
		}{
			{`vipsmart_peer_reachable{dc="dc-1"}`, 0},
			{`vipsmart_peer_reachable{dc="dc-3"}`, 1},
			{`vipsmart_gip_active{gip="www"}`, 1},
			{`vipsmart_gip_active_placements{gip="www"}`, 1},
			{`vipsmart_gip_failovers_total{gip="www",reason="dc_unreachable"}`, 1},
			{`vipsmart_announced_addresses{announcer="none",kind="gip-active"}`, 1},
			{`vipsmart_federation_epoch`, epoch}, // a failover commits nothing
		} {
			if err := s.want(c.series, c.v); err != nil {
				return err
			}
		}
		if s.samples[`vipsmart_events_total{kind="gip"}`] <= gipEvents {
			return fmt.Errorf("no gip event counted for the takeover")
		}
		after = s
		return nil
	})
	s3, err := scrapeMetrics(t, addrs[2])
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.want(`vipsmart_gip_active{gip="www"}`, 0); err != nil {
		t.Errorf("dc-3: %v", err)
	}
	promtoolCheck(t, "dc-1 after adds and refusals", s1)
	promtoolCheck(t, "dc-2 after the failover", after)
}

// TestMetricsDocAlerts checks that the example alerts of docs/metrics.md
// are valid Prometheus rules.
func TestMetricsDocAlerts(t *testing.T) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus; CI installs it)")
	}
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "```yaml\n")
	if len(blocks) < 3 {
		t.Fatalf("docs/metrics.md has no second YAML block (the alerts)")
	}
	rules := strings.SplitN(blocks[2], "```", 2)[0]
	f := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(path, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the alerts of docs/metrics.md: %v\n%s", err, out)
	}
}
