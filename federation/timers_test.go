package federation

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

func TestSetTimers(t *testing.T) {
	now := time.Unix(1000, 0)
	n, err := NewNode(Config{Self: vipsmart.DC{Name: "dc-1", Address: netip.MustParseAddr("127.0.0.1"), Port: 9610}}, nil, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Timers(); got.HeartbeatInterval != DefaultHeartbeatInterval || got.HeartbeatMisses != DefaultHeartbeatMisses {
		t.Fatalf("defaults: %+v", got)
	}
	n.SetTimers(Config{HeartbeatInterval: 50 * time.Millisecond, HeartbeatMisses: 5, InviteTTL: time.Minute})
	got := n.Timers()
	want := Config{InviteTTL: time.Minute, ReviewTTL: DefaultReviewTTL, HeartbeatInterval: 50 * time.Millisecond, HeartbeatMisses: 5, PhaseTimeout: DefaultPhaseTimeout}
	if got.InviteTTL != want.InviteTTL || got.ReviewTTL != want.ReviewTTL || got.HeartbeatInterval != want.HeartbeatInterval || got.HeartbeatMisses != want.HeartbeatMisses || got.PhaseTimeout != want.PhaseTimeout {
		t.Errorf("Timers() = %+v, want %+v", got, want)
	}
	if w := n.window(); w != 250*time.Millisecond {
		t.Errorf("detection window %s, want 250ms", w)
	}
}
