package etcd

import "context"

// SetOverlayMax sets how many overlay keys may pile up before a rebase,
// for the tests, and returns a function that restores it.
func SetOverlayMax(n int) (restore func()) {
	old := overlayMax
	overlayMax = n
	return func() { overlayMax = old }
}

// Head is the head of the GIP set as a save reads it.
type Head = head

// ReadHead reads the head as a save does.
func (s *Store) ReadHead(ctx context.Context) (Head, error) { return s.readHead(ctx) }

// WriteIncremental writes an incremental save on h, as a save's try that
// read h and reaches etcd only now would: ErrHeadMoved if it changed
// nothing.
func (s *Store) WriteIncremental(ctx context.Context, h Head, rec []byte, put map[string][]byte) error {
	return s.writeIncremental(ctx, h, rec, put, nil)
}

// ErrHeadMoved is errHeadMoved.
var ErrHeadMoved = errHeadMoved
