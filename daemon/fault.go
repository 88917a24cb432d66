package daemon

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/vipsmart/vipsmart/federation"
)

// Fault is a test-only crash point. The daemon calls Crash (which kills the
// process) either before it persists a Ready whose events mention
// PersistEvent, or before it sends message number SendAfter+1 of type
// SendType. While a Fault is set, messages are sent synchronously, in
// order, so that "the first N were delivered" holds when it crashes.
type Fault struct {
	PersistEvent string
	SendType     federation.MsgType
	SendAfter    int
	Crash        func(why string)
	sent         int
}

// ParseFault parses "persist:TEXT" or "send:TYPE[:N]".
func ParseFault(s string) (*Fault, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return nil, fmt.Errorf("fault %q: give persist:TEXT or send:TYPE[:N]", s)
	}
	switch kind {
	case "persist":
		return &Fault{PersistEvent: rest}, nil
	case "send":
		t, n, _ := strings.Cut(rest, ":")
		f := &Fault{SendType: federation.MsgType(t)}
		if n != "" {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("fault %q: N must be a non-negative number", s)
			}
			f.SendAfter = v
		}
		return f, nil
	}
	return nil, fmt.Errorf("fault %q: give persist:TEXT or send:TYPE[:N]", s)
}

func (f *Fault) beforePersist(rd federation.Ready) {
	if f == nil || f.PersistEvent == "" {
		return
	}
	for _, e := range rd.Events {
		if strings.Contains(e.Message, f.PersistEvent) {
			f.Crash("before persisting: " + e.Message)
		}
	}
}

// sendFailure is a delivery that failed, reported to the node after the
// Ready that produced it is advanced.
type sendFailure struct{ to, reason string }

// beforeSend crashes at the armed point, else sends m synchronously.
func (f *Fault) beforeSend(d *Daemon, m federation.Message) *sendFailure {
	// The change recording the DC's nodes (dcnodes.go) runs on its own
	// whenever nodes come and go: it never trips the crash point armed
	// for the change a test makes.
	nodes := m.Change != nil && m.Change.Kind == federation.SetNodes || m.Last != nil && m.Last.Change.Kind == federation.SetNodes
	if f.SendType != "" && m.Type == f.SendType && !nodes {
		if f.sent >= f.SendAfter {
			f.Crash(fmt.Sprintf("before sending %s message %d (to %s)", m.Type, f.sent+1, m.To.Name))
		}
		f.sent++
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.SendTimeout)
	defer cancel()
	if err := d.cfg.Transport.Send(ctx, m); err != nil && unreachable(err) {
		return &sendFailure{m.To.Name, err.Error()}
	}
	return nil
}
