package netlink

import (
	"time"

	"github.com/vipsmart/vipsmart"
)

// SetGARP changes the gratuitous ARP / unsolicited NA burst of the next
// takeovers (configuration reload): count announcements (0: none) interval
// apart (0: the default). Bursts already running finish as they started.
// A negative count or interval is refused with an error of code invalid.
func (a *Announcer) SetGARP(count int, interval time.Duration) error {
	if count < 0 {
		return vipsmart.Errorf(vipsmart.EINVALID, "garp-count", "--garp-count %d is negative: give 0 (none) or more", count)
	}
	if interval < 0 {
		return vipsmart.Errorf(vipsmart.EINVALID, "garp-interval", "--garp-interval %s is negative", interval)
	}
	if interval == 0 {
		interval = DefaultGARPInterval
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.opts.GARPCount = count
	a.opts.GARPInterval = interval
	return nil
}
