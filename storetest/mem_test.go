package storetest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/storetest"
)

// memState is what a memStore keeps; memDirs stands in for the disk.
type memState struct {
	vips    map[string]vipsmart.VIP
	record  []byte
	gips    map[string]vipsmart.GIP
	events  []vipsmart.Event
	lastSeq uint64
}

var (
	memDirsMu sync.Mutex
	memDirs   = map[string]*memState{}
)

// memStore is a minimal in-memory Store: it shows the suite does not depend
// on bolt. bug, if set, breaks one invariant (for checking that the suite
// catches it).
type memStore struct {
	mu        sync.Mutex
	st        *memState
	maxEvents int
	closed    bool
	bug       string
}

func newMem(maxEvents int) *memStore {
	return &memStore{maxEvents: maxEvents, st: &memState{vips: map[string]vipsmart.VIP{}, gips: map[string]vipsmart.GIP{}}}
}

func (s *memStore) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil && s.bug != "ignore-ctx" {
		return err
	}
	s.mu.Lock()
	if s.closed && s.bug != "ignore-close" {
		s.mu.Unlock()
		return errors.New("closed")
	}
	return nil
}

func cloneVIP(v vipsmart.VIP) vipsmart.VIP {
	if v.Check != nil {
		c := *v.Check
		v.Check = &c
	}
	return v
}

func cloneGIP(g vipsmart.GIP) vipsmart.GIP {
	g.Placements = slices.Clone(g.Placements)
	return g
}

func (s *memStore) ListVIPs(ctx context.Context) ([]vipsmart.VIP, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var vs []vipsmart.VIP
	for _, v := range s.st.vips {
		vs = append(vs, cloneVIP(v))
	}
	if s.bug != "unsorted" {
		slices.SortFunc(vs, func(a, b vipsmart.VIP) int { return strings.Compare(a.Name, b.Name) })
	}
	return vs, nil
}

func (s *memStore) GetVIP(ctx context.Context, name string) (vipsmart.VIP, error) {
	if err := s.lock(ctx); err != nil {
		return vipsmart.VIP{}, err
	}
	defer s.mu.Unlock()
	v, ok := s.st.vips[name]
	if !ok {
		if s.bug == "plain-notfound" {
			return v, errors.New("not found")
		}
		return v, vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "VIP %s does not exist", name)
	}
	if s.bug == "shared-vip" {
		return v, nil
	}
	return cloneVIP(v), nil
}

func (s *memStore) CreateVIP(ctx context.Context, v vipsmart.VIP) error {
	if s.bug == "racy-create" {
		if err := s.lock(ctx); err != nil {
			return err
		}
		_, dup := s.st.vips[v.Name]
		for _, o := range s.st.vips {
			dup = dup || o.Address == v.Address
		}
		s.mu.Unlock()
		if dup {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "name", "conflict")
		}
		time.Sleep(time.Millisecond) // widen the check-then-write race
		s.mu.Lock()
		defer s.mu.Unlock()
		s.st.vips[v.Name] = cloneVIP(v)
		return nil
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.st.vips[v.Name]; ok {
		return vipsmart.Errorf(vipsmart.ECONFLICT, "name", "VIP name %s is already in use", v.Name)
	}
	if s.bug != "no-addr-check" {
		for _, o := range s.st.vips {
			if o.Address == v.Address {
				return vipsmart.Errorf(vipsmart.ECONFLICT, "address", "address %s is already used by VIP %s", v.Address, o.Name)
			}
		}
	}
	if s.bug == "drop-check" {
		v.Check = nil
	}
	s.st.vips[v.Name] = cloneVIP(v)
	return nil
}

func (s *memStore) DeleteVIP(ctx context.Context, name string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.st.vips[name]; !ok && s.bug != "delete-missing-ok" {
		return vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "VIP %s does not exist", name)
	}
	delete(s.st.vips, name)
	return nil
}

func (s *memStore) LoadFederation(ctx context.Context) ([]byte, []vipsmart.GIP, error) {
	if err := s.lock(ctx); err != nil {
		return nil, nil, err
	}
	defer s.mu.Unlock()
	var gs []vipsmart.GIP
	for _, g := range s.st.gips {
		gs = append(gs, cloneGIP(g))
	}
	slices.SortFunc(gs, func(a, b vipsmart.GIP) int { return strings.Compare(a.Name, b.Name) })
	if s.bug == "shared-record" {
		return s.st.record, gs, nil
	}
	return bytes.Clone(s.st.record), gs, nil
}

