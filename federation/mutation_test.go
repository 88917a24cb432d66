package federation

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Mutation testing of the protocol: each mutant is one small change to
// the lock, epoch, doubt, decision-apply, state-adoption, persistence or
// expiry logic of this package. TestMutants copies the module to a
// temporary directory, applies one mutant, and runs `go test ./federation`
// there (the scenario tests first, then the default simulation): the
// mutant is killed when a test fails. Run it with
//
//	go test ./federation -run TestMutants -mutate -v -timeout 3h
//
// (-mutate.only REGEXP picks mutants by name). It prints the table kept
// in docs/federation.md.
var (
	mutate      = flag.Bool("mutate", false, "run the mutation tests (slow: each mutant runs the package's tests)")
	mutateOnly  = flag.String("mutate.only", "", "run only the mutants whose name matches this regexp")
	mutateSim   = flag.Bool("mutate.sim", false, "run only the simulation on each mutant (does the simulation find it by itself?)")
	mutateBuild = flag.Bool("mutate.build", false, "only check that every mutant applies and builds")
)

type mutant struct {
	name     string
	file     string // in federation/
	from, to string // from must occur exactly once in file
	breaks   string
}

// equivalent argues, for the mutants no test can kill, why they change
// nothing observable; they are reported as such if they survive.
var equivalent = map[string]string{
	"doubts-outlive-epoch":  "every caller of setEpoch drops the doubts itself as well: applyDecision and adopt clear them, and the fencing paths go through leaveFed, which clears them",
	"commit-after-deadline": "every call that can reach commitOp (Step, Propose, Tick) first runs expire(now), which fails the operation once its own lock's deadline passed: the check in commitOp never fires",
}

