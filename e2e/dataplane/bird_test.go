package dataplane

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startBIRD runs bird in the foreground in ns with conf (the documented
// config, as written; DEBUG_BIRD adds protocol debugging). The control
// socket is in a temp dir (path sockets work across network namespaces).
func startBIRD(t testing.TB, ns, conf string) birdRouterOf {
	t.Helper()
	dir := t.TempDir()
	if os.Getenv("DEBUG_BIRD") != "" {
		conf = "log stderr all;\ndebug protocols { states, events };\n" + conf
	}
	path := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "bird.ctl")
	p := startProc(t, ns, "bird", "bird", "-f", "-c", path, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	if os.Getenv("DEBUG_BIRD") != "" {
		t.Cleanup(func() { t.Logf("bird:\n%s", p.logs.String()) })
	}
	var b *birdClient
	eventually(t, 10*time.Second, "BIRD answers on its control socket", func() error {
		if p.exited() {
			t.Fatalf("bird exited:\n%s", p.logs.String())
		}
		var err error
		b, err = dialBIRD(sock)
		return err
	})
	t.Cleanup(func() { b.conn.Close() })
	return birdRouterOf{b}
}

// birdClient speaks BIRD's control-socket protocol (what birdc does): a
// command per line; each reply line is "CODE-text" (more follow), " text"
// (a continuation of the previous code) or "CODE text" (the last).
type birdClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialBIRD(sock string) (*birdClient, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	b := &birdClient{conn: c, r: bufio.NewReader(c)}
	if _, err := b.read(); err != nil { // the "0001 BIRD x.y ready." banner
		c.Close()
		return nil, err
	}
	return b, nil
}

func (b *birdClient) read() ([]string, error) {
	var out []string
	b.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := b.r.ReadString('\n')
		if err != nil {
			return out, err
		}
		line = strings.TrimRight(line, "\n")
		if strings.HasPrefix(line, " ") {
			out = append(out, line[1:])
			continue
		}
		if len(line) < 5 {
			return out, fmt.Errorf("bad BIRD reply line %q", line)
		}
		code, err := strconv.Atoi(line[:4])
		if err != nil {
			return out, fmt.Errorf("bad BIRD reply line %q", line)
		}
		if code >= 8000 {
			return out, fmt.Errorf("BIRD: %s", line[5:])
		}
		if line[4] == ' ' {
			if code != 0 {
				out = append(out, line[5:])
			}
			return out, nil
		}
		out = append(out, line[5:])
	}
}

// cmd runs one command and returns the reply lines without their codes,
// as birdc prints them.
func (b *birdClient) cmd(c string) ([]string, error) {
	if _, err := b.conn.Write([]byte(c + "\n")); err != nil {
		return nil, err
	}
	return b.read()
}

// bgpPath is one route of a prefix in BIRD's table.
type bgpPath struct {
	proto  string // the BGP protocol (session) it came from
	best   bool
	via    string // next hop
	asPath []string
}

func (p bgpPath) String() string {
	best := ""
	if p.best {
		best = "*"
	}
	return fmt.Sprintf("%s%s via %s [%s]", best, p.proto, p.via, strings.Join(p.asPath, " "))
}

// parseRoutes parses `show route all` output into the paths of each prefix.
func parseRoutes(lines []string) map[string][]bgpPath {
	out := map[string][]bgpPath{}
	prefix := ""
	var cur *bgpPath
	flush := func() {
		if cur != nil {
			out[prefix] = append(out[prefix], *cur)
			cur = nil
		}
	}
	for _, l := range lines {
		if i := strings.Index(l, "unicast ["); i >= 0 && !strings.HasPrefix(l, "\t") {
			flush()
			if f := strings.Fields(l[:i]); len(f) > 0 {
				prefix = f[0]
			}
			rest := l[i+len("unicast ["):]
			cur = &bgpPath{proto: strings.Fields(rest)[0], best: strings.Contains(rest, "] * ")}
			continue
		}
		if cur == nil {
			continue
		}
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "via "):
			cur.via = strings.Fields(t)[1]
		case strings.HasPrefix(t, "BGP.as_path:"):
			cur.asPath = strings.Fields(strings.TrimPrefix(t, "BGP.as_path:"))
		}
	}
	flush()
	return out
}

// paths returns BIRD's paths for prefix (a host route, e.g. 198.51.100.1/32).
func (b *birdClient) paths(prefix string) ([]bgpPath, error) {
	lines, err := b.cmd("show route for " + prefix + " all")
	if err != nil && strings.Contains(err.Error(), "Network not found") {
		return nil, nil // no route at all
	}
	if err != nil {
		return nil, err
	}
	ps := parseRoutes(lines)[prefix]
	return ps, nil
}

// best returns the best path of prefix (ok false when there is none).
func (b *birdClient) best(prefix string) (bgpPath, []bgpPath, bool, error) {
	ps, err := b.paths(prefix)
	if err != nil {
		return bgpPath{}, nil, false, err
	}
	for _, p := range ps {
		if p.best {
			return p, ps, true, nil
		}
	}
	return bgpPath{}, ps, false, nil
}

var countRE = regexp.MustCompile(`(\d+) of (\d+) routes for (\d+) networks in table master4`)

// count returns how many networks BIRD's IPv4 table (master4) holds.
func (b *birdClient) count() (int, error) {
	lines, err := b.cmd("show route count")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range lines {
		if m := countRE.FindStringSubmatch(l); m != nil {
			v, _ := strconv.Atoi(m[3])
			n += v
		}
	}
	return n, nil
}

// established reports whether BGP protocol name is Established.
func (b *birdClient) established(name string) (bool, error) {
	lines, err := b.cmd("show protocols " + name)
	if err != nil {
		return false, err
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == name {
			return strings.Contains(l, "Established"), nil
		}
	}
	return false, fmt.Errorf("no protocol %s in %q", name, lines)
}