func (s *memStore) SaveFederation(ctx context.Context, u vipsmart.FederationUpdate) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.st.record = bytes.Clone(u.Record)
	if len(s.st.record) == 0 {
		s.st.record = nil
	}
	if u.ReplaceGIPs && s.bug != "replace-merges" {
		s.st.gips = map[string]vipsmart.GIP{}
	}
	for _, g := range u.PutGIPs {
		s.st.gips[g.Name] = cloneGIP(g)
	}
	if !u.ReplaceGIPs && s.bug != "no-delete" {
		for _, n := range u.DeleteGIPs {
			delete(s.st.gips, n)
		}
	}
	return nil
}

func (s *memStore) AppendEvents(ctx context.Context, es []vipsmart.Event) ([]vipsmart.Event, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := slices.Clone(es)
	for i := range out {
		s.st.lastSeq++
		if s.bug == "seq-from-len" {
			s.st.lastSeq = uint64(len(s.st.events) + 1)
		}
		out[i].Seq = s.st.lastSeq
		s.st.events = append(s.st.events, out[i])
	}
	if n := len(s.st.events); n > s.maxEvents && s.bug != "no-bound" {
		if s.bug == "bound-drops-newest" {
			s.st.events = s.st.events[:s.maxEvents]
		} else {
			s.st.events = slices.Clone(s.st.events[n-s.maxEvents:])
		}
	}
	return out, nil
}

func (s *memStore) ListEvents(ctx context.Context, after uint64, limit int) ([]vipsmart.Event, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []vipsmart.Event
	for _, e := range s.st.events {
		if (e.Seq > after || s.bug == "after-inclusive" && e.Seq == after) && (limit <= 0 || len(out) < limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func TestMemStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, maxEvents int) vipsmart.Store { return newMem(maxEvents) })
}

func TestMemStoreReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T, dir string, maxEvents int) vipsmart.Store {
		memDirsMu.Lock()
		defer memDirsMu.Unlock()
		s := newMem(maxEvents)
		if st, ok := memDirs[dir]; ok {
			s.st = st
		} else {
			memDirs[dir] = s.st
		}
		return s
	})
}

// mutants lists the bugs memStore can have; the suite must catch each.
var mutants = []string{
	"ignore-ctx", "ignore-close", "unsorted", "plain-notfound", "shared-vip",
	"racy-create", "no-addr-check", "drop-check", "delete-missing-ok",
	"shared-record", "replace-merges", "no-delete", "seq-from-len", "no-bound",
	"bound-drops-newest", "after-inclusive",
}

const mutantEnv = "STORETEST_MUTANT"

// TestMutantChild runs the suite against a memStore with the bug named by
// $STORETEST_MUTANT; TestMutantsFail runs it in a child process.
func TestMutantChild(t *testing.T) {
	bug := os.Getenv(mutantEnv)
	if bug == "" {
		t.Skip("run by TestMutantsFail")
	}
	open := func(t *testing.T, maxEvents int) vipsmart.Store {
		s := newMem(maxEvents)
		s.bug = bug
		return s
	}
	storetest.Run(t, open)
}

// TestMutantsFail checks that the suite can fail: every bug in mutants
// makes it fail.
func TestMutantsFail(t *testing.T) {
	if os.Getenv(mutantEnv) != "" {
		t.Skip("in a child")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	for _, bug := range mutants {
		t.Run(bug, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutantChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), mutantEnv+"="+bug)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store with bug %s:\n%s", bug, out)
			}
			var failed []string
			for _, line := range strings.Split(string(out), "\n") {
				if f, ok := strings.CutPrefix(strings.TrimSpace(line), "--- FAIL: TestMutantChild/"); ok {
					failed = append(failed, strings.Fields(f)[0])
				}
			}
			if len(failed) == 0 {
				t.Fatalf("bug %s: the child failed without a failing subtest:\n%s", bug, out)
			}
			t.Logf("bug %s caught by %s", bug, strings.Join(failed, ", "))
		})
	}
}