var mutants = []mutant{
	{"apply-below-floor", "step.go",
		"n.h.Epoch != d.FromEpoch || d.ToEpoch < n.floor() {", "n.h.Epoch != d.FromEpoch {",
		"a member that doubts a forced removal still applies a decision below that removal's epoch (the removed DC's, finding 1)"},
	{"adopt-below-floor", "step.go",
		"if st.Epoch < n.floor() {", "if false {",
		"a member that doubts a forced removal still adopts a state below that removal's epoch"},
	{"grant-removed-dc", "node.go",
		"if d.Change.removes(coord) {", "if false {",
		"a member that doubts a forced removal still grants the removed DC's locks"},
	{"vote-while-in-doubt", "node.go",
		"if !c.forced() || !c.removes(d.Coordinator) {", "if false {",
		"a member that doubts a forced removal votes for any operation, not only a forced removal of its coordinator"},
	{"epoch-rule-own-doubts", "coord.go",
		"for _, d := range append(slices.Clone(n.h.Doubts), o.doubts...) {\n\t\tif d.FedID == o.fedID && d.Epoch == o.from && o.change.removes(d.Coordinator) {",
		"for _, d := range slices.Clone(n.h.Doubts) {\n\t\tif d.FedID == o.fedID && d.Epoch == o.from && o.change.removes(d.Coordinator) {",
		"the epoch rule ignores the participants' doubts (only the coordinator's own)"},
	{"epoch-rule-no-skip", "coord.go",
		"to = max(to, d.ToEpoch+1)", "to = max(to, d.ToEpoch)",
		"the epoch rule commits at the doubted operation's epoch instead of past it"},
	{"doubts-not-persisted", "node.go",
		"h.SavedAt = n.now", "h.SavedAt, h.Doubts = n.now, nil",
		"doubts are kept in memory only (a restart forgets them)"},
	{"doubts-capped", "node.go",
		"Change: slimChange(l.Change), Seq: l.Seq})", "Change: slimChange(l.Change), Seq: l.Seq})\n\t\tif len(n.h.Doubts) > 1 {\n\t\t\tn.h.Doubts = n.h.Doubts[len(n.h.Doubts)-1:]\n\t\t}",
		"the doubt list keeps only the newest doubt (finding 2, with a cap of 1)"},
	{"no-doubt-at-expiry", "node.go",
		"if n.h.Status != vipsmart.StatusInvited {\n\t\t// A lock granted", "if false {\n\t\t// A lock granted",
		"a lock that expires without commit or abort leaves no doubt"},
	{"doubts-outlive-epoch", "node.go",
		"\t\tn.h.Epoch = e\n\t\tn.h.Doubts = nil\n", "\t\tn.h.Epoch = e\n",
		"doubts are kept after the epoch they are about (the record grows without bound)"},
	{"adopt-while-locked", "step.go",
		"if l := n.h.Lock; l != nil && !(st.Last != nil && st.Last.OpID == l.OpID && !l.Own) {", "if false {",
		"a newer state is adopted while another operation's lock is held"},
	{"apply-while-locked", "step.go",
		"return (l == nil || (l.OpID == d.OpID && !l.Own)) && n.canApplyBatch(d)", "return (l == nil || l != nil) && n.canApplyBatch(d)",
		"a decision is applied while another operation's lock is held"},
	{"commit-after-deadline", "coord.go",
		"if !now.Before(n.h.Lock.Deadline) {\n\t\tn.failOp", "if false {\n\t\tn.failOp",
		"the coordinator commits after its own lock expired"},
	{"lock-while-locked", "step.go",
		"case n.h.Lock != nil:\n\t\tn.refuse(m, MsgLockResp", "case false:\n\t\tn.refuse(m, MsgLockResp",
		"a member grants a lock while it holds another one"},
	{"lock-stale-epoch", "step.go",
		"case m.Epoch < n.h.Epoch:", "case false:",
		"a member grants a lock for an epoch it has passed"},
	{"release-committed-lock", "step.go",
		"&& (m.Committed < seq || m.SenderEpoch < to)", "",
		"a lock is released (and a doubt dropped) when the coordinator is heard past the operation, even if it committed it"},
	{"committed-ignored", "step.go",
		"(m.Committed < seq || m.SenderEpoch < to)", "m.SenderEpoch < to",
		"a doubt (or lock) of an operation that ended without committing is kept when the coordinator's epoch rose since (it was fenced out)"},
	{"late-lock-granted", "step.go",
		"case n.peers[m.From.Name].ended(m.Seq):\n\t\tn.refuseLate(m, MsgLockResp", "case false:\n\t\tn.refuseLate(m, MsgLockResp",
		"a late lock of an operation known to have ended is granted (issue 15 finding 5)"},
	{"aborts-sent-once", "coord.go",
		"for _, a := range n.h.Aborts {\n\t\tn.sendAborts(a)\n\t}", "",
		"aborts are sent once (finding 4)"},
	{"no-majority", "coord.go",
		"if 2*stay <= len(n.h.Members) {", "if false {",
		"a forced removal proceeds with half of the members or fewer"},
	{"no-quorum", "coord.go",
		"if 2*in <= len(q) {", "if false {",
		"the quorum left by a forced removal of several DCs is not checked"},
	{"no-probe", "coord.go",
		"if o.probes = n.probeTargets(); len(o.probes) > 0 {", "if o.probes = nil; false {",
		"a forced removal does not ask the candidate of an add in doubt (finding 3)"},
	{"no-relock", "coord.go",
		"n.enterPhase(now, phRelock)\n\t\t\treturn", "n.afterLocks(now)\n\t\t\treturn",
		"a raised forced-removal epoch is not told to the participants"},
	{"fence-keeps-epoch", "step.go",
		"n.setEpoch(st.Epoch) // it has seen that epoch", "// it has seen that epoch",
		"a fenced DC keeps its old epoch"},
	{"no-tomb-fence", "step.go",
		"return d.Tomb && n.op == nil", "return false && n.op == nil",
		"a DC behind a tombstone of its federation neither fences itself nor catches up from the members it names"},
	{"refounding-ignores-floor", "step.go",
		"d.Coordinator != n.h.Self.Name && n.h.Epoch < d.ToEpoch && d.FromEpoch >= n.floor()", "d.Coordinator != n.h.Self.Name && n.h.Epoch < d.ToEpoch",
		"a re-founding below the floor of a doubted forced removal fences the DC"},
	{"refounding-fences-higher-line", "step.go",
		"d.Coordinator != n.h.Self.Name && n.h.Epoch < d.ToEpoch && d.FromEpoch >= n.floor()", "d.Coordinator != n.h.Self.Name && d.FromEpoch >= n.floor()",
		"a re-founding fences a DC that is at or above its target (on a line that went past the state it came from)"},
	{"floor-ignores-held-lock", "node.go",
		"if l := n.h.Lock; l != nil && !l.Own && l.Change.forced() && l.FedID == n.h.FedID && l.Epoch == n.h.Epoch {", "if l := n.h.Lock; l != nil && false {",
		"a DC that holds a forced removal's lock has no floor until the lock expires"},
	{"no-deadline-rebase", "node.go",
		"if saved.IsZero() || !now.Before(saved) {", "if true {",
		"deadlines saved as wall-clock times stretch by a backward clock jump across a restart (issue 15 finding 6)"},
	{"no-expiry-at-start", "node.go",
		"\tn.expire(now)\n\treturn n, nil", "\treturn n, nil",
		"a deadline that passed while the daemon was down is not applied at start"},
	{"force-reachable", "coord.go",
		"if pr := n.peers[name]; pr != nil && now.Sub(pr.lastSeen) <= n.window() {", "if pr := n.peers[name]; pr != nil && false {",
		"a forced removal of a reachable DC is accepted"},
	{"decision-epoch-ignored", "step.go",
		"d.Seq > seq && d.FromEpoch < to", "d.Seq > seq",
		"a later decision of the coordinator ends a doubt (or releases a lock) even when it starts at or above the operation's target, which that operation may have reached"},
	{"known-seq-ignored", "coord.go",
		"if m.KnownSeq > n.h.Counter {", "if false {",
		"a coordinator whose operation count went back (restored store) keeps counting below what the others heard, and they refuse its operations as late"},
	{"renounced-state-adopted", "step.go",
		"if st.Last != nil && slices.Contains(n.h.Renounced, st.Last.OpID) {", "if false {",
		"a candidate that renounced an add adopts that add's state while invited by another operation of the same federation"},
	{"renounced-invite-accepted", "step.go",
		"case slices.Contains(n.h.Renounced, m.OpID):", "case false:",
		"a candidate that told a forced removal it will not join through an add accepts that add's invite"},
	{"nodes-of-every-member", "state.go",
		"if c.DC != nil && out[i].Name == c.DC.Name {\n\t\t\t\tout[i].Nodes", "if c.DC != nil {\n\t\t\t\tout[i].Nodes",
		"a SetNodes change gives every member the coordinator's node addresses"},
	{"nodes-of-another-dc", "nodes.go",
		"c.Kind != SetNodes || c.DC == nil || c.DC.Name == coord {", "true {",
		"a coordinator may set another DC's node addresses (the edge no longer checks whose they are)"},
	// The batch path (vipsmart apply, batch.go).
	{"batch-any-digest", "batch.go",
		"l.Change.Batch.full() && c.Batch != nil && l.Change.Batch.Digest == c.Batch.Digest {", "l.Change.Batch.full() && c.Batch != nil {",
		"a member applies a slim decision from the batch of the lock it holds whatever that batch's digest"},
	{"batch-apply-slim", "batch.go",
		"return d.Change.Kind != ApplyGIPs || n.withBatch(d.Change).Batch.full()", "return true",
		"a member applies a slim decision it holds no content for (it applies nothing instead of fetching the state)"},
	{"batch-deletes-dropped", "batch.go",
		"\tfor _, name := range b.Delete {\n\t\tif _, ok := gips[name]; ok {", "\tfor _, name := range b.Delete[:0] {\n\t\tif _, ok := gips[name]; ok {",
		"a batch's deletes are not applied"},
	{"batch-digest-unchecked", "batch.go",
		"if b.digest() != b.Digest {", "if false {",
		"a batch whose content does not match its digest is accepted"},
	{"batch-partition-unhashed", "batch.go",
		"if g.Partition == \"\" || g.Partition == vipsmart.PartitionAvailable {", "if true {",
		"the digest leaves the partition policy out (a batch changed there passes)"},
	{"batch-slim-lock", "step.go",
		"if m.Type == MsgLock && m.Change.Kind == ApplyGIPs && m.Change.Batch != nil && !m.Change.Batch.full() {", "if false {",
		"a lock whose batch is slim is granted without the member's checks"},
	{"batch-member-unchecked", "step.go",
		"case m.Change.Kind == ApplyGIPs && n.batchProblem(m.Change.Batch) != nil:", "case false:",
		"a member grants a lock whose batch it would refuse (placements on a non-member, an address twice, a VIP it lacks)"},
	{"batch-state-unbounded", "batch.go",
		"if after > MaxStateBytes && after > before {", "if false {",
		"a batch may take the federation's GIPs past what a prepare or a state answer carries"},
	{"batch-foreign-fields", "step.go",
		"if c.DC != nil || c.Name != \"\" || c.Force || len(c.Names) > 0 || c.GIP != nil || c.Founder != nil || c.NewFedID != \"\" {", "if false {",
		"an apply-gips change may carry fields of other kinds (new_fed_id re-founds the federation at its commit)"},
}

