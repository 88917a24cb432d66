package daemon

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
)

// The loop's token. The federation node, the VIP cache, the waiters and
// everything else the loop owns are owned by whichever goroutine holds
// d.own (a channel of capacity one: holding it is having sent into it).
// The loop takes it for each thing it does (a tick, a request, a health
// change) and gives it back when the Ready that thing left is processed.
//
// A caller that finds the token free (the loop idle in its select, which
// is nearly always) takes it and runs its function itself, then processes
// the Ready the function left, exactly as the loop would have done right
// after it: the node is stepped, the Ready persisted and its messages
// queued on the caller's goroutine, under the token. That saves the two
// goroutine hand-offs of a round trip through d.reqs (the caller waking
// the loop, the loop waking the caller) on every peer message and every
// operator call; on a host shared by many daemons each hand-off is a thread
// woken and a context switch (BENCHMARKS.md, "hop9"). A caller that finds
// the token taken goes through d.reqs as before and waits for the loop,
// which takes the token once the holder gives it back. A holder whose
// Ready could not be persisted does not give the token back: it hands it
// to the loop (d.kick), which processes that Ready again before anything
// else is stepped, and stops the daemon if the store still fails.
//
// So the loop's invariants hold for every holder: one Ready at a time, and
// each Ready persisted before any of its messages is sent or any result
// reported (processReady does both, under the token). The token is held
// from New until Run starts its loop (nothing is stepped before Run), and
// Run keeps it once it stops (nothing is stepped after). With a Fault set
// (tests), everything goes through the loop, as before.

// tryOwn takes the token if it is free.
func (d *Daemon) tryOwn() bool {
	if d.cfg.Fault != nil {
		return false
	}
	select {
	case d.own <- struct{}{}:
		return true
	default:
		return false
	}
}

// takeOwn waits for the token (the loop).
func (d *Daemon) takeOwn() { d.own <- struct{}{} }

// giveOwn gives the token back.
func (d *Daemon) giveOwn() { <-d.own }

// loopOwn takes the token for the loop. If a caller handed it over
// (d.kick) instead, the Ready it could not persist is processed first.
func (d *Daemon) loopOwn(ctx context.Context) error {
	select {
	case d.own <- struct{}{}:
		return nil
	case <-d.kick:
		return d.processReady(ctx)
	}
}

// runOwned runs f, which the caller holds the token for, then processes
// the Ready it left, as the loop does after each request, and gives the
// token back. If the store failed, nothing of that Ready was sent and it
// is still pending: the token goes to the loop instead (d.kick), which
// processes it again before anything else, and stops the daemon if the
// store still fails (as when the loop itself ran f). A panic while
// holding the token ends the process, as it did on the loop (net/http
// would otherwise recover it in a handler and leave the token held).
func (d *Daemon) runOwned(ctx context.Context, f func() error) error {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "panic: %v\n\n%s", r, debug.Stack())
			os.Exit(2)
		}
	}()
	err := f()
	if perr := d.processReady(context.WithoutCancel(ctx)); perr != nil {
		d.log.Warn("persisting after a request failed: the loop retries", "err", perr)
		d.kick <- struct{}{} // the token goes to the loop
		return err
	}
	d.giveOwn()
	return err
}
