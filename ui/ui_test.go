package ui

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// fakeService answers the reads from fields a test changes.
type fakeService struct {
	vipsmart.Service // the writes are never called: panics if they are
	mu               sync.Mutex
	dcs              []vipsmart.DCInfo
	gips             []vipsmart.GIPInfo
	events           []vipsmart.Event
	down             bool
}

func (f *fakeService) Status(ctx context.Context) (vipsmart.StatusInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return vipsmart.StatusInfo{}, errors.New("cannot reach the vipsmart daemon")
	}
	return vipsmart.StatusInfo{Name: "dc-2", Status: vipsmart.StatusMember, Epoch: 3, Announced: []vipsmart.Announced{}}, nil
}
func (f *fakeService) ListDCs(ctx context.Context) ([]vipsmart.DCInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]vipsmart.DCInfo(nil), f.dcs...), nil
}
func (f *fakeService) ListVIPs(ctx context.Context) ([]vipsmart.VIPInfo, error) { return nil, nil }
func (f *fakeService) ListGIPs(ctx context.Context) ([]vipsmart.GIPInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]vipsmart.GIPInfo(nil), f.gips...), nil
}
func (f *fakeService) Events(ctx context.Context, after uint64, limit int) ([]vipsmart.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []vipsmart.Event
	for _, e := range f.events {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeService) set(dc1Reachable bool, active string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dcs = []vipsmart.DCInfo{
		{DC: vipsmart.DC{Name: "dc-1"}, Reachable: dc1Reachable, Status: vipsmart.StatusMember},
		{DC: vipsmart.DC{Name: "dc-2"}, Self: true, Reachable: true, Status: vipsmart.StatusMember},
	}
	f.gips = []vipsmart.GIPInfo{{GIP: vipsmart.GIP{Name: "www", Address: netip.MustParseAddr("203.0.113.10"), Mode: vipsmart.ModeFailover, Preempt: true,
		Placements: []vipsmart.Placement{{DC: "dc-2", Priority: 100}, {DC: "dc-1", Priority: 200}}}, Active: []string{active}}}
	f.events = append(f.events, vipsmart.Event{Seq: uint64(len(f.events) + 1), Kind: "gip", Message: "<b>" + active + "</b> & co"})
}

// get fetches a snapshot with the given query.
func get(t *testing.T, base, query string) Snapshot {
	t.Helper()
	resp, err := http.Get(base + "/ui/api/snapshot" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var s Snapshot
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("snapshot is not JSON: %v\n%s", err, body)
	}
	if !strings.Contains(string(body), "\"version\"") {
		t.Fatalf("no version: %s", body)
	}
	return s
}

func TestSnapshotExplainsPlacements(t *testing.T) {
	f := &fakeService{}
	f.set(false, "dc-2")
	srv := httptest.NewServer(Handler(f, Options{Server: "unix:///run/vipsmart/vipsmart.sock", Interval: 10 * time.Millisecond}))
	defer srv.Close()
	s := get(t, srv.URL, "")
	if s.Status == nil || s.Status.Name != "dc-2" || len(s.DCs) != 2 || len(s.GIPs) != 1 || len(s.Events) != 1 {
		t.Fatalf("snapshot: %+v", s)
	}
	g := s.GIPs[0]
	// Best first; dc-1 unreachable in the view, so unhealthy.
	if len(g.States) != 2 || g.States[0].DC != "dc-1" || g.States[0].State != "unhealthy" || g.States[0].Why != "unhealthy: dc-1 unreachable" ||
		g.States[1].State != "active" {
		t.Errorf("placement states: %+v", g.States)
	}
	if s.Events[0].Message != "<b>dc-2</b> & co" {
		t.Errorf("event message: %q", s.Events[0].Message)
	}
	// Only the events after the one the page has.
	if again := get(t, srv.URL, "?after=1"); len(again.Events) != 0 {
		t.Errorf("events after 1: %+v", again.Events)
	}

	f.mu.Lock()
	f.down = true
	f.mu.Unlock()
	s = get(t, srv.URL, "?wait="+strconv.FormatUint(s.Version, 10))
	if !strings.Contains(s.Error, "cannot reach") || s.Server != "unix:///run/vipsmart/vipsmart.sock" {
		t.Errorf("snapshot of an unreachable daemon: %+v", s)
	}
}

func TestAssetsEmbeddedAndLockedToOrigin(t *testing.T) {
	srv := httptest.NewServer(Handler(&fakeService{}, Options{}))
	defer srv.Close()
	for path, want := range map[string]string{"/ui/": "<svg id=\"fed-svg\"", "/ui/app.js": "api/snapshot", "/ui/style.css": "--ok:"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %s, body lacks %q", path, resp.Status, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
		// Nothing from another origin (the SVG namespace is a name, not a
		// fetch).
		if strings.Contains(strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", ""), "://") {
			t.Errorf("GET %s refers to another origin", path)
		}
	}
}

// TestLongPollWaitsForChange: a page that has the latest version waits;
// a change answers it at once with the new state.
func TestLongPollWaitsForChange(t *testing.T) {
	f := &fakeService{}
	f.set(true, "dc-1")
	srv := httptest.NewServer(Handler(f, Options{Interval: 20 * time.Millisecond}))
	defer srv.Close()
	first := get(t, srv.URL, "")
	if len(first.GIPs) != 1 || first.GIPs[0].Active[0] != "dc-1" {
		t.Fatalf("first snapshot: %+v", first.GIPs)
	}
	got := make(chan Snapshot, 1)
	start := time.Now()
	go func() { got <- get(t, srv.URL, "?after=1&wait="+strconv.FormatUint(first.Version, 10)) }()
	select {
	case s := <-got:
		t.Fatalf("the long poll answered at once without a change: %+v", s)
	case <-time.After(300 * time.Millisecond):
	}
	f.set(false, "dc-2")
	select {
	case s := <-got:
		if s.Version <= first.Version || s.GIPs[0].Active[0] != "dc-2" || s.DCs[0].Reachable || len(s.Events) != 1 || s.Events[0].Seq != 2 {
			t.Fatalf("answer to the long poll: version %d, %+v %+v events %+v", s.Version, s.GIPs, s.DCs, s.Events)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the long poll did not answer within 5s of a change (waited since %s)", time.Since(start))
	}
}
