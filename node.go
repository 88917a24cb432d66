package vipsmart

import "time"

// NodeInfo is one row of `vipsmart node list`: a node (daemon process) of
// a DC run by several nodes on etcd (docs/ha.md).
type NodeInfo struct {
	Name string `json:"name"`
	// Address is the node's federation listener (its --advertise).
	Address string `json:"address"`
	// Identity is the fingerprint of the key the node presents: the DC's
	// key, the same for every node of the DC.
	Identity string `json:"identity"`
	// Role is "leader" or "follower".
	Role string `json:"role"`
	// LeaseRemaining is the time left on the node's etcd lease when read;
	// the node is gone when it reaches zero without a renewal.
	LeaseRemaining Duration `json:"lease_remaining"`
	// LastSeen is when the node last renewed its lease, as far as the
	// lease's remaining time tells (within a second).
	LastSeen *time.Time `json:"last_seen,omitempty"`
	Version  string     `json:"version"`
	PID      int        `json:"pid"`
}

// The roles of a node.
const (
	RoleLeader   = "leader"
	RoleFollower = "follower"
)
