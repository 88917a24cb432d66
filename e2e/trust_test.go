package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/httpapi"
	"github.com/vipsmart/vipsmart/identity"
	"github.com/vipsmart/vipsmart/token"
)

// cliCmd is the command of a CLI run against server, for tests that set
// its environment.
func cliCmd(server string, args ...string) *exec.Cmd {
	return exec.Command(bin, append([]string{"--server", server}, args...)...)
}

// peerKey is a key pair a test speaks to the federation port with: a
// stranger's, or a DC's real one read from its data directory.
type peerKey struct {
	cert tls.Certificate
	fp   string
}

// strangerKey makes a fresh key pair with a self-signed certificate for
// name, as anyone can.
func strangerKey(t testing.TB, name string) peerKey {
	t.Helper()
	dir := t.TempDir()
	if _, err := identity.Load(identity.Options{Dir: dir, Name: name}); err != nil {
		t.Fatal(err)
	}
	return loadKey(t, dir)
}

// loadKey reads the key pair of a data directory (a DC's real key).
func loadKey(t testing.TB, dir string) peerKey {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, identity.CertFile), filepath.Join(dir, identity.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.Load(identity.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return peerKey{cert: c, fp: id.Fingerprint()}
}

// post sends body to addr's peer route over TLS 1.3, presenting k (or no
// certificate if k is nil), without checking the server (an attacker does
// not care who answers). It returns the HTTP status, or the error of a
// connection that was refused.
func post(addr string, k *peerKey, body []byte) (int, string, error) {
	return postWithin(addr, k, body, 5*time.Second)
}

// postWithin is post with a client timeout of its own.
func postWithin(addr string, k *peerKey, body []byte, timeout time.Duration) (int, string, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	if k != nil {
		tc.Certificates = []tls.Certificate{k.cert}
	}
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc}}
	resp, err := hc.Post("https://"+addr+"/v1/peer/message", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fedState is what a forgery must not change on d: its status and epoch,
// its federation (id, epoch, members with their keys), its GIPs and VIPs.
func fedState(t testing.TB, d *daemon) string {
	t.Helper()
	ctx := context.Background()
	c := d.client()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := c.ListGIPs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := c.ListVIPs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var gips, vips []string
	for _, g := range gs {
		gips = append(gips, fmt.Sprintf("%s=%s/%s/%v", g.Name, g.Address, g.Mode, g.Placements))
	}
	for _, v := range vs {
		vips = append(vips, v.Name+"="+v.Address.String())
	}
	return string(mustJSON(t, map[string]any{"status": st.Status, "epoch": st.Epoch, "op": st.OpID, "identity": st.Identity, "federation": st.Federation, "gips": gips, "vips": vips}))
}

// snapshotAll returns fedState of every daemon and the sequence number
// of its last event, once their event logs have been quiet for half a
// second (a GIP's activation, say, is not mistaken for a forgery's work).
func snapshotAll(t testing.TB, ds []*daemon) ([]string, []uint64) {
	t.Helper()
	last := func() string {
		var b strings.Builder
		for _, d := range ds {
			es, err := d.client().Events(context.Background(), 0, 10000)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(&b, len(es), ",")
		}
		return b.String()
	}
	prev, since := last(), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && time.Since(since) < 500*time.Millisecond; {
		time.Sleep(50 * time.Millisecond)
		if now := last(); now != prev {
			prev, since = now, time.Now()
		}
	}
	states := make([]string, len(ds))
	seqs := make([]uint64, len(ds))
	for i, d := range ds {
		states[i] = fedState(t, d)
		es, err := d.client().Events(context.Background(), 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) > 0 {
			seqs[i] = es[len(es)-1].Seq
		}
	}
	return states, seqs
}

// expectUnchanged checks that no daemon of ds changed its state since
// snapshotAll, and that its event log gained no change (only security
// and health events).
func expectUnchanged(t testing.TB, what string, ds []*daemon, states []string, seqs []uint64) {
	t.Helper()
	// Give a believed forgery time to show.
	time.Sleep(300 * time.Millisecond)
	for i, d := range ds {
		if now := fedState(t, d); now != states[i] {
			t.Errorf("%s changed %s:\nbefore %s\nafter  %s", what, d.name, states[i], now)
		}
		es, err := d.client().Events(context.Background(), seqs[i], 10000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Kind != vipsmart.EventSecurity && e.Kind != vipsmart.EventHealth {
				t.Errorf("%s: %s logged a change: %s: %s", what, d.name, e.Kind, e.Message)
			}
		}
	}
}

func statusOf(t testing.TB, d *daemon) vipsmart.StatusInfo {
	t.Helper()
	st, err := d.client().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// dcOfStatus is the DC a member's status describes, with its key.
func dcOfStatus(st vipsmart.StatusInfo) vipsmart.DC {
	return vipsmart.DC{Name: st.Name, Address: st.Address, Port: st.Port, Identity: st.Identity}
}

// forgeries are the attacks of issue 9, as messages "from" a member: a
// heartbeat carrying a made-up decision that puts a GIP for 8.8.8.8 on
// every DC, one that removes a member, one that adds a DC that does not
// exist, and a commit and a state of the same.
func forgeries(from, to vipsmart.DC, st vipsmart.StatusInfo) map[string]federation.Message {
	fed, epoch := st.Federation.ID, st.Federation.Epoch
	g := vipsmart.GIP{Name: "evil", Address: netip.MustParseAddr("8.8.8.8"), Mode: vipsmart.ModeAnycast, Preempt: true,
		Placements: []vipsmart.Placement{{DC: st.Federation.Members[0].Name, Priority: 100}}}
	ghost := vipsmart.DC{Name: "ghost", Address: netip.MustParseAddr("127.0.0.1"), Port: 1}
	dec := func(c federation.Change) *federation.Decision {
		return &federation.Decision{FedID: fed, FromEpoch: epoch, ToEpoch: epoch + 1, OpID: from.Name + "-forged-1", Coordinator: from.Name, Change: c}
	}
	base := func(t federation.MsgType) federation.Message {
		return federation.Message{Type: t, From: from, To: to, FedID: fed, Epoch: epoch, SenderFed: fed, SenderEpoch: epoch, Status: vipsmart.StatusMember}
	}
	out := map[string]federation.Message{}
	for name, c := range map[string]federation.Change{
		"put GIP 8.8.8.8": {Kind: federation.PutGIP, GIP: &g},
		"remove a member": {Kind: federation.RemoveDC, Name: to.Name},
		"add a ghost DC":  {Kind: federation.AddDC, DC: &ghost},
	} {
		hb := base(federation.MsgHeartbeat)
		hb.Last = dec(c)
		out["heartbeat: "+name] = hb
		cm := base(federation.MsgCommit)
		cm.OpID, cm.Last = hb.Last.OpID, hb.Last
		out["commit: "+name] = cm
	}
	st2 := base(federation.MsgState)
	st2.SenderEpoch = epoch + 5
	st2.State = &federation.State{FedID: fed, Epoch: epoch + 5, Members: []vipsmart.DC{from}, GIPs: []vipsmart.GIP{g}}
	out["state without the receiver"] = st2
	lk := base(federation.MsgLock)
	lk.OpID, lk.ToEpoch, lk.Change = from.Name+"-forged-2", epoch+1, &federation.Change{Kind: federation.DeleteGIP, Name: "www"}
	out["lock"] = lk
	return out
}

// TestForgeriesAreRefused re-runs the attacks of issue 9 against the mutual
// TLS transport: forged messages claiming to come from dc-1, sent with no
// certificate, with a stranger's self-signed certificate that claims
// dc-1's name (with dc-1's fingerprint or its own), and as plain HTTP;
// a made-up DC's invite, prepare and commit to a standalone DC, and a
// repeated invite. Every member refuses every one, nothing changes, and
// the refusals are security events naming who, from where and why.
func TestForgeriesAreRefused(t *testing.T) {
	ds := startFederation(t, 3, fedTimers...)
	d1, d2, d3 := ds[0], ds[1], ds[2]
	lone := startDaemon(t, "dc-9", fedTimers...)
	ctx := context.Background()
	if _, err := d1.client().AddGIP(ctx, vipsmart.GIP{Name: "www", Address: netip.MustParseAddr("203.0.113.10"), Mode: vipsmart.ModeFailover, Preempt: true,
		Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 200}, {DC: "dc-2", Priority: 100}}}); err != nil {
		t.Fatal(err)
	}
	expectFederation(t, ds, []*daemon{lone})
	waitActive(t, ds, "www", []string{"dc-1"}, 10*time.Second) // its activation is an event too
	all := append(slices.Clone(ds), lone)
	states, seqs := snapshotAll(t, all)
	st1 := statusOf(t, d1)
	real1 := dcOfStatus(st1)
	stranger := strangerKey(t, "dc-1")
	imposter := real1
	imposter.Identity = stranger.fp

	// Plain HTTP to the federation port.
	for _, to := range []*daemon{lone, d2, d3} {
		resp, err := http.Post("http://"+to.addr()+"/v1/peer/message", "application/json", bytes.NewReader(mustJSON(t, forgeries(real1, dcOfStatus(statusOf(t, to)), st1)["heartbeat: put GIP 8.8.8.8"])))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("plain HTTP to %s's federation port: %s %s; want refused", to.name, resp.Status, b)
			}
		}
	}
	for _, to := range []*daemon{d2, d3} {
		toDC := dcOfStatus(statusOf(t, to))
		for _, name := range slices.Sorted(maps.Keys(forgeries(real1, toDC, st1))) {
			m := forgeries(real1, toDC, st1)[name]
			body := mustJSON(t, m)
			// No certificate: the handshake fails.
			if code, _, err := post(to.addr(), nil, body); err == nil {
				t.Errorf("%s to %s without a certificate: answered %d; want the handshake refused", name, to.name, code)
			}
			// A stranger's key, claiming dc-1's fingerprint.
			if code, b, err := post(to.addr(), &stranger, body); err != nil || code != http.StatusForbidden {
				t.Errorf("%s to %s with a stranger's key claiming dc-1's: %d %s %v; want 403", name, to.name, code, b, err)
			}
			// A stranger's key, claiming dc-1's name with its own key.
			m.From = imposter
			if code, b, err := post(to.addr(), &stranger, mustJSON(t, m)); err != nil || code != http.StatusForbidden || !strings.Contains(b, "pinned") {
				t.Errorf("%s to %s with a self-signed certificate named dc-1: %d %s %v; want 403 naming the pinned key", name, to.name, code, b, err)
			}
		}
	}
	// A made-up DC hijacking a standalone DC: invite (again and again),
	// prepare and commit, with the made-up DC's own key.
	mk := strangerKey(t, "evil")
	evil := vipsmart.DC{Name: "evil", Address: netip.MustParseAddr("127.0.0.1"), Port: 1, Identity: mk.fp}
	loneDC := dcOfStatus(statusOf(t, lone))
	fed := "f-evil-1"
	inv := federation.Message{Type: federation.MsgInvite, From: evil, To: loneDC, FedID: fed, Epoch: 0, ToEpoch: 1, OpID: "evil-1",
		Change: &federation.Change{Kind: federation.AddDC, DC: &loneDC, Founder: &evil}, Members: []vipsmart.DC{evil}}
	for i := 0; i < 5; i++ {
		if code, b, err := post(lone.addr(), &mk, mustJSON(t, inv)); err != nil || code != http.StatusForbidden || !strings.Contains(b, "join token") {
			t.Errorf("invite without a join token: %d %s %v; want 403 naming the join token", code, b, err)
		}
	}
	inv.Token = formalJoinToken(t, "dc-9")
	if code, b, err := post(lone.addr(), &mk, mustJSON(t, inv)); err != nil || code != http.StatusForbidden {
		t.Errorf("invite with a made-up join token: %d %s %v; want 403", code, b, err)
	}
	dec := &federation.Decision{FedID: fed, FromEpoch: 0, ToEpoch: 1, OpID: "evil-1", Coordinator: "evil", Change: *inv.Change}
	prep := federation.Message{Type: federation.MsgPrepare, From: evil, To: loneDC, FedID: fed, OpID: "evil-1", ToEpoch: 1,
		State: &federation.State{FedID: fed, Epoch: 1, Members: []vipsmart.DC{evil, loneDC}, Last: dec}}
	commit := federation.Message{Type: federation.MsgCommit, From: evil, To: loneDC, FedID: fed, OpID: "evil-1", Last: dec, SenderFed: fed, SenderEpoch: 1}
	for _, m := range []federation.Message{prep, commit} {
		if code, b, err := post(lone.addr(), &mk, mustJSON(t, m)); err != nil || code != http.StatusForbidden {
			t.Errorf("%s from a made-up DC: %d %s %v; want 403", m.Type, code, b, err)
		}
	}
	expectUnchanged(t, "forgeries", all, states, seqs)

	// Refusals are security events: who, from where, why; rate-limited
	// (dc-2 refused 22 connections and messages from one host within a
	// second: it records 3).
	security := func(d *daemon, after uint64) []string {
		es, err := d.client().Events(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			if e.Kind == vipsmart.EventSecurity {
				got = append(got, e.Message)
			}
		}
		return got
	}
	if got := strings.Join(security(lone, seqs[3]), "\n"); !strings.Contains(got, "refused a connection from 127.0.0.1:") || !strings.Contains(got, "plain HTTP") {
		t.Errorf("dc-9's security events do not record the plain HTTP request:\n%s", got)
	}
	got := security(d2, seqs[1])
	joined := strings.Join(got, "\n")
	for _, want := range []string{"refused a connection from 127.0.0.1:", "refused dc-1 (key " + vipsmart.ShortIdentity(stranger.fp) + ") from 127.0.0.1:", "but the connection presented key " + vipsmart.ShortIdentity(stranger.fp)} {
		if !strings.Contains(joined, want) {
			t.Errorf("dc-2's security events do not say %q:\n%s", want, joined)
		}
	}
	if len(got) != 3 {
		t.Errorf("dc-2 recorded %d refusals from one host within a second; want 3 (rate-limited):\n%s", len(got), joined)
	}
	// The federation still works.
	mustCLI(t, d3.server(), "gip", "remove", "www")
	expectFederation(t, ds, []*daemon{lone})
}

