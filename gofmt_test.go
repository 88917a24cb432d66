package vipsmart

import (
	"os/exec"
	"strings"
	"testing"
)

// TestGofmt fails when gofmt would change any Go file of the module.
func TestGofmt(t *testing.T) {
	out, err := exec.Command("gofmt", "-l", ".").CombinedOutput()
	if err != nil {
		t.Skipf("gofmt not runnable: %v %s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Fatalf("gofmt would change these files (run gofmt -w):\n%s", s)
	}
}
