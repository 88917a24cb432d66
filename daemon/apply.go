package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

var _ vipsmart.ApplyService = (*Daemon)(nil)

// Apply implements vipsmart.ApplyService (vipsmart apply and diff).
//
// On the loop, at once: compare the request with the current objects (and
// its resource version, if given, with the current one); refuse the whole
// request if its end state is inconsistent; add and change the VIPs
// (placements may name new VIPs, which every member checks in its lock);
// then propose every GIP change as one ApplyGIPs operation at the epoch
// the diff was computed at. When it commits, remove the VIPs to remove;
// when it fails, undo the VIP changes, so that a refused apply changes
// nothing anywhere.
func (d *Daemon) Apply(ctx context.Context, req vipsmart.ApplyRequest) (vipsmart.ApplyResult, error) {
	if err := req.Validate(); err != nil {
		return vipsmart.ApplyResult{}, err
	}
	var res vipsmart.ApplyResult
	var undo []func()
	var removals []string
	var opID string
	ch := make(chan error, 1)
	start := d.cfg.Now()
	// finish ends an apply that changed something, on the loop: the VIPs
	// to remove go once the GIP changes committed (or at once without
	// any), and what it returns goes into the result. With a federation
	// change it runs when the operation commits (onCommit), even if the
	// caller stopped waiting: the committed change is completed, not
	// left half done. It writes only its own variables (the caller may
	// have returned res meanwhile).
	type finishedApply struct {
		epoch   uint64
		version string
		err     error
	}
	var finished finishedApply
	finish := func() finishedApply {
		for _, name := range removals {
			if err := d.cfg.Store.DeleteVIP(context.WithoutCancel(ctx), name); err != nil {
				return finishedApply{err: err}
			}
			delete(d.vips, name)
		}
		if len(removals) > 0 {
			d.vipsChanged()
		}
		epoch := d.node.Status(d.cfg.Now()).Epoch
		d.event(vipsmart.EventFederation, fmt.Sprintf("applied %d added, %d changed, %d removed (VIPs and GIPs)%s%s", res.Added, res.Changed, res.Removed, opNote(opID), byNote(ctx)))
		return finishedApply{epoch: epoch, version: vipsmart.ResourceVersion(epoch, d.vipList())}
	}
	// done puts what finish returned into res.
	done := func(f finishedApply) (vipsmart.ApplyResult, error) {
		if f.err != nil {
			return res, f.err
		}
		res.Applied, res.Epoch, res.NewVersion = true, f.epoch, f.version
		return res, nil
	}
	err := d.call(ctx, func() error {
		cur := d.vipList()
		gips := d.node.GIPs()
		epoch := d.node.Status(d.cfg.Now()).Epoch
		res.ResourceVersion = vipsmart.ResourceVersion(epoch, cur)
		res.Epoch = epoch
		if req.ResourceVersion != "" && req.ResourceVersion != res.ResourceVersion {
			return d.versionConflict(req.ResourceVersion, epoch, res.ResourceVersion)
		}
		res.Changes = vipsmart.DiffObjects(cur, gips, req.VIPs, req.GIPs, req.Prune)
		res.Added, res.Changed, res.Removed = vipsmart.CountChanges(res.Changes)
		if res.Changes == nil {
			res.Changes = []vipsmart.ObjectChange{}
		}
		if req.DryRun || len(res.Changes) == 0 {
			return nil
		}
		if err := d.node.LocalChangeAllowed(); err != nil {
			if st := d.node.Status(d.cfg.Now()); st.Status == vipsmart.StatusCandidateReview {
				// Locked by another operation for a few seconds: busy,
				// so that the client retries (and then finds the
				// objects changed, if that operation committed).
				return vipsmart.Errorf(vipsmart.EBUSY, "", "federation busy, retry: %s", asError(err).Message)
			}
			return err
		}
		put := make([]vipsmart.GIP, 0, len(res.Changes)) // most changes of a large apply are GIPs
		var del []string
		var vipAdd, vipChange []vipsmart.VIP
		for _, c := range res.Changes {
			switch {
			case c.Kind == vipsmart.KindGIP && c.Action == vipsmart.ActionRemove:
				del = append(del, c.Name)
			case c.Kind == vipsmart.KindGIP:
				put = append(put, *c.GIP)
			case c.Action == vipsmart.ActionAdd:
				vipAdd = append(vipAdd, *c.VIP)
			case c.Action == vipsmart.ActionChange:
				vipChange = append(vipChange, *c.VIP)
			default:
				removals = append(removals, c.Name)
			}
		}
		if len(vipAdd)+len(vipChange) > 0 {
			if err := d.refuseOnWitness(); err != nil {
				return err // as vip add
			}
		}
		if len(put)+len(del) > 0 && d.node.Status(d.cfg.Now()).Status == vipsmart.StatusStandalone {
			return vipsmart.Errorf(vipsmart.ESTATE, "gips", "%s is standalone: it is in no federation, so it applies VIPs only, and these files change %d GIPs; nothing was changed: apply the files of its VIPs alone, or federate it first (vipsmart dc add)", d.cfg.Self.Name, len(put)+len(del))
		}
		if err := d.checkEndState(gips, put, del, vipAdd, vipChange, removals); err != nil {
			return err
		}
		now := d.cfg.Now().UTC().Truncate(time.Millisecond)
		for _, c := range res.Changes {
			if c.VIP != nil && c.Action != vipsmart.ActionRemove {
				c.VIP.Created = now // the answer shows the VIP as written
			}
		}
		// The VIPs that change, and the VIPs to remove whose address
		// a VIP of the files takes (a VIP renamed with --prune), are
		// taken out first, then the changed and added VIPs written:
		// so that VIPs may swap or pass on their addresses in one
		// apply. Every step is undone if a later one fails.
		early := earlyRemovals(d.vips, removals, vipAdd, vipChange)
		if len(early) > 0 {
			removals = slices.DeleteFunc(removals, func(n string) bool { return slices.Contains(early, n) })
		}
		for _, name := range append(early, vipNames(vipChange)...) {
			old := d.vips[name]
			if err := d.cfg.Store.DeleteVIP(ctx, name); err != nil {
				d.undo(undo)
				return err
			}
			delete(d.vips, name)
			undo = append(undo, func() { d.restoreVIP(old) })
		}
		for _, v := range append(vipChange, vipAdd...) {
			v.Created = now
			if err := d.cfg.Store.CreateVIP(ctx, v); err != nil {
				d.undo(undo)
				return err
			}
			d.vips[v.Name] = v
			name := v.Name
			undo = append(undo, func() { d.dropVIP(name) })
		}
		if len(vipAdd)+len(vipChange)+len(early) > 0 {
			d.vipsChanged()
		}
		if len(put)+len(del) == 0 {
			return nil
		}
		id, err := d.node.Propose(d.cfg.Now(), federation.Proposal{Kind: federation.ApplyGIPs, Batch: &federation.Batch{Put: put, Delete: del}, ExpectEpoch: epoch, By: askedBy(ctx)})
		if err != nil {
			d.undo(undo)
			return err
		}
		opID = id
		d.waiters[id] = ch
		if d.onCommit == nil {
			d.onCommit = map[string]func(error){}
		}
		// Either end is completed on the loop, whether or not the caller
		// still waits (it may have given up: --timeout, a client gone):
		// a failed batch's VIP changes are undone here, so that they never
		// outlive it.
		d.onCommit[id] = func(err error) {
			if err != nil {
				d.undo(undo)
				return
			}
			finished = finish()
		}
		return nil
	})
	if err != nil || req.DryRun || len(res.Changes) == 0 {
		return res, err
	}
	if opID != "" {
		var perr error
		select {
		case perr = <-ch:
		case <-d.stopped:
			return res, errStopped
		case <-ctx.Done():
			return res, &vipsmart.Error{Code: vipsmart.ETIMEOUT, Message: fmt.Sprintf("operation %s is still running: see `vipsmart status` and `vipsmart events`; run vipsmart diff once it ended", opID), Err: ctx.Err()}
		}
		d.metrics.operation(federation.Proposal{Kind: federation.ApplyGIPs}, start, d.cfg.Now, &perr)
		if perr != nil {
			return res, perr // its VIP changes were undone on the loop (onCommit)
		}
		res.OpID = opID
		// finish ran on the loop when the operation committed, before
		// ch was told (processReady): the loop's evaluation of the
		// 10,000 GIPs just committed does not delay the answer.
		return done(finished)
	}
	err = d.call(context.WithoutCancel(ctx), func() error { finished = finish(); return nil })
	if err != nil {
		return res, err
	}
	return done(finished)
}

