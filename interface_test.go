package vipsmart

import (
	"strings"
	"testing"
)

// TestValidateInterfaceControl: an interface name with a NUL, a control
// character (a terminal escape that vip list would print), an invisible
// direction override or bytes that are not UTF-8 is refused; names Linux
// takes and people write pass.
func TestValidateInterfaceControl(t *testing.T) {
	for _, s := range []string{"e\x00", "e\x1b[31m", "e\u202e", "e\x7f", "e\xff", "e\ufffd"} {
		if err := ValidateInterface("interface", s); err == nil || !strings.Contains(err.Error(), "no control or invisible characters") {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"eth0", "bond0.100", "enp3s0f1", "br-lan", "wg_0", "ethé"} {
		if err := ValidateInterface("interface", s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}
