package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
	"github.com/vipsmart/vipsmart"
)

// witnessFlag adds serve --witness.
func (o *serveOptions) witnessFlag(f *pflag.FlagSet) {
	f.BoolVar(&o.witness, "witness", false, "run a witness: a member that holds no VIPs or GIPs and announces nothing, and only votes for the majority of consistent GIPs (for federations of two DCs)")
}

// checkWitness refuses a witness with an announcer, and marks self.
func (o *serveOptions) checkWitness(self *vipsmart.DC) error {
	if !o.witness {
		return nil
	}
	for _, k := range o.ann.kinds {
		if k != "none" {
			return usageError{errors.New("--witness announces nothing: drop --announcer " + strings.Join(o.ann.kinds, ",") + " (or run the DC without --witness)")}
		}
	}
	self.Witness = true
	return nil
}

// witnessMark is what dc list adds to a witness's status.
func witnessMark(d vipsmart.DC) string {
	if d.Witness {
		return " (witness)"
	}
	return ""
}

// printPartition prints gip show's partition policy and, for a consistent
// GIP, this DC's view of the majority.
func printPartition(w io.Writer, gp vipsmart.GIPInfo) {
	p := gp.Partition
	if p == "" {
		p = vipsmart.PartitionAvailable
	}
	fmt.Fprintf(w, "Partition: %s\n", p)
	if q := gp.Quorum; q != nil {
		fmt.Fprintf(w, "Quorum:   in majority %t (supported by %s of %d members; lost by a majority: %s)\n          %s\n",
			q.InMajority, orDash(strings.Join(q.Supporters, ", ")), q.Members, orDash(strings.Join(q.Lost, ", ")), q.Why)
	}
}
