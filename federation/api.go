// Package federation is vipsmart's membership protocol as a pure,
// deterministic state machine (in the style of etcd-io/raft): no goroutines,
// no sockets, no clock and no randomness of its own. A daemon drives a Node:
// it feeds it time (Tick), peer messages (Step) and operator changes
// (Propose), and after each call drains Ready: it persists Ready.Update,
// sends Ready.Messages, reports Ready.Results and stores Ready.Events, then
// calls Advance. See docs/federation.md for the protocol.
//
// Invariants (checked by the simulation in the tests, under loss, crashes,
// restarts, partitions and clock skew): a DC belongs to at most one
// federation; two members at the same federation id and epoch hold the
// same member list and GIPs (forced removals included: the forced-removal
// rule in docs/federation.md keeps two lines of history from sharing an
// epoch); a DC's epoch never goes down; every temporary status ends by its
// deadline; once faults stop every member converges; an acknowledged change
// is lost only if the operator force-removed every DC that held it.
package federation

import (
	"slices"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Config configures a Node. Zero durations and counts take the defaults.
type Config struct {
	Self              vipsmart.DC
	InviteTTL         time.Duration // how long a candidate stays invited; default 10s
	ReviewTTL         time.Duration // how long members stay in candidate-review/leaving; default 10s
	HeartbeatInterval time.Duration // default 200ms
	HeartbeatMisses   int           // a member is unreachable after this many intervals without hearing from it; default 3
	PhaseTimeout      time.Duration // how long the coordinator waits for all answers of one phase; default 3s
	OpIDs             func() string // makes operation ids; nil -> deterministic "<self>-<counter>" (counter persisted)
}

// The defaults of Config.
const (
	DefaultInviteTTL         = 10 * time.Second
	DefaultReviewTTL         = 10 * time.Second
	DefaultHeartbeatInterval = 200 * time.Millisecond
	DefaultHeartbeatMisses   = 3
	DefaultPhaseTimeout      = 3 * time.Second
)

// ProposalKind names an operator change.
type ProposalKind string

// The operator changes.
const (
	AddDC     ProposalKind = "add-dc"
	RemoveDC  ProposalKind = "remove-dc"
	Leave     ProposalKind = "leave"
	PutGIP    ProposalKind = "put-gip"
	DeleteGIP ProposalKind = "delete-gip"
	// RotateIdentity commits a new key fingerprint of the coordinator
	// (Proposal.DC: the coordinator with its new Identity).
	RotateIdentity ProposalKind = "rotate-identity"
	// SetNodes commits the node addresses of the coordinator
	// (Proposal.DC: the coordinator with its new Nodes; nodes.go).
	SetNodes ProposalKind = "set-nodes"
)

// Proposal is an operator change. DC is the candidate of AddDC; Name is the
// DC of RemoveDC or the GIP of DeleteGIP; Force makes RemoveDC skip the DC
// it removes (which cannot be reached); GIP is the GIP of PutGIP.
type Proposal struct {
	Kind  ProposalKind
	DC    vipsmart.DC
	Name  string
	Force bool
	// Names are further DCs a forced RemoveDC removes in the same change
	// (Name and Names together; order and duplicates do not matter).
	Names []string
	GIP   vipsmart.GIP
	// Update makes PutGIP change an existing GIP (ENOTFOUND if there is
	// none); without it PutGIP creates one (ECONFLICT if the name exists).
	Update bool
	// By names who asked (for the event log of every member).
	By string
	// Token is AddDC's join token, made on the candidate: the invite
	// carries it to the candidate (and nowhere else).
	Token string
	// Batch is the GIP changes of ApplyGIPs; ExpectEpoch, if not 0, is
	// the epoch the batch was computed at: ApplyGIPs is refused
	// (ECONFLICT) when the federation has moved on (batch.go).
	Batch       *Batch
	ExpectEpoch uint64
}

// Report is what a DC tells the other members in its heartbeats besides
// the protocol state: its VIPs that are not up, and the GIPs without
// preemption it is active for. DCs() returns the last report of each DC.
type Report struct {
	VIPsDown []string `json:"vips_down,omitempty"`
	Holding  []string `json:"holding,omitempty"`
	// VIPsUnknown are the VIPs of VIPsDown whose health is not known yet
	// (their check has not passed rise or failed fall times): a DC with a
	// lower placement waits for them before it activates a GIP.
	VIPsUnknown []string `json:"vips_unknown,omitempty"`
}

// clone returns a deep copy of r.
func (r Report) clone() Report {
	return Report{VIPsDown: slices.Clone(r.VIPsDown), Holding: slices.Clone(r.Holding), VIPsUnknown: slices.Clone(r.VIPsUnknown)}
}

// Result is the outcome of a proposal accepted by Propose. Err is nil on
// success, else a *vipsmart.Error naming the DC and the reason.
type Result struct {
	OpID string
	Err  error
}

// Ready is what the daemon must do after a call into the Node, in order:
// persist Update (atomically, durably), send Messages, report Results,
// store Events; then call Advance.
type Ready struct {
	Update   *vipsmart.FederationUpdate
	Messages []Message
	Results  []Result
	Events   []vipsmart.Event
}

// MsgType is the type of a Message.
type MsgType string

// The message types. Requests and their responses (…Resp) travel as separate
// one-way messages: the receiver of a request Steps it and the Node emits the
// response in a later Ready.
const (
	MsgInvite        MsgType = "invite"         // coordinator -> candidate: become invited
	MsgInviteResp    MsgType = "invite-resp"    // candidate -> coordinator
	MsgLock          MsgType = "lock"           // coordinator -> members: candidate-review / leaving
	MsgLockResp      MsgType = "lock-resp"      // member -> coordinator (carries doubts)
	MsgPrepare       MsgType = "prepare"        // coordinator -> candidate: the whole new state
	MsgPrepareResp   MsgType = "prepare-resp"   // candidate -> coordinator
	MsgCommit        MsgType = "commit"         // coordinator -> all participants: the decision
	MsgAbort         MsgType = "abort"          // coordinator -> all participants: revert
	MsgHeartbeat     MsgType = "heartbeat"      // member -> members
	MsgHeartbeatResp MsgType = "heartbeat-resp" // answer to a heartbeat (any status)
	MsgFetchState    MsgType = "fetch-state"    // ask a DC for its whole state
	MsgState         MsgType = "state"          // the whole state of a member
	MsgAbortResp     MsgType = "abort-resp"     // participant -> coordinator: the abort arrived
	MsgProbe         MsgType = "probe"          // forced-removal coordinator -> candidate of a change in doubt
	MsgProbeResp     MsgType = "probe-resp"     // candidate -> coordinator: it does not hold that change (ok), or it does
)

// Change is the change an operation makes. It travels in Lock, Prepare and
// Commit messages and is kept in every DC's last Decision.
type Change struct {
	Kind  ProposalKind `json:"kind"`
	DC    *vipsmart.DC `json:"dc,omitempty"`   // AddDC: the candidate
	Name  string       `json:"name,omitempty"` // RemoveDC/Leave: the DC that goes; DeleteGIP: the GIP
	Force bool         `json:"force,omitempty"`
	// Names is set on a forced RemoveDC of several DCs: all of them,
	// sorted (Name is the first).
	Names []string      `json:"names,omitempty"`
	GIP   *vipsmart.GIP `json:"gip,omitempty"`   // PutGIP
	Batch *Batch        `json:"batch,omitempty"` // ApplyGIPs (batch.go)
	// Founder is set on an AddDC whose coordinator was standalone: the
	// coordinator that declares the federation.
	Founder *vipsmart.DC `json:"founder,omitempty"`
	// NewFedID is set when the change re-founds the federation under a new
	// id (a forced removal in a federation of two; see docs).
	NewFedID string `json:"new_fed_id,omitempty"`
	// By names who asked for the change (the event log shows it).
	By string `json:"by,omitempty"`
}

// Decision is a committed change: the federation FedID went from FromEpoch
// to ToEpoch by operation OpID. Every DC keeps its last one (a DC that left
// keeps it as a tombstone) and hands it to peers that are still at FromEpoch.
type Decision struct {
	FedID       string `json:"fed_id"`
	FromEpoch   uint64 `json:"from_epoch"`
	ToEpoch     uint64 `json:"to_epoch"`
	OpID        string `json:"op_id"`
	Coordinator string `json:"coordinator"`
	Change      Change `json:"change"`
	// Tomb marks a tombstone (the decision by which a DC left the
	// federation), and Members are then the members after it (none when
	// the federation dissolved). A DC of that federation that is behind it
	// and cannot reach a member to catch up from learns from it whether it
	// is still listed.
	Tomb    bool          `json:"tomb,omitempty"`
	Members []vipsmart.DC `json:"members,omitempty"`
	// Seq is the coordinator's sequence number of the operation. With
	// FromEpoch it tells of the coordinator's earlier operations: one it
	// ran before (a lower number) with a target above FromEpoch did not
	// commit (the coordinator was still at FromEpoch after it, and epochs
	// never go down).
	Seq uint64 `json:"seq,omitempty"`
}

// State is the whole state of a federation member.
type State struct {
	FedID   string         `json:"fed_id"`
	Epoch   uint64         `json:"epoch"`
	Members []vipsmart.DC  `json:"members"`
	GIPs    []vipsmart.GIP `json:"gips"`
	Last    *Decision      `json:"last,omitempty"`
	// Founding is the decision that re-founded the federation under this
	// id, if it was (a forced removal in a federation of two).
	Founding *Decision `json:"founding,omitempty"`
	// Quorum is set after a forced removal of several DCs: the members
	// before it. Until an ordinary change commits, the next forced removal
	// needs more than half of them too (see docs/federation.md).
	Quorum []string `json:"quorum,omitempty"`
	// Seq is set only in the state a member hands to a DC rebuilding its
	// lost store (RebuildState): the last operation sequence number the
	// member heard from that DC.
	Seq uint64 `json:"seq,omitempty"`
}

// Doubt is what a member remembers when a lock it granted expired without a
// commit or an abort: the operation might have committed at its coordinator.
type Doubt struct {
	FedID       string `json:"fed_id"`
	Epoch       uint64 `json:"epoch"`
	ToEpoch     uint64 `json:"to_epoch"`
	OpID        string `json:"op_id"`
	Coordinator string `json:"coordinator"`
	Change      Change `json:"change"`
	// Seq is the coordinator's operation sequence number of OpID: the
	// doubt is resolved when the coordinator is heard, below ToEpoch,
	// after that operation ended.
	Seq uint64 `json:"seq,omitempty"`
}

// Message is one protocol message between two daemons. It is JSON
// serializable and travels as the body of an HTTP POST; the receiver calls
// Validate, then Node.Step.
type Message struct {
	Type    MsgType         `json:"type"`
	From    vipsmart.DC     `json:"from"`
	To      vipsmart.DC     `json:"to"`
	FedID   string          `json:"fed_id,omitempty"` // the sender's federation ("" when standalone)
	Epoch   uint64          `json:"epoch"`            // requests: the epoch the op expects; else the sender's epoch
	OpID    string          `json:"op_id,omitempty"`
	Status  vipsmart.Status `json:"status,omitempty"` // the sender's status
	ToEpoch uint64          `json:"to_epoch,omitempty"`
	Change  *Change         `json:"change,omitempty"`
	State   *State          `json:"state,omitempty"`
	Last    *Decision       `json:"last,omitempty"`
	Doubts  []Doubt         `json:"doubts,omitempty"`
	// Founding is the decision that re-founded the sender's federation,
	// if any (heartbeats and commits).
	Founding *Decision `json:"founding,omitempty"`
	// SenderEpoch and SenderFed are the sender's own epoch and federation
	// (they differ from Epoch/FedID in requests of a standalone coordinator).
	SenderEpoch uint64 `json:"sender_epoch"`
	SenderFed   string `json:"sender_fed,omitempty"`
	// Report is the sender's health report (heartbeats and their answers).
	Report *Report `json:"report,omitempty"`
	// Quorum is the sender's quorum part (heartbeats and their answers
	// between members; quorum.go).
	Quorum *QuorumBeat `json:"quorum,omitempty"`
	// Seq is the sequence number of the last operation the sender started
	// as a coordinator, and Running says it is still running it. A DC that
	// hears a coordinator past an operation knows that operation ended:
	// it refuses a late lock of it, and releases its lock or drops its
	// doubt if the coordinator is still below the operation's epoch.
	Seq     uint64 `json:"seq,omitempty"`
	Running bool   `json:"running,omitempty"`
	// Committed is the sequence number of the last operation the sender
	// committed as a coordinator: an operation it ended with a higher
	// number did not commit.
	Committed uint64 `json:"committed,omitempty"`
	// KnownSeq, in the refusal of a late lock or invite, is the highest
	// sequence number the refuser heard from the coordinator.
	KnownSeq uint64 `json:"known_seq,omitempty"`
	// Token is the join token of an invite (see Proposal.Token); Members
	// are the members of the federation an invite is for, with their keys,
	// so that the candidate knows whom to believe.
	Token   string        `json:"token,omitempty"`
	Members []vipsmart.DC `json:"members,omitempty"`
	// Responses: OK, or the refusal.
	OK     bool               `json:"ok,omitempty"`
	Code   vipsmart.ErrorCode `json:"code,omitempty"`
	Reason string             `json:"reason,omitempty"`
}
