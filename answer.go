package vipsmart

import (
	"context"
	"sync"
)

// Answered lets a service put off work that need not delay the answer to
// an operator request until that answer has been sent (httpapi sends it,
// then calls Done). The daemon uses it for the commit messages of a
// federation change: the change is committed (stored) before the answer,
// and the members learn it a moment later, as a lost commit message would
// let them learn it from the next heartbeat anyway. Safe for concurrent
// use.
type Answered struct {
	mu   sync.Mutex
	fs   []func()
	done bool
}

type answeredKey struct{}

// WithAnswered returns ctx carrying a new Answered, for the server of one
// request to call Done on once it sent the answer.
func WithAnswered(ctx context.Context) (context.Context, *Answered) {
	a := &Answered{}
	return context.WithValue(ctx, answeredKey{}, a), a
}

// AfterAnswer registers f to run once the answer to the request of ctx has
// been sent. It reports false, and does nothing, if ctx belongs to no such
// request or its answer has been sent already: the caller then runs f
// itself. f must not block.
func AfterAnswer(ctx context.Context, f func()) bool {
	a, _ := ctx.Value(answeredKey{}).(*Answered)
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return false
	}
	a.fs = append(a.fs, f)
	return true
}

// Pending reports whether anything waits for Done.
func (a *Answered) Pending() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.fs) > 0
}

// Done runs what was registered, once; later registrations are refused.
func (a *Answered) Done() {
	a.mu.Lock()
	fs := a.fs
	a.fs, a.done = nil, true
	a.mu.Unlock()
	for _, f := range fs {
		f()
	}
}
