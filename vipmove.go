package vipsmart

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A VIP of a DC run by several nodes on etcd is held by exactly one node at
// a time, which binds it (docs/ha.md, "VIPs that move between nodes"). The
// types here are what the operator sees of that; the decision logic is the
// package vipmove.

// The priorities of a node for a VIP (as keepalived's, 1 to 255).
const (
	MinVIPPriority     = 1
	MaxVIPPriority     = 255
	DefaultVIPPriority = 100
)

// VIPNode is one node that may hold a VIP, with its priority.
type VIPNode struct {
	Node     string `json:"node"`
	Priority int    `json:"priority"`
}

// ParseVIPNode parses NODE:PRIORITY (or NODE, at DefaultVIPPriority), as
// `vip add --node` takes it.
func ParseVIPNode(field, s string) (VIPNode, error) {
	name, prio, found := strings.Cut(s, ":")
	n := VIPNode{Node: name, Priority: DefaultVIPPriority}
	if found {
		p, err := strconv.Atoi(prio)
		if err != nil {
			return VIPNode{}, Errorf(EINVALID, field, "%s %q: priority %q is not a number: give NODE:PRIORITY, e.g. n1:200 (%d to %d)", field, s, prio, MinVIPPriority, MaxVIPPriority)
		}
		n.Priority = p
	}
	if err := ValidateVIPNodes([]VIPNode{n}); err != nil {
		return VIPNode{}, Errorf(EINVALID, field, "%s %q: %s", field, s, strings.TrimPrefix(err.Error(), "invalid: "))
	}
	return n, nil
}

// ValidateVIPNodes checks a VIP's node list: valid node names, each once,
// priorities within MinVIPPriority..MaxVIPPriority.
func ValidateVIPNodes(ns []VIPNode) error {
	seen := map[string]bool{}
	for _, n := range ns {
		if err := ValidateName("nodes", n.Node); err != nil {
			return Errorf(EINVALID, "nodes", "node %q: %v: give NODE:PRIORITY with the node's --node name", n.Node, err)
		}
		if n.Priority < MinVIPPriority || n.Priority > MaxVIPPriority {
			return Errorf(EINVALID, "nodes", "node %s: priority %d is out of range: give %d to %d", n.Node, n.Priority, MinVIPPriority, MaxVIPPriority)
		}
		if seen[n.Node] {
			return Errorf(EINVALID, "nodes", "node %s is given twice: give each node once", n.Node)
		}
		seen[n.Node] = true
	}
	return nil
}

// VIPNodesString is the node list as `vip show` prints it: "n1:200 n2:100",
// or "every node" when empty.
func VIPNodesString(ns []VIPNode) string {
	if len(ns) == 0 {
		return "every node"
	}
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = fmt.Sprintf("%s:%d", n.Node, n.Priority)
	}
	return strings.Join(parts, " ")
}

// VIPHolder is the node holding a VIP: since when and why it took it.
type VIPHolder struct {
	Node   string    `json:"node"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
}

// NodeEligibility is whether a node may hold a VIP now: its liveness (its
// claim in etcd renewed), the VIP's health check as run from that node,
// and the VIP's node list. Why says what is missing when it is not.
type NodeEligibility struct {
	Node     string `json:"node"`
	Priority int    `json:"priority"`
	Eligible bool   `json:"eligible"`
	Why      string `json:"why,omitempty"`
}

// EventVIPHolder is the kind of the events that record a VIP moving
// between the nodes of a DC: taken (with the reason) or released.
const EventVIPHolder = "vip-holder"