// TestForceRemovedDCIsFencedByKey: a force-removed DC's real key is no
// longer believed by any member: its forged lock, commit and state are
// refused and change nothing, its heartbeats are only answered, and when it
// comes back it finds itself fenced out and turns standalone.
func TestForceRemovedDCIsFencedByKey(t *testing.T) {
	ds := startFederation(t, 3, fedTimers...)
	d1, d2, d3 := ds[0], ds[1], ds[2]
	expectFederation(t, ds, nil)
	key3 := loadKey(t, d3.dataDir)
	dc3 := dcOfStatus(statusOf(t, d3))
	d3.kill()
	// --force is refused while dc-1 still counts dc-3 reachable (heard
	// within a few heartbeats).
	eventually(t, 10*time.Second, "dc remove dc-3 --force", func() error {
		r := cli(t, d1.server(), "dc", "remove", "dc-3", "--force")
		if r.code != 0 && !strings.Contains(r.stderr, "dc-3 is reachable") {
			t.Fatalf("dc remove dc-3 --force: exit %d: %s", r.code, r.stderr)
		}
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	})
	expectFederation(t, ds[:2], nil)
	states, seqs := snapshotAll(t, ds[:2])
	st := statusOf(t, d1)
	for _, to := range []*daemon{d1, d2} {
		toDC := dcOfStatus(statusOf(t, to))
		for name, m := range forgeries(dc3, toDC, st) {
			code, b, err := post(to.addr(), &key3, mustJSON(t, m))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if m.Type != federation.MsgHeartbeat && code != http.StatusForbidden {
				t.Errorf("%s from removed dc-3 to %s: %d %s; want 403", name, to.name, code, b)
			}
		}
	}
	expectUnchanged(t, "messages with a removed DC's key", ds[:2], states, seqs)
	// dc-3 comes back: it learns it was removed and turns standalone.
	d3.start()
	expectFederation(t, ds[:2], []*daemon{d3})
	if !strings.Contains(statusOf(t, d3).Identity, key3.fp) {
		t.Fatalf("dc-3 changed its key")
	}
}

