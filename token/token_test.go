package token

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

const b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

var (
	t0  = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	fp1 = "sha256:" + strings.Repeat("1a", 32)
	fp2 = "sha256:" + strings.Repeat("2b", 32)
)

func TestJoinTokenRoundTrip(t *testing.T) {
	j, err := NewJoin("dc-2", fp1, t0.Add(15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	s := j.String()
	if !strings.HasPrefix(s, JoinPrefix) || len(s) > MaxLen {
		t.Fatalf("token %q", s)
	}
	got, err := ParseJoin(s)
	if err != nil || got.DC != "dc-2" || got.Identity != fp1 || !got.Expires.Equal(t0.Add(15*time.Minute)) || got.Hash() != j.Hash() {
		t.Fatalf("ParseJoin: %+v %v", got, err)
	}
	for _, bad := range []string{"", "vsjoin1_", "vsjoin1_!!", s[:len(s)-2], s + "AA", "x" + s, APIPrefix + "a_b"} {
		if _, err := ParseJoin(bad); !vipsmart.IsCode(err, vipsmart.EINVALID) {
			t.Errorf("ParseJoin(%q) = %v; want EINVALID", bad, err)
		}
	}
}

func TestAPITokenRoundTrip(t *testing.T) {
	a, err := NewAPI("ci-deploy")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseAPI(a.String())
	if err != nil || got.Name != "ci-deploy" || Hash(got.Secret) != Hash(a.Secret) {
		t.Fatalf("ParseAPI: %+v %v", got, err)
	}
	// The last character carries 2 unused bits: another spelling of the
	// same secret is refused.
	tok := a.String()
	last := strings.IndexByte(b64chars, tok[len(tok)-1])
	alias := tok[:len(tok)-1] + string(b64chars[last^1])
	if _, err := ParseAPI(alias); err == nil {
		t.Errorf("ParseAPI accepts %q, another spelling of %q", alias, tok)
	}
	for _, bad := range []string{"", "vsapi1_", "vsapi1_ci", "vsapi1_CI_" + strings.Repeat("A", 43), "vsapi1_ci_short", JoinPrefix + "x"} {
		if _, err := ParseAPI(bad); !vipsmart.IsCode(err, vipsmart.EUNAUTHORIZED) {
			t.Errorf("ParseAPI(%q) = %v; want EUNAUTHORIZED", bad, err)
		}
	}
}

func TestJoinTokenLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	jt, err := f.CreateJoin("dc-2", fp1, 15*time.Minute, t0)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", err, fi)
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), jt.Token[len(JoinPrefix):]) {
		t.Fatal("the token file holds the token itself")
	}
	// Checked by the DC that made it, for itself.
	h, err := f.CheckJoin(jt.Token, "dc-2", fp1, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, tok, dc, fp string
		at                time.Time
		msg               string
	}{
		{"missing", "", "dc-2", fp1, t0, "needs a join token"},
		{"another name", jt.Token, "dc-3", fp1, t0, "made for dc-2"},
		{"another key", jt.Token, "dc-2", fp2, t0, "made for dc-2"},
		{"expired", jt.Token, "dc-2", fp1, t0.Add(16 * time.Minute), "expired"},
	} {
		if _, err := f.CheckJoin(c.tok, c.dc, c.fp, c.at); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v; want %q", c.name, err, c.msg)
		}
	}
	other, _ := NewJoin("dc-2", fp1, t0.Add(time.Hour))
	if _, err := f.CheckJoin(other.String(), "dc-2", fp1, t0); err == nil || !strings.Contains(err.Error(), "not made on dc-2") {
		t.Errorf("a token made elsewhere: %v", err)
	}
	// Used up when the DC becomes a member (with any other unused token);
	// a restart remembers.
	if _, err := f.CheckJoin(jt.Token, "dc-2", fp1, t0); err != nil || !f.HasUnused(t0) || h == "" {
		t.Fatalf("an unused token: %v", err)
	}
	n, err := f.ConsumeAll(t0.Add(2*time.Minute), "dc-2 joined federation f-7")
	if err != nil || n != 1 || f.HasUnused(t0) {
		t.Fatalf("consume: %d %v", n, err)
	}
	f2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f2.CheckJoin(jt.Token, "dc-2", fp1, t0.Add(3*time.Minute)); err == nil || !strings.Contains(err.Error(), "already used") || !strings.Contains(err.Error(), "joined federation f-7") {
		t.Fatalf("a used token after a restart: %v", err)
	}
	if _, err := f.CreateJoin("dc-2", fp1, 0, t0); !vipsmart.IsCode(err, vipsmart.EINVALID) {
		t.Fatalf("ttl 0: %v", err)
	}
}
