package netlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/announce/internal/annset"
)

// Defaults of Options.
const (
	DefaultGARPCount    = 3
	DefaultGARPInterval = 100 * time.Millisecond
)

// Options configure an Announcer.
type Options struct {
	// DefaultInterface is where an address is bound when its Announcement
	// names no Interface. If both are empty, Set refuses the address.
	DefaultInterface string
	// GARPCount is how many gratuitous ARPs / unsolicited NAs are sent
	// when an address is newly bound (default 3; negative: none).
	GARPCount int
	// GARPInterval is the pause between two of them (default 100ms).
	GARPInterval time.Duration
	// Now stamps Since (default time.Now).
	Now func() time.Time
	// Logger gets the changes, at info, and the failures of GARP/NA, at
	// warn (default: discard).
	Logger *slog.Logger
}

// Announcer binds addresses on interfaces. It is safe for concurrent use.
type Announcer struct {
	os   OS
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	want      map[netip.Addr]vipsmart.Announcement // the last desired set (bindable kinds)
	owned     map[netip.Addr]string                // what this process added: address -> link
	announced map[netip.Addr]vipsmart.Announced
	// noLink are the wanted addresses with no interface to go on;
	// failed the wanted addresses that could not be bound (both listed
	// by Announced as failed).
	noLink map[netip.Addr]vipsmart.Announced
	failed map[netip.Addr]vipsmart.Announced
	bursts map[netip.Addr]context.CancelFunc
	closed bool
	// lifetime gives the kernel lifetime of an address (lifetime.go).
	lifetime func(vipsmart.Announcement) time.Duration

	wg sync.WaitGroup // the bursts in flight
}

var _ vipsmart.Announcer = (*Announcer)(nil)

// New returns an Announcer that works through os. It changes nothing until
// the first Set (or Reconcile).
func New(os OS, opts Options) *Announcer {
	if opts.GARPCount == 0 {
		opts.GARPCount = DefaultGARPCount
	}
	if opts.GARPInterval <= 0 {
		opts.GARPInterval = DefaultGARPInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Announcer{
		os: os, opts: opts, log: log.With("announcer", "netlink"),
		want:      map[netip.Addr]vipsmart.Announcement{},
		owned:     map[netip.Addr]string{},
		announced: map[netip.Addr]vipsmart.Announced{},
		noLink:    map[netip.Addr]vipsmart.Announced{},
		failed:    map[netip.Addr]vipsmart.Announced{},
		bursts:    map[netip.Addr]context.CancelFunc{},
	}
}

// noInterface is the reason an address without an interface is refused.
func noInterface(ip netip.Addr) string {
	return fmt.Sprintf("no interface for %s: give `vipsmart vip add --interface IF` or `vipsmart serve --netlink-interface IF`", ip)
}

// Preflight implements vipsmart.Preflighter: it says why d could not be
// bound (no interface for it, or an interface that does not exist),
// without changing anything.
func (a *Announcer) Preflight(d vipsmart.Announcement) error {
	if d.Kind == vipsmart.AnnounceGIPStandby {
		return nil
	}
	link := d.Interface
	if link == "" {
		link = a.opts.DefaultInterface
	}
	if link == "" {
		return vipsmart.Errorf(vipsmart.EINVALID, "interface", "the netlink announcer cannot bind %s: %s", d.Addr, noInterface(d.Addr))
	}
	ok, err := a.os.HasLink(link)
	if err != nil {
		return vipsmart.Errorf(vipsmart.EINTERNAL, "interface", "the netlink announcer cannot check interface %s for %s: %v", link, d.Addr, err)
	}
	if !ok {
		return vipsmart.Errorf(vipsmart.EINVALID, "interface", "the netlink announcer cannot bind %s: interface %s does not exist", d.Addr, link)
	}
	return nil
}

// Set binds the vip and gip-active addresses of desired, each on its
// Interface or the default interface, and removes the addresses of ours
// that are not desired (see the package doc). gip-standby entries are
// ignored. Entries that cannot be bound (no interface, a kernel error) are
// reported in the error, the others are applied all the same.
func (a *Announcer) Set(ctx context.Context, desired []vipsmart.Announcement) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	all, err := annset.Normalize(desired)
	errs := []error{err}
	want := make(map[netip.Addr]vipsmart.Announcement, len(all))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return vipsmart.Errorf(vipsmart.ESTATE, "", "the netlink announcer is closed")
	}
	now := a.opts.Now()
	noLink := map[netip.Addr]vipsmart.Announced{}
	for _, ip := range sortedAddrs(all) {
		d := all[ip]
		if d.Kind == vipsmart.AnnounceGIPStandby {
			continue // netlink never binds a standby
		}
		if d.Interface == "" {
			d.Interface = a.opts.DefaultInterface
		}
		if d.Interface == "" {
			errs = append(errs, vipsmart.Errorf(vipsmart.EINVALID, "interface",
				"cannot bind %s (%s %q): %s", ip, d.Kind, d.Name, noInterface(ip)))
			since := now
			if old, ok := a.noLink[ip]; ok && old.Announcement == d {
				since = old.Since
			}
			noLink[ip] = vipsmart.Announced{Announcement: d, Via: "netlink", Since: since, State: vipsmart.AnnounceFailed, Reason: noInterface(ip)}
			continue
		}
		want[ip] = d
	}
	a.noLink = noLink
	a.want = want
	errs = append(errs, a.apply())
	return errors.Join(errs...)
}

