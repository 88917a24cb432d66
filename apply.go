package vipsmart

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ApplyService applies declarative configuration (vipsmart apply, diff):
// the daemon implements it, and httpapi.Client over HTTP.
type ApplyService interface {
	// Apply compares the objects of req with the DC's current ones and,
	// unless req.DryRun, makes them so: every GIP change as one federation
	// change (every member or none), VIP changes on the local DC. A
	// request that changes nothing makes no federation change.
	Apply(ctx context.Context, req ApplyRequest) (ApplyResult, error)
}

// ApplyRequest is the content of declarative files: the VIPs of the local
// DC and the federation's GIPs, each validated (Validate fills defaults).
// Prune also removes the objects that are not in the request. With
// ResourceVersion (as a previous ApplyResult gave it) the request is
// refused (ECONFLICT) if the DC's objects changed since.
type ApplyRequest struct {
	VIPs            []VIP  `json:"vips"`
	GIPs            []GIP  `json:"gips"`
	Prune           bool   `json:"prune,omitempty"`
	DryRun          bool   `json:"dry_run,omitempty"`
	ResourceVersion string `json:"resource_version,omitempty"`
}

// Validate checks every object and that names and addresses are unique,
// naming the object (vips[i], gips[i]) in the error's field.
func (r *ApplyRequest) Validate() error {
	// Names and addresses are looked up by value, and the words of a
	// message made only for an error: no string is built per object of
	// a request of 10,000 (the messages are those of uniq).
	vipNames := make(map[string]struct{}, len(r.VIPs))
	gipNames := make(map[string]struct{}, len(r.GIPs))
	addrs := make(map[netip.Addr]string, len(r.VIPs)+len(r.GIPs)) // who has it: "VIP web"
	check := func(names map[string]struct{}, kind, name string, a netip.Addr, where func() string) error {
		if _, ok := names[name]; ok {
			return uniq(map[string]string{name: ""}, kind+" "+name, name, where(), "name")
		}
		names[name] = struct{}{}
		if other, ok := addrs[a]; ok {
			return uniq(map[string]string{a.String(): other}, kind+" "+name, a.String(), where(), "address")
		}
		addrs[a] = kind + " " + name
		return nil
	}
	for i := range r.VIPs {
		v := &r.VIPs[i]
		where := func() string { return fmt.Sprintf("vips[%d]", i) }
		if err := v.Validate(); err != nil {
			return prefixErr(where(), err)
		}
		if err := check(vipNames, "VIP", v.Name, v.Address, where); err != nil {
			return err
		}
	}
	for i := range r.GIPs {
		g := &r.GIPs[i]
		where := func() string { return fmt.Sprintf("gips[%d]", i) }
		if err := g.Validate(); err != nil {
			return prefixErr(where(), err)
		}
		SortPlacements(g.Placements)
		if g.Placements == nil {
			g.Placements = []Placement{}
		}
		if err := check(gipNames, "GIP", g.Name, g.Address, where); err != nil {
			return err
		}
	}
	if r.ResourceVersion != "" {
		if _, _, err := ParseResourceVersion(r.ResourceVersion); err != nil {
			return err
		}
	}
	return nil
}

func uniq(seen map[string]string, what, key, where, field string) error {
	if other, ok := seen[key]; ok {
		if field == "name" {
			return Errorf(EINVALID, where+".name", "%s is given twice: give each object once", what)
		}
		return Errorf(EINVALID, where+"."+field, "%s has address %s, which %s has too: give each address once", what, key, other)
	}
	seen[key] = what
	return nil
}

func prefixErr(where string, err error) error {
	if e, ok := err.(*Error); ok {
		c := *e
		if c.Field != "" {
			c.Field = where + "." + c.Field
		} else {
			c.Field = where
		}
		return &c
	}
	return err
}

// ObjectChange is one change a request makes (or would make).
type ObjectChange struct {
	// Kind is vip or gip; Action add, change or remove.
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Action string `json:"action"`
	// Fields are the fields a change changes, each "field: old -> new".
	Fields []string `json:"fields,omitempty"`
	// VIP or GIP is the object as it will be (as it was, for a removal).
	VIP *VIP `json:"vip,omitempty"`
	GIP *GIP `json:"gip,omitempty"`
}

// The kinds and actions of an ObjectChange.
const (
	KindVIP      = "vip"
	KindGIP      = "gip"
	ActionAdd    = "add"
	ActionChange = "change"
	ActionRemove = "remove"
)

// ApplyResult is the outcome of Apply: the resource version the diff was
// computed at, the changes (sorted: VIPs then GIPs, by name), whether they
// were applied, and after an apply the federation operation (if any GIP
// changed) and the new resource version.
type ApplyResult struct {
	ResourceVersion string         `json:"resource_version"`
	Changes         []ObjectChange `json:"changes"`
	Added           int            `json:"added"`
	Changed         int            `json:"changed"`
	Removed         int            `json:"removed"`
	Applied         bool           `json:"applied"`
	OpID            string         `json:"op_id,omitempty"`
	Epoch           uint64         `json:"epoch"`
	NewVersion      string         `json:"new_resource_version,omitempty"`
}