// TestJoinTokens: dc add works with the right token and refuses one that
// is missing, expired, already used, made on another DC, or made for a DC
// whose key is not the one at the address given; each refusal changes
// nothing.
func TestJoinTokens(t *testing.T) {
	d1 := startDaemon(t, "dc-1", fedTimers...)
	d2 := startDaemon(t, "dc-2", fedTimers...)
	d3 := startDaemon(t, "dc-3", fedTimers...)
	all := []*daemon{d1, d2, d3}

	// Missing: the message says how to get one.
	r := cli(t, d1.server(), "dc", "add", d2.spec())
	if r.code != 2 || !strings.Contains(r.stderr, "dc join-token") {
		t.Fatalf("dc add without a token: exit %d, %q", r.code, r.stderr)
	}
	// Expired.
	tok := joinToken(t, d2, "--ttl", "1s")
	time.Sleep(1100 * time.Millisecond)
	if r := dcAdd(t, d1, d2, "--token", tok); r.code != 2 || !strings.Contains(r.stderr, "expired") {
		t.Fatalf("dc add with an expired token: exit %d, %q", r.code, r.stderr)
	}
	// Made on another DC (another name).
	if r := dcAdd(t, d1, d2, "--token", joinToken(t, d3)); r.code != 2 || !strings.Contains(r.stderr, "made on dc-3, not on dc-2") {
		t.Fatalf("dc add with dc-3's token: exit %d, %q", r.code, r.stderr)
	}
	// Made for a DC of the same name with another key (another host, or a
	// man in the middle): the coordinator pins the token's key and refuses
	// the DC at the address given.
	other := startDaemon(t, "dc-2", fedTimers...)
	if r := dcAdd(t, d1, d2, "--token", joinToken(t, other)); r.code != 1 || !strings.Contains(r.stderr, "not the pinned") {
		t.Fatalf("dc add with the token of another dc-2: exit %d, %q", r.code, r.stderr)
	}
	// A token made on dc-2 but sent by a coordinator that changed it: the
	// made-up secret is refused by dc-2 itself.
	if r := dcAdd(t, d1, d2, "--token", forgedSecret(t, joinToken(t, d2))); r.code != 1 || !strings.Contains(r.stderr, "dc-2") || !strings.Contains(r.stderr, "was not made on dc-2") {
		t.Fatalf("dc add with a token whose secret was changed: exit %d, %q", r.code, r.stderr)
	}
	expectFederation(t, nil, all)

	// The right token works once.
	tok = joinToken(t, d2)
	if r := dcAdd(t, d1, d2, "--token", tok); r.code != 0 {
		t.Fatalf("dc add with the right token: exit %d, %q", r.code, r.stderr)
	}
	expectFederation(t, []*daemon{d1, d2}, []*daemon{d3})
	mustCLI(t, d2.server(), "dc", "leave")
	expectFederation(t, []*daemon{d1}, []*daemon{d2, d3})
	if r := dcAdd(t, d1, d2, "--token", tok); r.code != 1 || !strings.Contains(r.stderr, "already used") {
		t.Fatalf("dc add with a used token: exit %d, %q", r.code, r.stderr)
	}
	expectFederation(t, []*daemon{d1}, []*daemon{d2, d3})
	// VIPSMART_JOIN_TOKEN works as --token does.
	cmd := cliCmd(d1.server(), "dc", "add", d3.spec())
	cmd.Env = append(os.Environ(), "VIPSMART_JOIN_TOKEN="+joinToken(t, d3))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dc add with VIPSMART_JOIN_TOKEN: %v\n%s", err, out)
	}
	expectFederation(t, []*daemon{d1, d3}, []*daemon{d2})
	// A member makes no join token.
	if r := cli(t, d3.server(), "dc", "join-token"); r.code != 1 || !strings.Contains(r.stderr, "already a member") {
		t.Fatalf("join-token on a member: exit %d, %q", r.code, r.stderr)
	}
}

