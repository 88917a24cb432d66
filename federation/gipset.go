package federation

import (
	"maps"
	"slices"
	"strings"

	"github.com/vipsmart/vipsmart"
)

// largeChange is the number of GIPs written and deleted at once from which
// applyDecision takes putBatch's way.
const largeChange = 64

// putBatch applies a large change of the GIP set (a batch of vipsmart
// apply, the placements a removed DC leaves) the way putGIP and delGIP
// would, one GIP after another, with the same GIPs, Ready and GIPs
// after it; but when put is sorted by name, as a batch and gipChanges
// make it, and nothing else is waiting for Ready, it does so without the
// per-name bookkeeping: Ready hands put to the store as it is, and the
// sorted list (SortedGIPs) is merged from the one before instead of
// sorted again. It reports whether it did; if not, the caller goes one
// GIP at a time.
func (n *Node) putBatch(put []vipsmart.GIP, del []string) bool {
	if len(put)+len(del) < largeChange || n.replace || n.putSorted != nil || len(n.putGIPs)+len(n.delGIPs) > 0 {
		return false
	}
	for i := 1; i < len(put); i++ {
		if put[i-1].Name >= put[i].Name {
			return false // not sorted, or a name twice
		}
	}
	for _, name := range del {
		if _, ok := slices.BinarySearchFunc(put, name, cmpGIPName); ok {
			return false // written and deleted: one at a time, in order
		}
	}
	old := n.gipList                          // nil unless it is the sorted list of n.gips now
	if len(n.gips)+len(put) > 2*len(n.gips) { // growGIPs, without a set of names
		m := make(map[string]vipsmart.GIP, len(n.gips)+len(put))
		maps.Copy(m, n.gips)
		n.gips = m
	}
	for _, g := range put {
		n.gips[g.Name] = g // kept as it is handed over (putGIP)
	}
	for _, name := range del {
		delete(n.gips, name)
		n.delGIPs[name] = true
	}
	if len(put) > 0 {
		n.putSorted = put
	}
	n.dirty = true
	n.gipsChanged()
	if old != nil {
		n.gipList = mergeGIPs(old, put, del)
	}
	return true
}

// unsort moves the GIPs putBatch left in putSorted to putGIPs, before
// any other change of the GIP set.
func (n *Node) unsort() {
	if n.putSorted == nil {
		return
	}
	for _, g := range n.putSorted {
		n.putGIPs[g.Name] = true
	}
	n.putSorted = nil
}

// mergeGIPs returns the sorted list of old (sorted by name) with put
// (sorted by name) written over it and the GIPs named in del left out.
// With nothing before it is put itself: the lists are read-only.
func mergeGIPs(old, put []vipsmart.GIP, del []string) []vipsmart.GIP {
	if len(old) == 0 && len(del) == 0 {
		return put
	}
	var gone map[string]bool
	if len(del) > 0 {
		gone = make(map[string]bool, len(del))
		for _, name := range del {
			gone[name] = true
		}
	}
	out := make([]vipsmart.GIP, 0, len(old)+len(put))
	i := 0
	for _, g := range old {
		for i < len(put) && put[i].Name < g.Name {
			out = append(out, put[i])
			i++
		}
		if i < len(put) && put[i].Name == g.Name {
			continue // written over: put[i] goes in next
		}
		if !gone[g.Name] {
			out = append(out, g)
		}
	}
	return append(out, put[i:]...)
}

func cmpGIPName(g vipsmart.GIP, name string) int { return strings.Compare(g.Name, name) }