// ResourceVersion identifies the state an apply is based on: the
// federation epoch (every federation change raises it) and a digest of the
// local DC's VIPs: "EPOCH-DIGEST", e.g. "7-3f9a2c1b0d4e5f60".
func ResourceVersion(epoch uint64, vips []VIP) string {
	vs := slices.Clone(vips)
	sort.Slice(vs, func(i, j int) bool { return vs[i].Name < vs[j].Name })
	h := sha256.New()
	for _, v := range vs {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%d\x00", v.Name, v.Address, v.Interface, checkString(v.Check), v.Created.UnixNano())
	}
	return strconv.FormatUint(epoch, 10) + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// ParseResourceVersion splits a resource version into its epoch and VIP
// digest.
func ParseResourceVersion(s string) (uint64, string, error) {
	e, d, ok := strings.Cut(s, "-")
	n, err := strconv.ParseUint(e, 10, 64)
	if !ok || err != nil || len(d) != 16 || strings.Trim(d, "0123456789abcdef") != "" {
		return 0, "", Errorf(EINVALID, "resource_version", "resource version %q is malformed: give it as vipsmart diff printed it (EPOCH-DIGEST, e.g. 7-3f9a2c1b0d4e5f60)", clip(s))
	}
	return n, d, nil
}

func checkString(c *Check) string {
	if c == nil {
		return "-"
	}
	return fmt.Sprintf("%s interval %s timeout %s rise %d fall %d expect %d", c.URL, time.Duration(c.Interval), time.Duration(c.Timeout), c.Rise, c.Fall, c.ExpectStatus)
}

// DiffObjects returns the changes that make (curVIPs, curGIPs) into the
// wanted objects: adds and changes; with prune also removals of current
// objects that are not wanted. Objects must be validated (defaults
// filled, placements sorted). It takes time linear in the objects.
func DiffObjects(curVIPs []VIP, curGIPs []GIP, wantVIPs []VIP, wantGIPs []GIP, prune bool) []ObjectChange {
	out := diffNamed(curVIPs, wantVIPs, prune, func(v VIP) string { return v.Name }, vipFields,
		func(v VIP, action string, fields []string) ObjectChange {
			return ObjectChange{Kind: KindVIP, Name: v.Name, Action: action, Fields: fields, VIP: &v}
		})
	out = append(out, diffNamed(curGIPs, wantGIPs, prune, func(g GIP) string { return g.Name }, gipFields,
		func(g GIP, action string, fields []string) ObjectChange {
			return ObjectChange{Kind: KindGIP, Name: g.Name, Action: action, Fields: fields, GIP: &g}
		})...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind == KindVIP
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func vipFields(a, b VIP) []string {
	var f []string
	if a.Address != b.Address {
		f = append(f, fmt.Sprintf("address: %s -> %s", a.Address, b.Address))
	}
	if a.Interface != b.Interface {
		f = append(f, fmt.Sprintf("interface: %s -> %s", dash(a.Interface), dash(b.Interface)))
	}
	if ca, cb := checkString(a.Check), checkString(b.Check); ca != cb {
		f = append(f, fmt.Sprintf("check: %s -> %s", ca, cb))
	}
	if na, nb := VIPNodesString(a.Nodes), VIPNodesString(b.Nodes); na != nb {
		f = append(f, fmt.Sprintf("nodes: %s -> %s", na, nb))
	}
	if a.Preempt != b.Preempt {
		f = append(f, fmt.Sprintf("preempt: %t -> %t", a.Preempt, b.Preempt))
	}
	return f
}

// diffNamed is DiffObjects for one kind of object, named by name: adds and
// changes (fields lists what differs) in the order of want, then, with
// prune, removals in the order of cur.
func diffNamed[T any](cur, want []T, prune bool, name func(T) string, fields func(old, new T) []string, change func(o T, action string, fields []string) ObjectChange) []ObjectChange {
	var out []ObjectChange
	have := make(map[string]T, len(cur))
	for _, o := range cur {
		have[name(o)] = o
	}
	wanted := make(map[string]bool, len(want))
	for _, o := range want {
		wanted[name(o)] = true
		old, ok := have[name(o)]
		if !ok {
			out = append(out, change(o, ActionAdd, nil))
			continue
		}
		if f := fields(old, o); len(f) > 0 {
			out = append(out, change(o, ActionChange, f))
		}
	}
	if prune {
		for _, o := range cur {
			if !wanted[name(o)] {
				out = append(out, change(o, ActionRemove, nil))
			}
		}
	}
	return out
}

func gipFields(a, b GIP) []string {
	var f []string
	if a.Address != b.Address {
		f = append(f, fmt.Sprintf("address: %s -> %s", a.Address, b.Address))
	}
	if a.Mode != b.Mode {
		f = append(f, fmt.Sprintf("mode: %s -> %s", a.Mode, b.Mode))
	}
	if a.Preempt != b.Preempt {
		f = append(f, fmt.Sprintf("preempt: %t -> %t", a.Preempt, b.Preempt))
	}
	if x, y := a.PartitionOrDefault(), b.PartitionOrDefault(); x != y {
		f = append(f, fmt.Sprintf("partition: %s -> %s", x, y))
	}
	pa, pb := slices.Clone(a.Placements), slices.Clone(b.Placements)
	SortPlacements(pa)
	SortPlacements(pb)
	if !slices.Equal(pa, pb) {
		f = append(f, fmt.Sprintf("placements: %s -> %s", PlacementsString(pa), PlacementsString(pb)))
	}
	return f
}

// PlacementsString formats placements as the CLI takes them:
// DC:PRIORITY[:VIP],... ("-" for none).
func PlacementsString(ps []Placement) string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		s := p.DC + ":" + strconv.Itoa(p.Priority)
		if p.VIP != "" {
			s += ":" + p.VIP
		}
		out = append(out, s)
	}
	return dash(strings.Join(out, ","))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// CountChanges returns how many changes add, change and remove.
func CountChanges(cs []ObjectChange) (add, change, remove int) {
	for _, c := range cs {
		switch c.Action {
		case ActionAdd:
			add++
		case ActionChange:
			change++
		case ActionRemove:
			remove++
		}
	}
	return
}
