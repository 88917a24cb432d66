package daemon

import (
	"fmt"
	"slices"
	"sync"

	"github.com/vipsmart/vipsmart"
)

// healthQueue carries VIP health changes from the checker's goroutines to
// the loop without ever blocking them (the checker may be waiting for them
// inside Set, called from the loop).
type healthQueue struct {
	mu      sync.Mutex
	changes []healthChange
	notify  chan struct{}
}

type healthChange struct {
	name    string
	state   vipsmart.VIPState
	lastErr string
}

func newHealthQueue() *healthQueue { return &healthQueue{notify: make(chan struct{}, 1)} }

func (q *healthQueue) push(name string, st vipsmart.VIPState, lastErr string) {
	q.mu.Lock()
	q.changes = append(q.changes, healthChange{name, st, lastErr})
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *healthQueue) drain() []healthChange {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.changes
	q.changes = nil
	return c
}

// vipState is the health of a local VIP: up without a check, else what the
// checker last decided.
func (d *Daemon) vipState(name string) (vipsmart.VIPState, string) {
	v, ok := d.vips[name]
	if !ok {
		return vipsmart.VIPDown, "no such VIP"
	}
	if v.Check == nil {
		return vipsmart.VIPUp, ""
	}
	return d.checker.State(name)
}

// onHealthChanges records VIP health changes as events, on the loop.
func (d *Daemon) onHealthChanges() {
	d.healthVersion++
	for _, c := range d.health.drain() {
		if _, ok := d.vips[c.name]; !ok {
			continue
		}
		msg := fmt.Sprintf("VIP %s is %s", c.name, c.state)
		if c.lastErr != "" && c.state != vipsmart.VIPUp {
			msg += ": " + c.lastErr
		}
		d.event(vipsmart.EventHealth, msg)
	}
	d.node.SetLocalReport(d.localReport())
	d.updateActive()
}

// setChecks hands the checker the current VIP set (declarative).
func (d *Daemon) setChecks() {
	vs := make([]vipsmart.VIP, 0, len(d.vips))
	for _, v := range d.vips {
		vs = append(vs, v)
	}
	d.checker.Set(vs)
}

// localReport is what this DC tells the others in its heartbeats: its VIPs
// that are not up, and the GIPs it holds: every GIP without preemption it
// is active for (so that every DC agrees where such a GIP stays), and every
// failover GIP it is active for in place of a better placement (so that,
// when a partition heals, the better DC learns that it was taken over and
// re-announces).
func (d *Daemon) localReport() federationReport {
	var r federationReport
	for name := range d.vips {
		st, _ := d.vipState(name)
		if st != vipsmart.VIPUp {
			r.VIPsDown = append(r.VIPsDown, name)
		}
		if st == vipsmart.VIPUnknown {
			r.VIPsUnknown = append(r.VIPsUnknown, name)
		}
	}
	for g := range d.reported {
		r.Holding = append(r.Holding, g)
	}
	slices.Sort(r.VIPsDown)
	slices.Sort(r.VIPsUnknown)
	slices.Sort(r.Holding)
	return r
}
