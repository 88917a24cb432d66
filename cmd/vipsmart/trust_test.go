package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "vs")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "sub", "v.sock")
	ln, err := listenSocket(path, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket: %v mode %v; want 0660", err, fi.Mode())
	}
	// A live socket is not taken over.
	if _, err := listenSocket(path, "", dir); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("second daemon on a live socket: %v", err)
	}
	// A stale one (left by a daemon that died) is replaced.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	for _, c := range []struct{ path, group, msg string }{
		{"/" + strings.Repeat("x", 120) + ".sock", "", "at most 107"},
		{filepath.Join(dir, "file"), "", "not a socket"},
		{"/proc/vipsmart-test/v.sock", "", "--socket"},
		{filepath.Join(dir, "g.sock"), "no-such-group-vipsmart", "--socket-group"},
	} {
		if _, err := listenSocket(c.path, c.group, dir); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("listenSocket(%s, %q): %v; want an error saying %q", c.path, c.group, err, c.msg)
		}
	}
	ln, err = listenSocket(path, "", dir)
	if err != nil {
		t.Fatalf("a stale socket is not replaced: %v", err)
	}
	ln.Close()
}