// forgedSecret changes the secret of a join token, keeping its name, key
// and expiry.
func forgedSecret(t testing.TB, tok string) string {
	t.Helper()
	j, err := token.ParseJoin(tok)
	if err != nil {
		t.Fatal(err)
	}
	j.Secret[0] ^= 0xff
	return j.String()
}

// TestRotateIdentity: dc rotate-identity commits the new key on every
// member; messages signed with the old key are refused afterwards and
// change nothing; the federation works on with the new key.
func TestRotateIdentity(t *testing.T) {
	ds := startFederation(t, 3, fedTimers...)
	d1, d2, d3 := ds[0], ds[1], ds[2]
	expectFederation(t, ds, nil)
	old := loadKey(t, d2.dataDir)
	oldDC := dcOfStatus(statusOf(t, d2))
	out := mustCLI(t, d2.server(), "dc", "rotate-identity")
	st2 := statusOf(t, d2)
	if st2.Identity == old.fp || !strings.Contains(out, st2.Identity) {
		t.Fatalf("rotate-identity: %q; identity %s (old %s)", out, st2.Identity, old.fp)
	}
	// The coordinator's commit is the decision; the members apply it
	// within milliseconds.
	eventually(t, 5*time.Second, "every member lists dc-2's new key", func() error {
		for _, d := range ds {
			for _, m := range statusOf(t, d).Federation.Members {
				if m.Name == "dc-2" && m.Identity != st2.Identity {
					return fmt.Errorf("%s lists dc-2 with key %s; want the new %s", d.name, m.Identity, st2.Identity)
				}
			}
		}
		return nil
	})
	if k := loadKey(t, d2.dataDir); k.fp != st2.Identity {
		t.Fatalf("dc-2's key file has %s; status says %s", k.fp, st2.Identity)
	}
	states, seqs := snapshotAll(t, ds)
	st := statusOf(t, d1)
	for _, to := range []*daemon{d1, d3} {
		for name, m := range forgeries(oldDC, dcOfStatus(statusOf(t, to)), st) {
			if code, b, err := post(to.addr(), &old, mustJSON(t, m)); err != nil || code != http.StatusForbidden {
				t.Errorf("%s with dc-2's old key to %s: %d %s %v; want 403", name, to.name, code, b, err)
			}
		}
	}
	expectUnchanged(t, "messages with dc-2's old key", ds, states, seqs)
	// The federation works on: a change coordinated by dc-2, heartbeats.
	mustCLI(t, d2.server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-2:100")
	d2.kill()
	d2.start()
	expectFederation(t, ds, nil)
	eventually(t, 5*time.Second, "dc-2 reachable from dc-1", func() error {
		var rows []dcRow
		cliJSON(t, d1.server(), &rows, "dc", "list")
		for _, r := range rows {
			if r.Name == "dc-2" && !r.Reachable {
				return fmt.Errorf("dc-2 unreachable")
			}
		}
		return nil
	})
}

// recorder is a TCP proxy that records what clients send through it.
type recorder struct {
	l    net.Listener
	mu   sync.Mutex
	sent [][]byte
}

func newRecorder(t testing.TB, target string) *recorder {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go r.relay(c, target)
		}
	}()
	return r
}