func TestMutants(t *testing.T) {
	if !*mutate {
		t.Skip("mutation testing is slow; run: go test ./federation -run TestMutants -mutate -v -timeout 3h")
	}
	only := regexp.MustCompile(*mutateOnly)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	killed, equiv := 0, 0
	for i, m := range mutants {
		if !only.MatchString(m.name) {
			continue
		}
		start := time.Now()
		by := runMutant(t, root, m)
		switch {
		case by != "":
			killed++
		case equivalent[m.name] != "":
			equiv++
			by = "equivalent: " + equivalent[m.name]
		}
		t.Logf("%2d %-26s %-40s %s", i+1, m.name, orSurvived(by), time.Since(start).Round(time.Second))
		rows = append(rows, fmt.Sprintf("| %d | `%s` (%s) | %s | %s |", i+1, m.name, m.file, m.breaks, orSurvived(by)))
	}
	t.Logf("%d of %d mutants killed, %d argued equivalent\n| # | mutant | what it breaks | killed by |\n|---|---|---|---|\n%s", killed, len(rows), equiv, strings.Join(rows, "\n"))
	if killed+equiv != len(rows) {
		t.Errorf("%d mutants survived", len(rows)-killed-equiv)
	}
}

func orSurvived(by string) string {
	if by == "" {
		return "SURVIVED"
	}
	return by
}

