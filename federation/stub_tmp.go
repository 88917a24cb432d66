package federation

import (
	"net/netip"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Node is one DC's membership state machine.
type Node struct{ cfg Config }

func NewNode(cfg Config, record []byte, gips []vipsmart.GIP, now time.Time) (*Node, error) {
	return &Node{cfg: cfg}, nil
}
func (n *Node) Tick(now time.Time)                                        {}
func (n *Node) Step(now time.Time, m Message) error                       { return nil }
func (n *Node) Propose(now time.Time, p Proposal) (string, error)         { return "", nil }
func (n *Node) ReportUnreachable(now time.Time, dc string, reason string) {}
func (n *Node) HasReady() bool                                            { return false }
func (n *Node) Ready() Ready                                              { return Ready{} }
func (n *Node) Advance(rd Ready)                                          {}
func (n *Node) Status(now time.Time) vipsmart.StatusInfo                  { return vipsmart.StatusInfo{} }
func (n *Node) DCs(now time.Time) []vipsmart.DCInfo                       { return nil }
func (n *Node) GIPs() []vipsmart.GIP                                      { return nil }
func (n *Node) LocalChangeAllowed() error                                 { return nil }
func (n *Node) SetLocalVIPs(vips map[string]netip.Addr)                   {}
func (m *Message) Validate() error                                        { return nil }
