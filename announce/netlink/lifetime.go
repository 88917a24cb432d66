package netlink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Address lifetimes: a VIP that moves between the nodes of a DC
// (docs/ha.md, "VIPs that move between nodes") is bound with a kernel
// lifetime (valid_lft, preferred_lft), which its holder refreshes after
// every renewal of its claim; a holder that can no longer act (killed,
// frozen) cannot remove the address, and the kernel then removes it by
// itself. The kernel counts lifetimes in whole seconds and checks them
// about once a second (net/ipv4/devinet.c, check_lifetime): an address
// with a lifetime of 1 s went 0.8 to 1.7 s (IPv4) and 1.0 to 2.1 s (IPv6)
// after its last refresh (measured; docs/ha.md).

// Replacer is an OS that can add an address or replace the one there
// (NLM_F_REPLACE), restarting its lifetime.
type Replacer interface {
	ReplaceAddr(a Addr) error
}

// SetLifetime makes the announcer bind the addresses for which f returns
// more than 0 with that lifetime, rounded up to whole seconds; Refresh
// restarts it. Call it before the first Set.
func (a *Announcer) SetLifetime(f func(vipsmart.Announcement) time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lifetime = f
}

// lifetimeOf returns the lifetime of w in seconds (0: permanent). a.mu is
// held.
func (a *Announcer) lifetimeOf(w vipsmart.Announcement) uint32 {
	if a.lifetime == nil {
		return 0
	}
	d := a.lifetime(w)
	if d <= 0 {
		return 0
	}
	return uint32((d + time.Second - 1) / time.Second)
}

// Refresh restarts the lifetime of every bound address that has one (and
// binds it again if the kernel already removed it). Without a Replacer OS
// it does nothing.
func (a *Announcer) Refresh(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, ok := a.os.(Replacer)
	if !ok {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	var errs []error
	for _, ip := range sortedAddrs(a.announced) {
		w, wanted := a.want[ip]
		link, owned := a.owned[ip]
		if !wanted || !owned {
			continue
		}
		lft := a.lifetimeOf(w)
		if lft == 0 {
			continue
		}
		x := a.addrFor(w, link)
		x.ValidLft = lft
		if err := r.ReplaceAddr(x); err != nil {
			errs = append(errs, fmt.Errorf("refreshing the lifetime of %s on %s: %w", x.Prefix, link, err))
		}
	}
	return errors.Join(errs...)
}

// AddrFor returns the kernel address this announcer binds for w (on its
// interface or the default one), false if it has no interface for it.
func (a *Announcer) AddrFor(w vipsmart.Announcement) (Addr, bool) {
	link := w.Interface
	if link == "" {
		link = a.opts.DefaultInterface
	}
	if link == "" {
		return Addr{}, false
	}
	return a.addrFor(w, link), true
}
