// Package vipsmart holds the domain types of vipsmart and the interfaces that
// the rest of the program implements: the operator Service, the Store that
// persists one DC's state, and the validation rules every edge applies.
//
// Dependencies point inwards: this package imports only the standard library.
// Packages named for a dependency (bolt, httpapi, ...) implement the
// interfaces declared here; the federation package holds the protocol state
// machine; the daemon package runs it; cmd/vipsmart wires everything together.
package vipsmart

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// DefaultPort is the TCP port of a daemon's API when none is given.
const DefaultPort = 9610

// DC identifies a datacenter's daemon: its unique name in the federation,
// the address and port of its federation listener, and its identity: the
// fingerprint of its key (see ValidateIdentity), which every member pins.
// Name is a DNS label; Address is a host address; Port is 1-65535; Identity
// is empty only where no key is known yet (a DC typed by an operator).
type DC struct {
	Name     string     `json:"name"`
	Address  netip.Addr `json:"address"`
	Port     uint16     `json:"port"`
	Identity string     `json:"identity,omitempty"`
	// Witness marks a member that only votes for the majority of
	// consistent GIPs (serve --witness): it holds no VIPs and no
	// placements and announces nothing. Fixed when the DC joins.
	Witness bool `json:"witness,omitempty"`
	// Nodes are the federation addresses of the DC's nodes when it runs
	// several (docs/ha.md), sorted; empty for a DC of one node at
	// Address:Port. Committed by the DC itself (dcnodes.go).
	Nodes []netip.AddrPort `json:"nodes,omitempty"`
}

// AddrPort returns the DC's API endpoint.
func (d DC) AddrPort() netip.AddrPort { return netip.AddrPortFrom(d.Address, d.Port) }

// String formats the DC the way the CLI takes it: NAME,IP,PORT.
func (d DC) String() string {
	return d.Name + "," + d.Address.String() + "," + strconv.Itoa(int(d.Port))
}

// Validate reports the first rule d breaks, as an EINVALID *Error.
func (d DC) Validate() error {
	if err := ValidateName("name", d.Name); err != nil {
		return err
	}
	if err := ValidateHostAddr("address", d.Address); err != nil {
		return err
	}
	if d.Port == 0 {
		return Errorf(EINVALID, "port", "port must be between 1 and 65535")
	}
	if d.Identity != "" {
		if err := ValidateIdentity("identity", d.Identity); err != nil {
			return err
		}
	}
	return ValidateNodes("nodes", d.Nodes)
}

// Status is the membership status of the local DC.
type Status string

// The statuses of the seed's diagram. Invited, CandidateReview and Leaving are
// temporary: they carry a deadline and an operation id and revert by
// themselves when the deadline passes.
const (
	StatusStandalone      Status = "standalone"
	StatusInvited         Status = "invited"
	StatusMember          Status = "member"
	StatusCandidateReview Status = "candidate-review"
	StatusLeaving         Status = "leaving"
)

// Temporary reports whether s carries a deadline.
func (s Status) Temporary() bool {
	return s == StatusInvited || s == StatusCandidateReview || s == StatusLeaving
}

// Valid reports whether s is one of the five statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusStandalone, StatusInvited, StatusMember, StatusCandidateReview, StatusLeaving:
		return true
	}
	return false
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("1.5s"); it also accepts a number of nanoseconds.
type Duration time.Duration

// MarshalJSON writes d as a string such as "250ms".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration must be a string such as \"1s\" or \"250ms\"")
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: must be a Go duration such as \"1s\" or \"250ms\"", s)
	}
	*d = Duration(v)
	return nil
}

// FederationInfo describes the federation a DC belongs to.
type FederationInfo struct {
	ID      string `json:"id"`
	Epoch   uint64 `json:"epoch"`
	Members []DC   `json:"members"`
}

// StatusInfo is what `vipsmart status` shows: the local DC, its status, the
// operation and deadline of a temporary status, and its federation (nil
// when standalone).
type StatusInfo struct {
	Name       string          `json:"name"`
	Address    netip.Addr      `json:"address"`
	Port       uint16          `json:"port"`
	Identity   string          `json:"identity"` // fingerprint of the DC's key, as the members pin it
	Status     Status          `json:"status"`
	Epoch      uint64          `json:"epoch"`
	OpID       string          `json:"op_id,omitempty"`
	Deadline   *time.Time      `json:"deadline,omitempty"`
	TimeLeft   *Duration       `json:"time_left,omitempty"`
	Federation *FederationInfo `json:"federation"`
	VIPs       int             `json:"vips"`
	GIPs       int             `json:"gips"`
	// Announced is every address the DC's announcers were handed: where,
	// since when, and whether it is on the wire (state announced, pending
	// or failed, with the reason).
	Announced []Announced `json:"announced"`
	// BGPPeers are the sessions of the embedded BGP speaker (absent
	// without the bgp announcer).
	BGPPeers []BGPPeer `json:"bgp_peers,omitempty"`
}

// DCInfo is one row of `vipsmart dc list`: a member and what the local DC
// knows of it.
type DCInfo struct {
	DC
	Self      bool       `json:"self"`
	Reachable bool       `json:"reachable"`
	Status    Status     `json:"status,omitempty"`
	LastEpoch uint64     `json:"last_epoch"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	// VIPsDown are the DC's VIPs that it last reported not up (down, or
	// not checked enough yet); VIPsUnknown those of them whose health is
	// not known yet (their check has not passed rise or failed fall times).
	VIPsDown    []string `json:"vips_down,omitempty"`
	VIPsUnknown []string `json:"vips_unknown,omitempty"`
	// Holding are the GIPs without preemption the DC last reported being
	// active for.
	Holding []string `json:"holding,omitempty"`
}