// sendTimeout bounds one delivery of m: SendTimeout, or for a message
// carrying a whole batch (an apply-gips lock: megabytes that the peer
// decodes and checks before it answers) four times that, or 9/10 of the
// review TTL if longer (the batch's phase timeout: batch.go).
func (d *Daemon) sendTimeout(m federation.Message) time.Duration {
	if m.Change != nil && m.Change.Batch != nil && len(m.Change.Batch.Put)+len(m.Change.Batch.Delete) > 0 {
		ttl := d.cfg.Federation.ReviewTTL
		if ttl == 0 {
			ttl = federation.DefaultReviewTTL
		}
		return max(4*d.cfg.SendTimeout, ttl*9/10)
	}
	return d.cfg.SendTimeout
}

// largeUpdate is the number of GIPs written at once above which the
// daemon hands the memory of the transient copies back to the OS (a batch
// of 10,000 GIPs decodes, checks, persists and clones them several times).
const largeUpdate = 1000

// freeAfter is how long after a large update the daemon does so. Not at
// once: at the commit of a batch every member of the federation works on
// its share, and where several DCs share a host's cores (a lab, the demo,
// the benchmarks) a forced collection in each at that moment delayed the
// last member by about 0.25 s of the 1.4 s a 10,000-GIP batch takes on
// 10 DCs (BENCHMARKS.md, "hugeheap"). By then Go's own scavenger has
// returned part of it; what is left goes back within seconds.
const freeAfter = 3 * time.Second

