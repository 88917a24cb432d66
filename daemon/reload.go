package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// Reload is what a configuration reload (SIGHUP) hands a running daemon.
type Reload struct {
	// Federation, if set, carries the new protocol timers (heartbeat
	// interval and misses, invite and review TTLs, phase timeout; see
	// federation.Node.SetTimers). The loop's tick follows the heartbeat
	// interval.
	Federation *federation.Config
	// Reannounce hands the announcer the desired set again at the next
	// tick (after its options changed).
	Reannounce bool
	// Changed names the settings the reload changed; NeedRestart those
	// that changed in the configuration but take effect only at the next
	// start; Failed those it could not apply (with the reason). All go
	// into one event of kind config.
	Changed, NeedRestart, Failed []string
}

// Reload applies r on the loop and records it in the event log.
func (d *Daemon) Reload(ctx context.Context, r Reload) error {
	return d.call(ctx, func() error {
		if r.Federation != nil {
			d.node.SetTimers(*r.Federation)
			hb := d.node.Timers().HeartbeatInterval
			tick := max(min(hb/4, 50*time.Millisecond), time.Millisecond)
			if tick != d.cfg.TickInterval && d.ticker != nil {
				d.cfg.TickInterval = tick
				d.ticker.Reset(tick)
			}
		}
		if r.Reannounce {
			d.lastDesired = nil
			d.lastActiveKey = ""
		}
		var parts []string
		if len(r.Changed) > 0 {
			parts = append(parts, "changed "+strings.Join(r.Changed, ", "))
		}
		if len(r.NeedRestart) > 0 {
			parts = append(parts, "changed but not reloadable, kept until a restart: "+strings.Join(r.NeedRestart, ", "))
		}
		if len(r.Failed) > 0 {
			parts = append(parts, "failed: "+strings.Join(r.Failed, "; "))
		}
		head := "configuration reloaded: "
		switch {
		case len(r.Failed) > 0 && len(r.Changed) == 0:
			head = "configuration reload failed, nothing changed: "
		case len(parts) == 0:
			parts = append(parts, "nothing changed")
		}
		d.event(vipsmart.EventConfig, head+strings.Join(parts, "; "))
		return nil
	})
}

// Ready reports whether the daemon serves: the store is open and the state
// loaded (New did both), the loop runs, and the announcers have applied the
// desired set since the start without an error. The error says what is
// missing.
func (d *Daemon) Ready(ctx context.Context) error {
	return d.call(ctx, func() error {
		if d.lastAnnErr != "" {
			return fmt.Errorf("announcing failed: %s", d.lastAnnErr)
		}
		if d.lastActiveKey == "" {
			return errors.New("the announcers have not applied the desired set yet")
		}
		return nil
	})
}
