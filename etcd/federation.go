package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipsmart/vipsmart"
)

// The GIP set is a base plus an overlay (see the package doc):
//
//	P gipgen                 "G N": the base is generation G, N chunks
//	P gips/base/<G>/<i>      chunk i of base G: a JSON array of GIPs
//	P gips/put/<name>        overlay: the GIP, replacing the base's
//	P gips/del/<name>        overlay: the name is deleted from the base
//
// A name never has both a put and a del key; del keys exist only while
// the base has chunks. Every switch to a new base deletes the overlay in
// the same transaction.

// ChunkBytes is the largest base chunk this package writes (a chunk holds
// at least one GIP, whatever its size).
const ChunkBytes = 256 << 10

// overlayMax is how many overlay keys an incremental update may leave;
// an update that would leave more folds the overlay into a new base. A
// variable for the tests.
var overlayMax = 1000

// fixedOps is how many operations a SaveFederation transaction needs
// besides its GIP operations: gipgen, the record, five range deletes, and
// the fence's Get in the Else branch.
const fixedOps = 8

// errHeadMoved means P gipgen changed between the read and the write: the
// caller reads again and retries.
var errHeadMoved = errors.New("the GIP generation changed meanwhile")

// head is the GIP set's current base as read: its generation and number
// of chunks, P gipgen's mod revision (0 while it does not exist), the
// record, and how many overlay keys there are.
type head struct {
	gen     uint64
	chunks  int
	modRev  int64
	record  []byte
	overlay int64
}

func (k keys) gipGen() string         { return k.p + "gipgen" }
func (k keys) gipsAll() string        { return k.p + "gips/" }
func (k keys) bases() string          { return k.p + "gips/base/" }
func (k keys) base(gen uint64) string { return k.p + "gips/base/" + hex16(gen) + "/" }
func (k keys) puts() string           { return k.p + "gips/put/" }
func (k keys) put(name string) string { return k.p + "gips/put/" + name }
func (k keys) dels() string           { return k.p + "gips/del/" }
func (k keys) del(name string) string { return k.p + "gips/del/" + name }
func (k keys) chunk(gen uint64, i int) string {
	return fmt.Sprintf("%s%08x", k.base(gen), i)
}

// parseHead decodes P gipgen's kv (nil: none yet) and the record's.
func (s *Store) parseHead(gen, rec []*mvccpb.KeyValue) (head, error) {
	var h head
	if len(gen) > 0 {
		var g uint64
		var n int
		if _, err := fmt.Sscanf(string(gen[0].Value), "%x %d", &g, &n); err != nil || n < 0 {
			return head{}, fmt.Errorf("GIP generation %q at %s is not \"GEN CHUNKS\": the prefix is damaged", gen[0].Value, s.k.gipGen())
		}
		h.gen, h.chunks, h.modRev = g, n, gen[0].ModRevision
	}
	if len(rec) > 0 && len(rec[0].Value) > 0 {
		h.record = bytes.Clone(rec[0].Value)
	}
	return h, nil
}

// readHead reads the head and counts the overlay in one transaction.
func (s *Store) readHead(ctx context.Context) (head, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.gipGen()),
		clientv3.OpGet(s.k.record()),
		clientv3.OpGet(s.k.puts(), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(s.k.dels(), clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return head{}, err
	}
	r := resp.Responses
	h, err := s.parseHead(r[0].GetResponseRange().Kvs, r[1].GetResponseRange().Kvs)
	h.overlay = r[2].GetResponseRange().Count + r[3].GetResponseRange().Count
	return h, err
}

