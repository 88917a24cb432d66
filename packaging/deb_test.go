// Package packaging holds the files of vipsmart's packages (the systemd
// unit, the nfpm configuration of the .deb, the container image) and the
// test that builds the .deb, installs it on this machine and checks its
// unit.
package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestDebInstallsAndUnitVerifies builds the .deb with the committed
// command (packaging/build-deb.sh), installs it with dpkg -i, checks what
// it installed and that `systemd-analyze verify` finds nothing to say about
// the unit, then purges it.
func TestDebInstallsAndUnitVerifies(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: building the .deb takes a minute")
	}
	if os.Geteuid() != 0 {
		t.Skip("installing a .deb needs root (CI runs as root)")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "systemd-analyze", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the .deb cannot be built and checked here", tool)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "vipsmart").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Skip("a vipsmart package is already installed on this machine: not replacing it")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	// The build flags of the tests' own builds (so the build cache
	// serves), with a fixed version to check.
	cmd := exec.Command(filepath.Join(root, "packaging", "build-deb.sh"))
	cmd.Env = append(os.Environ(), "BUILDFLAGS=", "CGO_ENABLED="+goEnv(t, "CGO_ENABLED"), "VERSION=1.2.3~test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("packaging/build-deb.sh: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(root, "dist", "vipsmart_1.2.3~test_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("build-deb.sh made %v\n%s", debs, out)
	}
	deb := debs[0]
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "vipsmart").CombinedOutput(); err != nil {
			t.Errorf("dpkg --purge vipsmart: %v\n%s", err, out)
		}
		if _, err := os.Stat("/usr/bin/vipsmart"); err == nil {
			t.Errorf("/usr/bin/vipsmart is still there after the purge")
		}
		os.Remove(deb)
	})
	run(t, "dpkg", "-i", deb)

	if v := run(t, "/usr/bin/vipsmart", "--version"); !strings.HasPrefix(v, "vipsmart 1.2.3~test (commit ") {
		t.Errorf("installed vipsmart --version: %q", v)
	}
	for _, f := range []string{"/lib/systemd/system/vipsmart.service", "/etc/vipsmart/vipsmart.yaml",
		"/usr/lib/sysusers.d/vipsmart.conf", "/usr/share/doc/vipsmart/README.md", "/usr/share/bash-completion/completions/vipsmart"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the package did not install %s: %v", f, err)
		}
	}
	if conf := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "vipsmart"); !strings.Contains(conf, "/etc/vipsmart/vipsmart.yaml") {
		t.Errorf("/etc/vipsmart/vipsmart.yaml is not a conffile: %q", conf)
	}
	if out, err := exec.Command("getent", "passwd", "vipsmart").Output(); err != nil || !strings.HasPrefix(string(out), "vipsmart:") {
		t.Errorf("no vipsmart system user after install: %v %s", err, out)
	}
	unit, err := os.ReadFile("/lib/systemd/system/vipsmart.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID",
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE",
		"AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes", "ProtectSystem=strict"} {
		if !bytes.Contains(unit, []byte("\n"+line+"\n")) {
			t.Errorf("the unit lacks %q", line)
		}
	}
	// verify prints every problem (unknown keys, missing binaries, bad
	// values) and may still exit 0: clean means no output at all.
	vcmd := exec.Command("systemd-analyze", "verify", "/lib/systemd/system/vipsmart.service")
	vout, err := vcmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(vout)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, vout)
	}
}

func goEnv(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