// Reconcile applies the last desired set again (none before the first
// Set): it binds what went missing and removes addresses of ours that are
// not desired, such as those a crashed run left. Set does the same, so a
// daemon that calls Set at start needs no Reconcile.
func (a *Announcer) Reconcile(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return vipsmart.Errorf(vipsmart.ESTATE, "", "the netlink announcer is closed")
	}
	return a.apply()
}

// Reannounce sends a new burst of gratuitous ARPs / unsolicited neighbour
// advertisements for every address bound now, without changing anything.
// The daemon calls it when another DC becomes reachable again: during a
// partition that DC may have taken the address over and pointed the
// segment's ARP caches at itself, and when it lets go nothing else would
// point them back.
func (a *Announcer) Reannounce(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	for ip := range a.announced {
		link, ok := a.owned[ip]
		if !ok {
			link = a.want[ip].Interface
			if link == "" {
				link = a.opts.DefaultInterface
			}
		}
		if link != "" {
			a.startBurst(ip, link)
		}
	}
	return nil
}

// Announced returns the wanted addresses, sorted by address: those bound
// (state announced, Via "netlink <interface>"), and those that could not
// be (state failed, with the reason: no interface for the address, or the
// kernel's error).
func (a *Announcer) Announced() []vipsmart.Announced {
	a.mu.Lock()
	defer a.mu.Unlock()
	all := make(map[netip.Addr]vipsmart.Announced, len(a.announced)+len(a.failed)+len(a.noLink))
	for _, m := range []map[netip.Addr]vipsmart.Announced{a.noLink, a.failed, a.announced} {
		for ip, x := range m {
			all[ip] = x
		}
	}
	return annset.Sorted(all)
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Close removes every address of ours and waits for the bursts in flight.
// Later Sets fail.
func (a *Announcer) Close(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.want = map[netip.Addr]vipsmart.Announcement{}
	a.noLink = map[netip.Addr]vipsmart.Announced{}
	err := a.apply()
	for ip, cancel := range a.bursts {
		cancel()
		delete(a.bursts, ip)
	}
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	return err
}

// ours reports whether x is an address this announcer added.
func (a *Announcer) ours(x Addr) bool {
	return marked(x) || (a.owned[x.Prefix.Addr()] == x.Link && x.Prefix.IsSingleIP())
}

// apply makes the kernel match a.want. a.mu is held.
func (a *Announcer) apply() error {
	addrs, err := a.os.Addrs("")
	if err != nil {
		return &vipsmart.Error{Code: vipsmart.EINTERNAL, Message: "listing the addresses of the host", Err: err}
	}
	var errs []error
	type key struct {
		ip   netip.Addr
		link string
	}
	present := map[key]Addr{} // an address of ours wins over a foreign one on the same link
	for _, x := range addrs {
		x.Prefix = netip.PrefixFrom(x.Prefix.Addr().WithZone(""), x.Prefix.Bits())
		k := key{x.Prefix.Addr(), x.Link}
		if _, ok := present[k]; !ok || a.ours(x) {
			present[k] = x
		}
	}

	// Remove ours that are not wanted, or wanted on another link.
	for _, x := range addrs {
		ip := x.Prefix.Addr()
		if !a.ours(x) {
			continue
		}
		if w, ok := a.want[ip]; ok && w.Interface == x.Link {
			continue
		}
		a.stopBurst(ip)
		if err := a.os.DelAddr(x); err != nil {
			errs = append(errs, &vipsmart.Error{Code: vipsmart.EINTERNAL,
				Message: fmt.Sprintf("removing %s from %s", x.Prefix, x.Link), Err: err})
			continue
		}
		delete(present, key{ip, x.Link})
		if a.owned[ip] == x.Link {
			delete(a.owned, ip)
		}
		a.log.Info("address removed", "address", x.Prefix.String(), "interface", x.Link)
	}

	// Bind what is wanted and missing, in address order.
	ips := make([]netip.Addr, 0, len(a.want))
	for ip := range a.want {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	now := a.opts.Now()
	next := make(map[netip.Addr]vipsmart.Announced, len(ips))
	failed := map[netip.Addr]vipsmart.Announced{}
	for _, ip := range ips {
		w := a.want[ip]
		via := "netlink " + w.Interface
		newly := false
		if x, ok := present[key{ip, w.Interface}]; ok {
			if !a.ours(x) {
				if old, ok := a.announced[ip]; !ok || old.Via != via {
					a.log.Warn("address already on the interface, not ours: left as it is", "address", x.Prefix.String(), "interface", x.Link)
				}
			}
		} else {
			x := a.addrFor(w, w.Interface)
			x.ValidLft = a.lifetimeOf(w)
			if err := a.os.AddAddr(x); err != nil {
				e := &vipsmart.Error{Code: vipsmart.EINTERNAL,
					Message: fmt.Sprintf("binding %s (%s %q) on %s", x.Prefix, w.Kind, w.Name, w.Interface), Err: err}
				errs = append(errs, e)
				since := now
				if old, ok := a.failed[ip]; ok && old.Announcement == w && old.Reason == e.Error() {
					since = old.Since
				}
				failed[ip] = vipsmart.Announced{Announcement: w, Via: via, Since: since, State: vipsmart.AnnounceFailed, Reason: e.Error()}
				continue
			}
			a.owned[ip] = w.Interface
			newly = true
			a.log.Info("address bound", "address", x.Prefix.String(), "interface", x.Link, "kind", string(w.Kind), "name", w.Name)
			a.startBurst(ip, w.Interface)
		}
		since := now
		if old, ok := a.announced[ip]; ok && old.Via == via && !newly {
			since = old.Since
		}
		next[ip] = vipsmart.Announced{Announcement: w, Via: via, Since: since, State: vipsmart.AnnounceUp}
	}
	a.announced = next
	a.failed = failed
	return errors.Join(errs...)
}

// addrFor is the address this announcer binds for w on link.
func (a *Announcer) addrFor(w vipsmart.Announcement, link string) Addr {
	x := Addr{Link: link, Prefix: annset.HostPrefix(w.Addr), Proto: AddrProto}
	if w.Addr.Is4() {
		x.Label = labelFor(link)
	} else {
		x.Flags = IfaFlagNoDAD
	}
	return x
}

// startBurst announces ip on link: once now, the rest of the burst in the
// background. a.mu is held.
func (a *Announcer) startBurst(ip netip.Addr, link string) {
	a.stopBurst(ip)
	n := a.opts.GARPCount
	if n <= 0 {
		return
	}
	a.announce(ip, link)
	if n == 1 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.bursts[ip] = cancel
	a.wg.Add(1)
	interval := a.opts.GARPInterval
	go func() {
		defer a.wg.Done()
		defer cancel()
		t := time.NewTicker(interval)
		defer t.Stop()
		for i := 1; i < n; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			a.announce(ip, link)
		}
	}()
}

// stopBurst stops the burst of ip, if any. a.mu is held.
func (a *Announcer) stopBurst(ip netip.Addr) {
	if cancel, ok := a.bursts[ip]; ok {
		cancel()
		delete(a.bursts, ip)
	}
}

func (a *Announcer) announce(ip netip.Addr, link string) {
	if err := a.os.Announce(link, ip); err != nil {
		what := "gratuitous ARP"
		if ip.Is6() {
			what = "unsolicited neighbour advertisement"
		}
		a.log.Warn(what+" failed", "address", ip.String(), "interface", link, "err", err)
	}
}
