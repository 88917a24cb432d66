package token

import (
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// FuzzJoinToken: join tokens arrive from operators (dc add --token) and
// from the network (in invites). A token is refused with EINVALID or
// names a valid DC and key and encodes back to itself.
func FuzzJoinToken(f *testing.F) {
	j, _ := NewJoin("dc-2", "sha256:"+strings.Repeat("1a", 32), time.Unix(1800000000, 0))
	for _, s := range []string{j.String(), JoinPrefix, JoinPrefix + "AA", JoinPrefix + "Pw", APIPrefix + "x_y", j.String()[:40]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseJoin(s)
		if err != nil {
			if !vipsmart.IsCode(err, vipsmart.EINVALID) {
				t.Fatalf("ParseJoin(%q): %v", s, err)
			}
			return
		}
		if vipsmart.ValidateName("dc", j.DC) != nil || vipsmart.ValidateIdentity("identity", j.Identity) != nil || len(j.Secret) != joinSecretLen {
			t.Fatalf("ParseJoin(%q) = %+v", s, j)
		}
		if back, err := ParseJoin(j.String()); err != nil || back.String() != j.String() {
			t.Fatalf("ParseJoin(%q): %+v does not encode back: %v", s, j, err)
		}
	})
}

// FuzzAPIToken: bearer tokens from the network. A token is refused with
// EUNAUTHORIZED, or names a valid name; only the token made is accepted
// by Authenticate.
func FuzzAPIToken(f *testing.F) {
	file, err := Open(f.TempDir() + "/" + FileName)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1800000000, 0)
	made, err := file.CreateAPI("ops", vipsmart.RoleAdmin, 0, now)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{made.Token, APIPrefix + "ops_", APIPrefix + "ops_" + strings.Repeat("A", 43), APIPrefix + "_x", JoinPrefix + "AA", made.Token + "A"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAPI(s)
		if err != nil {
			if !vipsmart.IsCode(err, vipsmart.EUNAUTHORIZED) {
				t.Fatalf("ParseAPI(%q): %v", s, err)
			}
		} else if vipsmart.ValidateName("name", a.Name) != nil || len(a.Secret) != apiSecretLen {
			t.Fatalf("ParseAPI(%q) = %+v", s, a)
		}
		tok, err := file.Authenticate(s, now)
		if err == nil && (s != made.Token || tok.Name != "ops") {
			t.Fatalf("Authenticate accepted %q as %+v", s, tok)
		}
		if err != nil && !vipsmart.IsCode(err, vipsmart.EUNAUTHORIZED) {
			t.Fatalf("Authenticate(%q): %v", s, err)
		}
	})
}