func (r *recorder) relay(c net.Conn, target string) {
	defer c.Close()
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	r.mu.Lock()
	i := len(r.sent)
	r.sent = append(r.sent, nil)
	r.mu.Unlock()
	go func() { io.Copy(c, s); c.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			r.mu.Lock()
			r.sent[i] = append(r.sent[i], buf[:n]...)
			r.mu.Unlock()
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestCapturedMessagesReplayedChangeNothing: what an attacker on the path
// captures of a GIP change (the TLS records dc-1 sent dc-2) and replays
// to dc-2 later changes nothing.
func TestCapturedMessagesReplayedChangeNothing(t *testing.T) {
	d1 := startDaemon(t, "dc-1", fedTimers...)
	d2 := newDaemon(t, "dc-2", fedTimers...)
	rec := newRecorder(t, d2.addr())
	// dc-2 advertises the recorder: dc-1 reaches it through it.
	d2.extra = append(d2.extra, "--advertise", rec.l.Addr().String())
	d2.start()
	proxied := "dc-2," + strings.Replace(rec.l.Addr().String(), ":", ",", 1)
	mustCLI(t, d1.server(), "dc", "add", proxied, "--token", joinToken(t, d2))
	mustCLI(t, d1.server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-2:100")
	mustCLI(t, d1.server(), "gip", "remove", "www")
	expectFederation(t, []*daemon{d1, d2}, nil)
	rec.mu.Lock()
	captured := slices.Clone(rec.sent)
	rec.mu.Unlock()
	total := 0
	for _, c := range captured {
		total += len(c)
	}
	if total == 0 {
		t.Fatal("the recorder saw no traffic from dc-1 to dc-2")
	}
	states, seqs := snapshotAll(t, []*daemon{d1, d2})
	for _, stream := range captured {
		c, err := net.Dial("tcp", d2.addr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write(stream)
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}
	expectUnchanged(t, fmt.Sprintf("replaying %d captured connections (%d bytes)", len(captured), total), []*daemon{d1, d2}, states, seqs)
}

// TestRemoteOperatorAPI: serve --api-listen serves the operator API over
// HTTPS with bearer tokens made on the DC's socket. No token or a bad one
// is 401, a read token's write is 403, both change nothing; an admin token
// works and the event log names it; token management stays on the socket;
// the CLI pins the server's key.
func TestRemoteOperatorAPI(t *testing.T) {
	port := freePort(t)
	d := startDaemon(t, "dc-1", "--api-listen", fmt.Sprintf("127.0.0.1:%d", port))
	remote := fmt.Sprintf("https://127.0.0.1:%d", port)
	fp := statusOf(t, d).Identity
	admin := strings.TrimSpace(mustCLI(t, d.server(), "token", "create", "ops", "--role", "admin"))
	read := strings.TrimSpace(mustCLI(t, d.server(), "token", "create", "viewer", "--role", "read", "--ttl", "1h"))
	if !strings.HasPrefix(admin, "vsapi1_ops_") || !strings.HasPrefix(read, "vsapi1_viewer_") {
		t.Fatalf("token create printed %q and %q", admin, read)
	}
	if out := mustCLI(t, d.server(), "token", "list"); !strings.Contains(out, "ops") || !strings.Contains(out, "viewer") || strings.Contains(out, admin[12:]) {
		t.Fatalf("token list:\n%s", out)
	}
	mustCLI(t, d.server(), "vip", "add", "web", "192.0.2.10")
	states, seqs := snapshotAll(t, []*daemon{d})
	pin := []string{"--server-fingerprint", fp}

	for _, c := range []struct {
		name  string
		args  []string
		token string
		code  int
		msg   string
	}{
		{"no token", []string{"vip", "list"}, "", 1, "needs a token"},
		{"a damaged token", []string{"vip", "list"}, "vsapi1_ops_xyz", 1, "damaged"},
		{"a wrong secret", []string{"vip", "list"}, admin[:len(admin)-4] + "AAAA", 1, "not valid"},
		{"a join token", []string{"vip", "list"}, formalJoinToken(t, "dc-1"), 1, "not an API token"},
		{"a read token's write", []string{"vip", "add", "db", "192.0.2.11"}, read, 1, "may only read"},
		{"a read token's delete", []string{"vip", "remove", "web"}, read, 1, "may only read"},
		{"token management from afar", []string{"token", "list"}, admin, 1, "local socket only"},
		{"a wrong pin", []string{"--server-fingerprint", "sha256:" + strings.Repeat("0", 64), "vip", "list"}, admin, 1, "not the pinned"},
	} {
		args := append(slices.Clone(pin), c.args...)
		if c.name == "a wrong pin" {
			args = c.args
		}
		cmd := cliCmd(remote, args...)
		cmd.Env = append(os.Environ(), "VIPSMART_TOKEN="+c.token)
		var se bytes.Buffer
		cmd.Stderr = &se
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != c.code || !strings.Contains(se.String(), c.msg) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d saying %q", c.name, code, se.String(), c.code, c.msg)
		}
	}
	// Raw HTTPS, as curl would: 401 with WWW-Authenticate, 403.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, c := range []struct {
		method, path, bearer string
		status               int
	}{
		{"GET", "/v1/status", "", 401},
		{"GET", "/healthz", "", 401},
		{"POST", "/v1/vips", "", 401},
		{"POST", "/v1/vips", read, 403},
		{"DELETE", "/v1/vips/web", read, 403},
		{"POST", "/v1/leave", read, 403},
		{"POST", "/v1/tokens", admin, 403},
		{"POST", "/v1/peer/message", admin, 404},
	} {
		req, _ := http.NewRequest(c.method, remote+c.path, strings.NewReader(`{"name":"db","address":"192.0.2.11"}`))
		req.Header.Set("Content-Type", "application/json")
		if c.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+c.bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d %s; want %d", c.method, c.path, resp.StatusCode, b, c.status)
		}
		if c.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s: 401 without WWW-Authenticate: Bearer", c.method, c.path)
		}
	}
	expectUnchanged(t, "refused remote requests", []*daemon{d}, states, seqs)
	// The read token reads; the admin token writes, and the event log names it.
	out := mustCLI(t, remote, append(slices.Clone(pin), "--token", read, "vip", "list")...)
	if !strings.Contains(out, "web") {
		t.Fatalf("vip list with a read token:\n%s", out)
	}
	mustCLI(t, remote, append(slices.Clone(pin), "--token", admin, "vip", "add", "db", "192.0.2.11")...)
	mustCLI(t, d.server(), "vip", "remove", "db")
	var evs []vipsmart.Event
	cliJSON(t, d.server(), &evs, "events")
	var vipEvents []string
	for _, e := range evs {
		if e.Kind == vipsmart.EventVIP {
			vipEvents = append(vipEvents, e.Message)
		}
	}
	j := strings.Join(vipEvents, "\n")
	if !strings.Contains(j, "VIP db 192.0.2.11 added (asked by token ops (admin) from 127.0.0.1:") || !strings.Contains(j, "VIP db 192.0.2.11 removed (asked by uid ") || !strings.Contains(j, "on the local socket") {
		t.Errorf("VIP events do not name who asked:\n%s", j)
	}
	// --ca with the DC's own certificate verifies it too.
	mustCLI(t, remote, "--ca", filepath.Join(d.dataDir, identity.CertFile), "--token", read, "status")
	// Revoked: refused at once.
	mustCLI(t, d.server(), "token", "revoke", "ops")
	if r := cli(t, remote, append(slices.Clone(pin), "--token", admin, "status")...); r.code != 1 || !strings.Contains(r.stderr, "not valid") {
		t.Errorf("a revoked token: exit %d, %q", r.code, r.stderr)
	}
}