// readAll reads the head and the whole GIP set in one transaction: one
// consistent snapshot, sorted by name.
func (s *Store) readAll(ctx context.Context) (head, []vipsmart.GIP, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.gipGen()),
		clientv3.OpGet(s.k.record()),
		clientv3.OpGet(s.k.gipsAll(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return head{}, nil, err
	}
	r := resp.Responses
	h, err := s.parseHead(r[0].GetResponseRange().Kvs, r[1].GetResponseRange().Kvs)
	if err != nil {
		return head{}, nil, err
	}
	set := map[string]vipsmart.GIP{}
	puts := map[string]vipsmart.GIP{}
	var dels []string
	base := s.k.base(h.gen)
	chunks := 0
	for _, kv := range r[2].GetResponseRange().Kvs {
		k := string(kv.Key)
		switch {
		case strings.HasPrefix(k, base):
			var i int
			if _, err := fmt.Sscanf(strings.TrimPrefix(k, base), "%x", &i); err != nil || i >= h.chunks {
				continue // left by a replacement that did not finish
			}
			var gips []vipsmart.GIP
			if err := json.Unmarshal(kv.Value, &gips); err != nil {
				return head{}, nil, fmt.Errorf("decode GIP chunk %s: %w", k, err)
			}
			for _, g := range gips {
				set[g.Name] = g
			}
			chunks++
		case strings.HasPrefix(k, s.k.puts()):
			var g vipsmart.GIP
			if err := json.Unmarshal(kv.Value, &g); err != nil {
				return head{}, nil, fmt.Errorf("decode GIP %s: %w", k, err)
			}
			puts[strings.TrimPrefix(k, s.k.puts())] = g
		case strings.HasPrefix(k, s.k.dels()):
			dels = append(dels, strings.TrimPrefix(k, s.k.dels()))
		}
		// Other bases: left by a replacement that did not finish.
	}
	if chunks != h.chunks {
		return head{}, nil, fmt.Errorf("GIP base %x has %d chunks, %s says %d: the prefix is damaged", h.gen, chunks, s.k.gipGen(), h.chunks)
	}
	// The base, less the overlay's deletes, plus its puts.
	for _, n := range dels {
		delete(set, n)
	}
	for n, g := range puts {
		set[n] = g
	}
	gips := make([]vipsmart.GIP, 0, len(set))
	for _, g := range set {
		gips = append(gips, g)
	}
	sort.Slice(gips, func(i, j int) bool { return gips[i].Name < gips[j].Name })
	return h, gips, nil
}

// LoadFederation returns the federation record last saved (nil if none,
// or if the last save had an empty record) and every GIP, sorted by name
// (an empty, non-nil slice when there are none), as one consistent
// snapshot.
func (s *Store) LoadFederation(ctx context.Context) ([]byte, []vipsmart.GIP, error) {
	var rec []byte
	var gips []vipsmart.GIP
	err := s.do(ctx, "load federation", func(ctx context.Context) error {
		h, all, err := s.readAll(ctx)
		rec, gips = h.record, all
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return rec, gips, nil
}

// SaveFederation stores u atomically: the record (an empty one clears it)
// and the GIP changes. With ReplaceGIPs the stored GIPs become exactly
// PutGIPs (the last of several with one name wins) and DeleteGIPs is
// ignored; otherwise PutGIPs are written by name, then DeleteGIPs removed
// (a missing name is no error). A GIP without a name fails with EINVALID,
// changing nothing. See the package doc for how a large update stays
// atomic within etcd's limits.
func (s *Store) SaveFederation(ctx context.Context, u vipsmart.FederationUpdate) error {
	const op = "save federation"
	put := map[string][]byte{}
	for _, g := range u.PutGIPs {
		if g.Name == "" {
			return s.do(ctx, op, func(context.Context) error {
				return vipsmart.Errorf(vipsmart.EINVALID, "name", "GIP name is empty")
			})
		}
		data, err := json.Marshal(g)
		if err != nil {
			return fmt.Errorf("%s: encode GIP %s: %w", op, g.Name, err)
		}
		if len(data) > ChunkBytes {
			return fmt.Errorf("%s: GIP %s is %d bytes of JSON, more than the %d this store keeps for one", op, g.Name, len(data), ChunkBytes)
		}
		put[g.Name] = data
	}
	var del []string
	if !u.ReplaceGIPs {
		for _, n := range u.DeleteGIPs {
			delete(put, n) // deletes come after puts
			del = append(del, n)
		}
		del = dedupe(del)
	}
	if len(u.Record) > MaxTxnBytes/2 {
		return fmt.Errorf("%s: the federation record of %d bytes is larger than the %d bytes this store keeps in one key", op, len(u.Record), MaxTxnBytes/2)
	}
	rec := bytes.Clone(u.Record)
	s.fedMu.Lock()
	defer s.fedMu.Unlock()
	return s.do(ctx, op, func(ctx context.Context) error {
		for {
			// One try gets half the request timeout: a member that
			// forwarded the write (or the read of the head) to a leader
			// that then died waits for an answer that never comes, for
			// longer than our timeout, while the others elect a new
			// leader; the second try goes through another member.
			actx, cancel := context.WithTimeout(ctx, s.timeout/2)
			var err error
			if u.ReplaceGIPs {
				err = s.rebase(actx, nil, rec, put, nil, true)
			} else {
				err = s.saveIncremental(actx, rec, put, del)
			}
			cancel()
			if err != nil && ctx.Err() == nil && actx.Err() != nil && !errors.Is(err, errHeadMoved) && !isDomain(err) {
				err = errTryTimedOut{err}
			}
			if retryable(err) {
				// The connection to the member broke (it was killed,
				// or lost etcd's leadership): the write may or may not
				// have been applied. Writing the same update again on
				// the head read afresh is the same state either way,
				// so try again (through another member) until the
				// request timeout rather than fail the caller, whose
				// loop cannot go on without it.
				select {
				case <-ctx.Done():
					return err
				case <-time.After(retryPause):
				}
				continue
			}
			if !errors.Is(err, errHeadMoved) {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	})
}

// saveIncremental writes the record and the GIP puts and deletes as
// overlay keys in one transaction if they fit and the overlay stays within
// overlayMax; otherwise it folds everything into a new base.
func (s *Store) saveIncremental(ctx context.Context, rec []byte, put map[string][]byte, del []string) error {
	h, err := s.readHead(ctx)
	if err != nil {
		return err
	}
	return s.writeIncremental(ctx, h, rec, put, del)
}

// writeIncremental is saveIncremental on the head h read before: it
// changes nothing (errHeadMoved) if any save was committed since.
func (s *Store) writeIncremental(ctx context.Context, h head, rec []byte, put map[string][]byte, del []string) error {
	tomb := h.chunks > 0 // deletes need tombstones only over a base
	ops := []clientv3.Op{
		// The same value: moves its revision, so that this write, applied
		// late, cannot pass after a later one (see the package doc).
		clientv3.OpPut(s.k.gipGen(), fmt.Sprintf("%s %d", hex16(h.gen), h.chunks)),
		recordOp(s.k.record(), rec),
	}
	size := len(rec)
	for _, n := range sortedKeys(put) {
		ops = append(ops, clientv3.OpPut(s.k.put(n), string(put[n])))
		if tomb {
			ops = append(ops, clientv3.OpDelete(s.k.del(n)))
		}
		size += 2*len(s.k.del(n)) + len(put[n]) + 32
	}
	for _, n := range del {
		ops = append(ops, clientv3.OpDelete(s.k.put(n)))
		if tomb {
			ops = append(ops, clientv3.OpPut(s.k.del(n), ""))
		}
		size += 2*len(s.k.del(n)) + 32
	}
	if len(ops)+fixedOps > MaxTxnOps || size+1024 > MaxTxnBytes || h.overlay+int64(len(put)+len(del)) > int64(overlayMax) {
		return s.rebase(ctx, &h, rec, put, del, false)
	}
	resp, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.k.gipGen()), "=", h.modRev)}, ops, nil)
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return errHeadMoved
	}
	return nil
}

