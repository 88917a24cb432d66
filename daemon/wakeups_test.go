package daemon

import (
	"testing"
	"time"
)

func TestUntilAligned(t *testing.T) {
	p := 50 * time.Millisecond
	base := time.Unix(1795669147, 0) // a multiple of p
	for _, c := range []struct {
		after, want time.Duration
	}{
		{0, 0},
		{time.Millisecond, 49 * time.Millisecond},
		{49 * time.Millisecond, time.Millisecond},
		{50 * time.Millisecond, 0},
		{170 * time.Millisecond, 30 * time.Millisecond},
	} {
		if got := untilAligned(base.Add(c.after), p); got != c.want {
			t.Errorf("untilAligned(base+%s, %s) = %s; want %s", c.after, p, got, c.want)
		}
	}
	if got := untilAligned(base.Add(time.Millisecond), 0); got != 0 {
		t.Errorf("untilAligned with period 0 = %s; want 0", got)
	}
}
