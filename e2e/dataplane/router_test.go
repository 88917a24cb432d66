package dataplane

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// routerKind is a BGP router the BGP tests run against: Debian's BIRD 2 or
// Debian's FRR 8 (bgpd, bfdd and zebra), each with its configuration from
// docs/dataplane.md as written.
type routerKind string

const (
	birdRouter routerKind = "bird"
	frrRouter  routerKind = "frr"
)

// routerKinds are every router, in the order the tests run them.
var routerKinds = []routerKind{birdRouter, frrRouter}

// bins are the programs the router needs.
func (k routerKind) bins() []string {
	if k == frrRouter {
		return []string{"/usr/lib/frr/bgpd", "/usr/lib/frr/bfdd", "/usr/lib/frr/zebra", "vtysh"}
	}
	return []string{"bird"}
}

// forEachRouter runs f as a subtest per router kind, skipping the kinds
// whose programs are missing.
func forEachRouter(t *testing.T, f func(t *testing.T, k routerKind)) {
	for _, k := range routerKinds {
		t.Run(string(k), func(t *testing.T) {
			need(t, k.bins()...)
			f(t, k)
		})
	}
}

// router is a BGP router in a namespace, as the tests read it.
type router interface {
	// paths returns the paths of a host prefix (10.0.0.1/32 or
	// 2001:db8::1/128), the best one marked.
	paths(prefix string) ([]bgpPath, error)
	// established reports whether the session with neighbor (an address)
	// is Established.
	established(neighbor string) (bool, error)
	// bfd returns the state of the router's BFD session with neighbor
	// ("up", "down", "init"; "" when there is none).
	bfd(neighbor string) (string, error)
	// count returns how many IPv4 networks the router's table holds.
	count() (int, error)
}

// docConfig returns the configuration marked `<!-- config: name -->` in
// docs/dataplane.md: the fenced block after the marker, as written.
func docConfig(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/dataplane.md")
	if err != nil {
		t.Fatal(err)
	}
	marker := "<!-- config: " + name + " -->"
	i := bytes.Index(b, []byte(marker))
	if i < 0 {
		t.Fatalf("docs/dataplane.md has no %s", marker)
	}
	rest := string(b[i+len(marker):])
	open := strings.Index(rest, "```")
	if open < 0 {
		t.Fatalf("docs/dataplane.md: no code block after %s", marker)
	}
	rest = rest[open+3:]
	rest = rest[strings.Index(rest, "\n")+1:] // the info string
	end := strings.Index(rest, "```")
	if end < 0 {
		t.Fatalf("docs/dataplane.md: the code block after %s does not end", marker)
	}
	return rest[:end]
}

// startRouter starts the router of kind in ns with its configuration from
// docs/dataplane.md.
func startRouter(t testing.TB, k routerKind, ns string) router {
	t.Helper()
	if k == frrRouter {
		return startFRR(t, ns, docConfig(t, "frr.conf"))
	}
	return startBIRD(t, ns, docConfig(t, "bird.conf"))
}

// birdRouterOf adapts birdClient to router.
type birdRouterOf struct{ *birdClient }

func (b birdRouterOf) established(neighbor string) (bool, error) {
	return b.birdClient.established(birdProto(neighbor))
}

// birdProto is the BIRD protocol name of a neighbor in the documented
// config: dcI for 10.0.I.2, dcI_v6 for 2001:db8:I::2.
func birdProto(neighbor string) string {
	var i int
	if _, err := fmt.Sscanf(neighbor, "10.0.%d.2", &i); err == nil {
		return fmt.Sprintf("dc%d", i)
	}
	if _, err := fmt.Sscanf(neighbor, "2001:db8:%d::2", &i); err == nil {
		return fmt.Sprintf("dc%d_v6", i)
	}
	return neighbor
}

func (b birdRouterOf) bfd(neighbor string) (string, error) {
	lines, err := b.cmd("show bfd sessions")
	if err != nil {
		return "", err
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == neighbor {
			return strings.ToLower(f[2]), nil
		}
	}
	return "", nil
}

// frr is FRR's bgpd, bfdd and zebra in a namespace, read through their
// vty sockets (what vtysh does).
type frr struct {
	t   testing.TB
	ns  string
	dir string // /var/run/frr/<ns>
}

