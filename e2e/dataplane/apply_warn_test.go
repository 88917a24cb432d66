package dataplane

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestApplyNoInterfaceWarns: with the netlink announcer and no
// --netlink-interface, apply of a VIP without an interface warns at once
// that it cannot be announced, as vip add does (apply said nothing; the
// failure showed only later in status and vip list).
func TestApplyNoInterfaceWarns(t *testing.T) {
	need(t)
	x := newLANLab(t)
	ns := x.host("dc1", 1)
	d := newDC(t, "dc-1", ns, "10.77.0.1", "--announcer", "netlink")
	d.start()
	const addr = "10.77.0.61"
	f := filepath.Join(t.TempDir(), "vips.yaml")
	if err := os.WriteFile(f, []byte("kind: VIP\nname: web\naddress: "+addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := d.cli("apply", "-f", f)
	if !strings.Contains(out, "warning: VIP web "+addr+": ") || !strings.Contains(out, "no interface for "+addr) || !strings.Contains(out, "applied") {
		t.Fatalf("apply did not warn:\n%s", out)
	}
	// Applying it again changes nothing and warns no more.
	if out := d.cli("apply", "-f", f); strings.Contains(out, "warning") || !strings.Contains(out, "nothing to change") {
		t.Fatalf("second apply:\n%s", out)
	}
}