// rebase writes the complete new GIP set as the chunks of a new base
// G+1 (staged in as many transactions as it takes), then, in one last
// transaction, switches P gipgen to it, writes the record and deletes the
// overlay and every other base. With replace the new set is put;
// otherwise it is the current set (read at h's head, or afresh if h is
// nil) with put and del applied.
func (s *Store) rebase(ctx context.Context, h *head, rec []byte, put map[string][]byte, del []string, replace bool) error {
	var cur head
	set := put
	if replace {
		var err error
		if cur, err = s.readHead(ctx); err != nil {
			return err
		}
	} else {
		var all []vipsmart.GIP
		var err error
		cur, all, err = s.readAll(ctx)
		if err != nil {
			return err
		}
		if h != nil && cur.modRev != h.modRev {
			return errHeadMoved
		}
		old := make(map[string][]byte, len(all)+len(put))
		for _, g := range all {
			data, err := json.Marshal(g)
			if err != nil {
				return fmt.Errorf("encode GIP %s: %w", g.Name, err)
			}
			old[g.Name] = data
		}
		for n, d := range put {
			old[n] = d
		}
		for _, n := range del {
			delete(old, n)
		}
		set = old
	}
	chunks := chunk(set, sortedKeys(set))
	next := cur.gen + 1
	same := clientv3.Compare(clientv3.ModRevision(s.k.gipGen()), "=", cur.modRev)
	base := s.k.base(next)
	switchOps := []clientv3.Op{
		clientv3.OpPut(s.k.gipGen(), fmt.Sprintf("%s %d", hex16(next), len(chunks))),
		recordOp(s.k.record(), rec),
		clientv3.OpDelete(s.k.puts(), clientv3.WithPrefix()),
		clientv3.OpDelete(s.k.dels(), clientv3.WithPrefix()),
		// Every base but next: [base/, base/<next>/) and
		// [base/<next>0, base0), '0' being '/'+1.
		clientv3.OpDelete(s.k.bases(), clientv3.WithRange(base)),
		clientv3.OpDelete(strings.TrimSuffix(base, "/")+"0", clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.k.bases()))),
	}
	size := len(rec)
	for _, c := range chunks {
		size += len(c) + len(base) + 32
	}
	if len(chunks)+fixedOps <= MaxTxnOps && size+1024 <= MaxTxnBytes {
		// Chunks of next beyond the new ones, left by an earlier attempt
		// that did not finish, go too.
		ops := append(switchOps, clientv3.OpDelete(s.k.chunk(next, len(chunks)), clientv3.WithRange(clientv3.GetPrefixRangeEnd(base))))
		for i, c := range chunks {
			ops = append(ops, clientv3.OpPut(s.k.chunk(next, i), string(c)))
		}
		return s.commitHead(ctx, same, ops)
	}
	// Stage, after clearing what an earlier attempt that did not finish
	// may have left at next (etcd refuses a put and a delete of one key
	// in one transaction, so that is a transaction of its own).
	if err := s.commitHead(ctx, same, []clientv3.Op{clientv3.OpDelete(base, clientv3.WithPrefix())}); err != nil {
		return err
	}
	var batches [][]clientv3.Op
	var batch []clientv3.Op
	size = 0
	for i, c := range chunks {
		if len(batch) > 0 && (len(batch)+fixedOps >= MaxTxnOps || size+len(c)+len(base)+1024 > MaxTxnBytes) {
			batches = append(batches, batch)
			batch, size = nil, 0
		}
		batch = append(batch, clientv3.OpPut(s.k.chunk(next, i), string(c)))
		size += len(c) + len(base) + 32
	}
	batches = append(batches, batch)
	// The batches are independent: commit them at once, so that etcd can
	// group them into fewer raft rounds and disk syncs.
	if err := s.commitAll(ctx, same, batches); err != nil {
		return err
	}
	return s.commitHead(ctx, same, switchOps)
}