// afterLargeUpdate schedules the collection that hands the memory back,
// freeAfter from now, on a goroutine of its own: a forced collection of a
// heap holding 10,000 GIPs takes a while, and the loop must go on sending
// heartbeats meanwhile (a loop stalled past the detection window makes
// its peers see it unreachable). At most one is scheduled or runs at a
// time; updates meanwhile are covered by it.
func (d *Daemon) afterLargeUpdate(u *vipsmart.FederationUpdate) {
	if len(u.PutGIPs)+len(u.DeleteGIPs) >= largeUpdate && freeing.CompareAndSwap(false, true) {
		time.AfterFunc(freeAfter, func() {
			defer freeing.Store(false)
			debug.FreeOSMemory()
		})
	}
}

// freeing is set while an afterLargeUpdate collection is scheduled or
// runs.
var freeing atomic.Bool

func opNote(id string) string {
	if id == "" {
		return ""
	}
	return " by operation " + id
}

// versionConflict explains why a request's resource version is not the
// current one.
func (d *Daemon) versionConflict(want string, epoch uint64, have string) error {
	we, _, err := vipsmart.ParseResourceVersion(want)
	if err != nil {
		return err
	}
	why := "the VIPs of " + d.cfg.Self.Name + " changed"
	if we != epoch {
		why = fmt.Sprintf("the federation went from epoch %d to %d", we, epoch)
	}
	return vipsmart.Errorf(vipsmart.ECONFLICT, "resource_version", "the objects changed since the diff this apply is based on (resource version %s, now %s: %s); nothing was changed: run vipsmart diff again and apply what it shows", want, have, why)
}