// TestOperatorSocket: the socket has mode 0660 (and the group of
// --socket-group); on the DC's host `vipsmart` with no --server reaches
// the default socket (root only: the default is under /run).
func TestOperatorSocket(t *testing.T) {
	d := startDaemon(t, "dc-1")
	fi, err := os.Stat(d.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %s has mode %s; want a socket with 0660", d.sock, fi.Mode())
	}
	// Only the default socket's directory is special; other tests use their own.
	if os.Getuid() != 0 {
		t.Skip("the default socket (" + httpapi.DefaultSocket + ") needs root; run as root (CI does) to test it")
	}
	if c, err := net.Dial("unix", httpapi.DefaultSocket); err == nil {
		c.Close()
		t.Skip("a daemon serves " + httpapi.DefaultSocket + " on this host: not testing the default socket")
	}
	grp := "daemon"
	if _, err := user.LookupGroup(grp); err != nil {
		t.Skipf("no group %q on this host to give the socket to", grp)
	}
	g, _ := user.LookupGroup(grp)
	_, dirErr := os.Stat(filepath.Dir(httpapi.DefaultSocket))
	dd := newDaemon(t, "dc-2", "--socket-group", grp)
	dd.sock = httpapi.DefaultSocket
	dd.start()
	t.Cleanup(func() {
		dd.kill()
		os.Remove(httpapi.DefaultSocket)
		if dirErr != nil {
			os.Remove(filepath.Dir(httpapi.DefaultSocket))
		}
	})
	fi, err = os.Stat(httpapi.DefaultSocket)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fmt.Sprint(st.Gid) != g.Gid || fi.Mode().Perm() != 0o660 {
		t.Fatalf("default socket: mode %s gid %d; want 0660 and group %s (%s)", fi.Mode(), st.Gid, grp, g.Gid)
	}
	cmd := exec.Command(bin, "status", "-o", "json")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "VIPSMART_SERVER=") })
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"name": "dc-2"`) {
		t.Fatalf("vipsmart status without --server: %v\n%s", err, out)
	}
}