// runMutant copies the module (root package and this package) to a
// temporary directory, applies m and runs the package's tests there. It
// returns the test that failed ("" if none).
func runMutant(t *testing.T, root string, m mutant) string {
	dir := t.TempDir()
	copyFiles(t, root, dir, func(name string) bool {
		return name == "go.mod" || name == "go.sum" || (strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go"))
	})
	copyFiles(t, filepath.Join(root, "federation"), filepath.Join(dir, "federation"), func(name string) bool {
		return strings.HasSuffix(name, ".go")
	})
	for _, pkg := range []string{"internal/jsonfast"} { // what federation imports besides the root package
		copyFiles(t, filepath.Join(root, pkg), filepath.Join(dir, pkg), func(name string) bool {
			return strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")
		})
	}
	path := filepath.Join(dir, "federation", m.file)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(src), m.from); n != 1 {
		t.Fatalf("mutant %s: the text to mutate occurs %d times in %s (it must occur once): update the mutant", m.name, n, m.file)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(src), m.from, m.to, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The scenario tests first (quick), then the default simulation.
	if *mutateBuild {
		cmd := exec.Command("go", "vet", "./federation")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("mutant %s does not build:\n%s", m.name, out)
		}
		return "(built)"
	}
	runs := []string{"Test[^S]|TestSimulationDeterministic", "TestSimulation$"}
	if *mutateSim {
		runs = runs[1:]
	}
	for _, run := range runs {
		if by := goTest(t, dir, run); by != "" {
			return by
		}
	}
	return ""
}

var failRE = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)

func goTest(t *testing.T, dir, run string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	// TestWeakeningsApply checks that each mutant's text is in the source,
	// which a mutant's own copy no longer is: it would "kill" every one.
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-timeout", "15m", "-run", run, "-skip", "TestWeakeningsApply", "./federation")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		return ""
	}
	if strings.Contains(string(out), "[build failed]") || strings.Contains(string(out), "[setup failed]") {
		t.Fatalf("mutant does not build:\n%s", out)
	}
	fails := failRE.FindAllStringSubmatch(string(out), -1)
	if len(fails) == 0 {
		// A panic outside a test's goroutine (in the simulation's workers)
		// prints no FAIL line: name the test from the stack.
		if p := regexp.MustCompile(`(?m)^panic: (.*)$`).FindStringSubmatch(string(out)); p != nil {
			in := ""
			if f := regexp.MustCompile(`federation\.(Test\w+|runSim)`).FindStringSubmatch(string(out)); f != nil {
				in = f[1] + " "
			}
			return in + "(panic: " + strings.TrimSuffix(p[1], " [recovered, repanicked]") + ")"
		}
		return "go test failed: " + firstLine(string(out))
	}
	var names []string
	for _, f := range fails {
		if !strings.Contains(f[1], "/") || len(names) == 0 {
			names = append(names, f[1])
		}
	}
	by := strings.Join(names, ", ")
	if seed := regexp.MustCompile(`simulation seed (\d+) failed`).FindStringSubmatch(string(out)); seed != nil {
		by += " (seed " + seed[1] + ")"
	}
	return by
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func copyFiles(t *testing.T, from, to string, keep func(string) bool) {
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() || !keep(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