// startFRR runs zebra, bfdd and bgpd in the foreground in ns (pathspace
// ns, so that their sockets are /var/run/frr/<ns>/), waits until each
// answers on its vty socket, and applies conf with vtysh -f, as
// `vtysh -b` applies /etc/frr/frr.conf at boot.
func startFRR(t testing.TB, ns, conf string) *frr {
	t.Helper()
	f := &frr{t: t, ns: ns, dir: "/var/run/frr/" + ns}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(f.dir) })
	sh(t, "chown", "frr:frr", f.dir)
	tmp, err := os.MkdirTemp("", "vipsmart-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	empty := filepath.Join(tmp, "empty.conf")
	confPath := filepath.Join(tmp, "frr.conf")
	for p, s := range map[string]string{empty: "", confPath: conf} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Chmod(tmp, 0o755)
	for _, d := range []string{"zebra", "bfdd", "bgpd"} {
		startProc(t, ns, "frr "+d, "/usr/lib/frr/"+d, "-N", ns, "-f", empty, "-i", filepath.Join(f.dir, d+".pid"), "--log", "stdout")
		eventually(t, 20*time.Second, "FRR "+d+" answers on its vty socket", func() error {
			_, err := f.vty(d, "show version")
			return err
		})
	}
	out, err := exec.Command("vtysh", "-N", ns, "-f", confPath).CombinedOutput()
	if err != nil {
		t.Fatalf("vtysh -f frr.conf: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "%") && !strings.Contains(l, "vtysh.conf") {
			t.Fatalf("vtysh -f frr.conf refused a line: %s\n%s", l, out)
		}
	}
	return f
}

// vty runs one command on daemon d through its vty socket: the command
// and a NUL go in; the answer ends with three NULs and a status byte (0:
// success).
func (f *frr) vty(d, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", filepath.Join(f.dir, d+".vty"), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	// vtysh enters enable mode first: some show commands (bfdd's) live
	// there only.
	var out string
	for _, line := range []string{"enable", cmd} {
		if _, err := c.Write(append([]byte(line), 0)); err != nil {
			return "", err
		}
		var buf bytes.Buffer
		for {
			b, err := r.ReadByte()
			if err != nil {
				return buf.String(), fmt.Errorf("%s %q: %w", d, line, err)
			}
			buf.WriteByte(b)
			if n := buf.Len(); n >= 4 && bytes.Equal(buf.Bytes()[n-4:n-1], []byte{0, 0, 0}) {
				out = string(buf.Bytes()[:n-4])
				if status := buf.Bytes()[n-1]; status != 0 {
					return out, fmt.Errorf("%s %q: status %d: %s", d, line, status, out)
				}
				break
			}
		}
	}
	return out, nil
}

// frrPath is the part of `show bgp ... json` the tests read.
type frrPath struct {
	ASPath struct {
		String string `json:"string"`
	} `json:"aspath"`
	BestPath *struct {
		Overall bool `json:"overall"`
	} `json:"bestpath"`
	Nexthops []struct {
		IP    string `json:"ip"`
		Scope string `json:"scope"`
	} `json:"nexthops"`
	Peer struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
}

func (f *frr) paths(prefix string) ([]bgpPath, error) {
	fam := "ipv4"
	if strings.Contains(prefix, ":") {
		fam = "ipv6"
	}
	out, err := f.vty("bgpd", "show bgp "+fam+" unicast "+prefix+" json")
	if err != nil {
		return nil, err
	}
	var r struct {
		Paths []frrPath `json:"paths"`
	}
	if strings.TrimSpace(out) == "{}" || strings.TrimSpace(out) == "" {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("show bgp %s: %w: %s", prefix, err, out)
	}
	var ps []bgpPath
	for _, p := range r.Paths {
		bp := bgpPath{proto: p.Peer.PeerID, best: p.BestPath != nil && p.BestPath.Overall, asPath: strings.Fields(p.ASPath.String)}
		for _, nh := range p.Nexthops {
			if nh.Scope != "link-local" {
				bp.via = nh.IP
				break
			}
		}
		ps = append(ps, bp)
	}
	return ps, nil
}

func (f *frr) neighbor(neighbor string) (map[string]any, error) {
	out, err := f.vty("bgpd", "show bgp neighbors "+neighbor+" json")
	if err != nil {
		return nil, err
	}
	var r map[string]map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("show bgp neighbors %s: %w: %s", neighbor, err, out)
	}
	return r[neighbor], nil
}

func (f *frr) established(neighbor string) (bool, error) {
	n, err := f.neighbor(neighbor)
	if err != nil {
		return false, err
	}
	return n["bgpState"] == "Established", nil
}

func (f *frr) bfd(neighbor string) (string, error) {
	out, err := f.vty("bfdd", "show bfd peers json")
	if err != nil {
		return "", err
	}
	var ps []struct {
		Peer   string `json:"peer"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		return "", fmt.Errorf("show bfd peers: %w: %s", err, out)
	}
	for _, p := range ps {
		if p.Peer == neighbor {
			return p.Status, nil
		}
	}
	return "", nil
}

// count returns the prefixes FRR accepted from its IPv4 peers (with one
// DC, the networks of its table; ribCount also counts the table's inner
// nodes).
func (f *frr) count() (int, error) {
	out, err := f.vty("bgpd", "show bgp ipv4 unicast summary json")
	if err != nil {
		return 0, err
	}
	var r struct {
		Peers map[string]struct {
			PfxRcd int `json:"pfxRcd"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return 0, fmt.Errorf("show bgp summary: %w: %s", err, out)
	}
	n := 0
	for _, p := range r.Peers {
		n += p.PfxRcd
	}
	return n, nil
}
