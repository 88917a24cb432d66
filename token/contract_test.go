package token_test

import (
	"path/filepath"
	"testing"

	"github.com/vipsmart/vipsmart/token"
	"github.com/vipsmart/vipsmart/token/tokentest"
)

// TestContract runs the token.Keeper contract against the file of a data
// directory (one process owns it: a and b are the same File).
func TestContract(t *testing.T) {
	tokentest.Run(t, func(t *testing.T) (token.Keeper, token.Keeper) {
		f, err := token.Open(filepath.Join(t.TempDir(), token.FileName))
		if err != nil {
			t.Fatal(err)
		}
		return f, f
	})
}
