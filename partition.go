package vipsmart

// PartitionPolicy says what a failover GIP does when the federation is
// partitioned (docs/gips.md, "Partitions").
type PartitionPolicy string

// The partition policies.
const (
	// PartitionAvailable (the default): each DC decides from its own
	// view; in a partition both sides may announce the GIP.
	PartitionAvailable PartitionPolicy = "available"
	// PartitionConsistent: a DC announces the GIP only while a majority
	// of the federation's members (witnesses included) supports it, and
	// takes it over only once a majority has lost the old holder and the
	// old holder's withdrawal bound has passed: never two active DCs.
	PartitionConsistent PartitionPolicy = "consistent"
)

// Consistent reports whether g uses the consistent partition policy.
func (g GIP) Consistent() bool { return g.Partition == PartitionConsistent }

// PartitionOrDefault is g's partition policy, PartitionAvailable when it
// is not set (a GIP stored before the field existed).
func (g GIP) PartitionOrDefault() PartitionPolicy {
	if g.Partition == "" {
		return PartitionAvailable
	}
	return g.Partition
}

// validatePartition checks (and defaults) g.Partition.
func (g *GIP) validatePartition() error {
	switch g.Partition {
	case "":
		g.Partition = PartitionAvailable
	case PartitionAvailable:
	case PartitionConsistent:
		if g.Mode == ModeAnycast {
			return Errorf(EINVALID, "partition", "partition consistent keeps a GIP active in one DC at most, but mode anycast activates every healthy placement: use mode failover, or partition available")
		}
	default:
		return Errorf(EINVALID, "partition", "partition %q is unknown: give available or consistent", g.Partition)
	}
	return nil
}

// EventQuorum is the kind of the events that record quorum changes: this
// DC entered or left the majority, a majority lost or found again a member.
const EventQuorum = "quorum"

// GIPQuorum is, for a consistent GIP, the local DC's view of the majority
// (gip show): whether it is in the majority, the members whose support it
// holds (itself included) out of how many, the members a majority has
// lost, and why the GIP is or is not active here.
type GIPQuorum struct {
	InMajority bool     `json:"in_majority"`
	Members    int      `json:"members"`
	Supporters []string `json:"supporters"`
	Lost       []string `json:"lost"`
	Why        string   `json:"why"`
}