// checkEndState refuses a request whose end state the federation would
// refuse piecemeal: a VIP removed while a GIP placement on this DC still
// names it, or an address both a VIP and a GIP of this DC.
func (d *Daemon) checkEndState(gips []vipsmart.GIP, put []vipsmart.GIP, del []string, vipAdd, vipChange []vipsmart.VIP, removals []string) error {
	if len(d.vips)+len(vipAdd)+len(vipChange) == 0 && !namesOwnVIP(gips, d.cfg.Self.Name) && !namesOwnVIP(put, d.cfg.Self.Name) {
		// Nothing below can refuse: no VIP of this DC to collide with,
		// and no placement here naming one (the common case of an
		// apply of GIPs alone, without a map of 10,000 GIPs for it).
		return nil
	}
	final := make(map[string]vipsmart.GIP, len(gips))
	for _, g := range gips {
		final[g.Name] = g
	}
	for _, n := range del {
		delete(final, n)
	}
	for _, g := range put {
		final[g.Name] = g
	}
	vipAddr := map[string]string{}
	for name, v := range d.vips {
		vipAddr[name] = v.Address.String()
	}
	for _, v := range append(append([]vipsmart.VIP{}, vipAdd...), vipChange...) {
		vipAddr[v.Name] = v.Address.String()
	}
	gone := map[string]bool{}
	for _, n := range removals {
		gone[n] = true
		delete(vipAddr, n)
	}
	self := d.cfg.Self.Name
	addrs := map[string]string{}
	names := make([]string, 0, len(vipAddr))
	for name := range vipAddr {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		a := vipAddr[name]
		if other, ok := addrs[a]; ok {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "vips", "VIP %s would have address %s, which VIP %s of %s has too: give each address once (change or remove VIP %s in the same files, with --prune to remove it)", name, a, other, self, other)
		}
		addrs[a] = name
	}
	for _, g := range final {
		for _, p := range g.Placements {
			if p.DC == self && p.VIP != "" && gone[p.VIP] {
				return vipsmart.Errorf(vipsmart.ECONFLICT, "vips", "VIP %s would be removed while GIP %s still names it in its placement in %s: keep the VIP or change the GIP's placement in the same files", p.VIP, g.Name, self)
			}
			if p.DC == self && p.VIP != "" {
				if _, ok := vipAddr[p.VIP]; !ok {
					return vipsmart.Errorf(vipsmart.EINVALID, "gips", "GIP %s names VIP %s in its placement in %s, which has no such VIP: add the VIP to the files or leave the placement's vip empty", g.Name, p.VIP, self)
				}
			}
		}
		if v, ok := addrs[g.Address.String()]; ok {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "gips", "GIP %s has address %s, which VIP %s of %s has too: give each address once", g.Name, g.Address, v, self)
		}
	}
	return nil
}

// namesOwnVIP reports whether a placement of one of gs on DC self names a
// VIP.
func namesOwnVIP(gs []vipsmart.GIP, self string) bool {
	for _, g := range gs {
		for _, p := range g.Placements {
			if p.DC == self && p.VIP != "" {
				return true
			}
		}
	}
	return false
}

// earlyRemovals returns the VIPs of removals whose address a VIP of
// vipAdd or vipChange takes: they must go before those are written.
func earlyRemovals(cur map[string]vipsmart.VIP, removals []string, vipAdd, vipChange []vipsmart.VIP) []string {
	if len(removals) == 0 {
		return nil
	}
	taken := map[netip.Addr]bool{}
	for _, v := range append(slices.Clip(vipAdd), vipChange...) {
		taken[v.Address] = true
	}
	var out []string
	for _, n := range removals {
		if taken[cur[n].Address] {
			out = append(out, n)
		}
	}
	return out
}

func vipNames(vs []vipsmart.VIP) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

// restoreVIP puts back a VIP an apply took out (undo).
func (d *Daemon) restoreVIP(v vipsmart.VIP) {
	if err := d.cfg.Store.CreateVIP(context.Background(), v); err != nil {
		d.log.Error("apply: undoing a VIP removed or changed", "vip", v.Name, "err", err)
		return
	}
	d.vips[v.Name] = v
}

func (d *Daemon) dropVIP(name string) {
	if err := d.cfg.Store.DeleteVIP(context.Background(), name); err != nil {
		d.log.Error("apply: undoing a VIP added", "vip", name, "err", err)
	}
	delete(d.vips, name)
}

// undo reverts the VIP changes of a failed apply, newest first.
func (d *Daemon) undo(fs []func()) {
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	if len(fs) > 0 {
		d.vipsChanged()
	}
}

func (d *Daemon) vipList() []vipsmart.VIP {
	out := make([]vipsmart.VIP, 0, len(d.vips))
	for _, v := range d.vips {
		out = append(out, v)
	}
	return out
}
