package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart/token"
)

// TestFederationRefusalsThroughCLI checks the seed's refusals as an operator
// sees them: an unreachable candidate or member, a candidate under another
// name, and the VIP and federation changes an invited or candidate-review DC
// refuses. Each refusal names the DC and the reason and changes nothing.
func TestFederationRefusalsThroughCLI(t *testing.T) {
	timers := []string{"--invite-ttl", "6s", "--review-ttl", "6s", "--phase-timeout", "1s", "--heartbeat-interval", "100ms"}
	d1 := startDaemon(t, "dc-1", timers...)
	d2 := startDaemon(t, "dc-2", timers...)
	d3 := startDaemon(t, "dc-3", timers...)
	mustDCAdd(t, d1, d2)
	before := expectFederation(t, []*daemon{d1, d2}, []*daemon{d3})

	// A candidate nobody answers for (it made its token, then went).
	d9 := startDaemon(t, "dc-9", timers...)
	tok9 := joinToken(t, d9)
	d9.kill()
	r := dcAdd(t, d1, d9, "--token", tok9)
	if r.code != 1 || !strings.Contains(r.stderr, "dc-9") {
		t.Fatalf("add of an unreachable candidate: exit %d, stderr %q", r.code, r.stderr)
	}
	// A candidate under another name than its token's.
	r = cli(t, d1.server(), "dc", "add", fmt.Sprintf("dc-x,127.0.0.1,%d", d3.port), "--token", joinToken(t, d3))
	if r.code != 2 || !strings.Contains(r.stderr, "dc-3") || !strings.Contains(r.stderr, "dc-x") {
		t.Fatalf("add under a wrong name: exit %d, stderr %q", r.code, r.stderr)
	}
	after := expectFederation(t, []*daemon{d1, d2}, []*daemon{d3})
	if after.Federation.Epoch != before.Federation.Epoch {
		t.Fatalf("refused adds changed the epoch: %d -> %d", before.Federation.Epoch, after.Federation.Epoch)
	}

	// A member that is down: the add fails naming it and the candidate is
	// standalone again, not left invited.
	d2.kill()
	r = dcAdd(t, d1, d3)
	if r.code != 1 || !strings.Contains(r.stderr, "dc-2") {
		t.Fatalf("add with a member down: exit %d, stderr %q", r.code, r.stderr)
	}
	if st := status(t, d3); st.Status != "standalone" {
		t.Fatalf("candidate after a failed add is %s; want standalone", st.Status)
	}
	d2.start()
	expectFederation(t, []*daemon{d1, d2}, []*daemon{d3})

	// Freeze an add after its locks: the coordinator dies, dc-2 stays in
	// candidate-review and dc-3 invited until their deadlines.
	if err := d1.stop(); err != nil {
		t.Fatal(err)
	}
	d1.env = []string{"VIPSMART_TEST_FAULT=send:prepare"}
	d1.start()
	expectFederation(t, []*daemon{d1, d2}, []*daemon{d3})
	if r := dcAdd(t, d1, d3); r.code == 0 {
		t.Fatal("dc add succeeded although the coordinator was to crash")
	}
	<-d1.done
	st3 := status(t, d3)
	if st3.Status != "invited" || st3.OpID == "" {
		t.Fatalf("candidate is %s (op %q); want invited with the operation", st3.Status, st3.OpID)
	}
	var raw map[string]any
	cliJSON(t, d3.server(), &raw, "status")
	if raw["time_left"] == nil || raw["deadline"] == nil {
		t.Fatalf("status of an invited DC lacks deadline/time_left: %v", raw)
	}
	st2 := status(t, d2)
	if st2.Status != "candidate-review" || st2.OpID != st3.OpID {
		t.Fatalf("member is %s (op %q); want candidate-review under %q", st2.Status, st2.OpID, st3.OpID)
	}
	if out := mustCLI(t, d2.server(), "status"); !strings.Contains(out, "candidate-review (operation "+st2.OpID) || !strings.Contains(out, "left)") {
		t.Fatalf("table status does not show the operation and time left:\n%s", out)
	}
	for _, c := range []struct {
		d    *daemon
		args []string
		want string
	}{
		{d3, []string{"vip", "add", "web", "192.0.2.77"}, "invited"},
		{d2, []string{"vip", "add", "web", "192.0.2.77"}, "candidate-review"},
		{d2, []string{"gip", "add", "www", "203.0.113.1", "--placement", "dc-2:100"}, "dc-2"},
		{d2, []string{"dc", "leave"}, "dc-2"},
		{d3, []string{"dc", "add", d1.spec(), "--token", formalJoinToken(t, "dc-1")}, "invited"},
	} {
		// --no-retry: these are the refusals themselves (the CLI would
		// otherwise retry the busy ones until the locks expire).
		r := cli(t, c.d.server(), append(c.args, "--no-retry")...)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: vipsmart %s: exit %d, stderr %q; want exit 1 mentioning %q", c.d.name, strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
	var vips []any
	cliJSON(t, d2.server(), &vips, "vip", "list")
	if len(vips) != 0 {
		t.Fatalf("a refused VIP add left VIPs: %v", vips)
	}
	// The coordinator returns and aborts its operation: everything reverts.
	d1.env = nil
	start := time.Now()
	d1.start()
	expectFederation(t, []*daemon{d1, d2}, []*daemon{d3})
	t.Logf("reverted %s after the coordinator returned", time.Since(start).Round(time.Millisecond))
}

// formalJoinToken is a well-formed join token for name (with a made-up
// key and secret): enough to get past dc add's checks of the token itself
// to the refusal under test.
func formalJoinToken(t testing.TB, name string) string {
	t.Helper()
	j, err := token.NewJoin(name, "sha256:"+strings.Repeat("ab", 32), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return j.String()
}