// chunk encodes the GIPs of set (JSON each), in the order of names, as
// JSON arrays of at most ChunkBytes each (a GIP larger than that alone).
func chunk(set map[string][]byte, names []string) [][]byte {
	var out [][]byte
	var cur []byte
	for _, n := range names {
		g := set[n]
		if len(cur) > 0 && len(cur)+1+len(g)+1 > ChunkBytes {
			out = append(out, append(cur, ']'))
			cur = nil
		}
		if len(cur) == 0 {
			cur = append(make([]byte, 0, min(ChunkBytes, 64<<10)), '[')
		} else {
			cur = append(cur, ',')
		}
		cur = append(cur, g...)
	}
	if len(cur) > 0 {
		out = append(out, append(cur, ']'))
	}
	return out
}

// commitAll commits every batch with commitHead, all at once, and returns
// the first error.
func (s *Store) commitAll(ctx context.Context, same clientv3.Cmp, batches [][]clientv3.Op) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(batches))
	var wg sync.WaitGroup
	for _, b := range batches {
		wg.Go(func() {
			if err := s.commitHead(ctx, same, b); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// commitHead commits ops if same (P gipgen unchanged) and the fence hold.
func (s *Store) commitHead(ctx context.Context, same clientv3.Cmp, ops []clientv3.Op) error {
	resp, err := s.txn(ctx, []clientv3.Cmp{same}, ops, nil)
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return errHeadMoved
	}
	return nil
}

func recordOp(key string, rec []byte) clientv3.Op {
	if len(rec) == 0 {
		return clientv3.OpDelete(key)
	}
	return clientv3.OpPut(key, string(rec))
}

func sortedKeys(m map[string][]byte) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// errTryTimedOut is a try of SaveFederation that used up its share of the
// request timeout (the request timeout itself had not passed): written
// again as after a broken connection.
type errTryTimedOut struct{ err error }

func (e errTryTimedOut) Error() string { return "one try timed out: " + e.err.Error() }
func (e errTryTimedOut) Unwrap() error { return e.err }

// isDomain reports whether err carries a *vipsmart.Error (the fence's
// refusal, a bad update): final, never tried again.
func isDomain(err error) bool {
	var e *vipsmart.Error
	return errors.As(err, &e)
}

// retryPause is the pause before SaveFederation writes again after the
// connection to a member broke.
const retryPause = 100 * time.Millisecond

// retryable reports whether err says the member could not serve the
// request (gRPC Unavailable: connection reset, no leader), which another
// member, or the same after etcd's election, may serve; not the
// fence's refusal nor the request timeout.
func retryable(err error) bool {
	if errors.As(err, new(errTryTimedOut)) {
		return true
	}
	if err == nil || errors.Is(err, ErrNotLeader) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var e *vipsmart.Error
	if errors.As(err, &e) {
		return false
	}
	return unavailable(err, 0) == "cannot serve requests"
}
