package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipsmart/vipsmart"
)

// fixedOps is how many operations a SaveFederation transaction needs
// besides its GIP puts and deletes: gipgen, the record, two range deletes,
// and the fence's Get in the Else branch.
const fixedOps = 5

// errHeadMoved means P gipgen changed between the read and the write: the
// caller reads again and retries.
var errHeadMoved = errors.New("the GIP generation changed meanwhile")

// head is the current GIP generation as read, with the key's mod revision
// (0 when the key does not exist yet) and the revision of the read.
type head struct {
	gen    uint64
	modRev int64
	rev    int64
	record []byte
}

// readHead reads P gipgen and the record in one transaction.
func (s *Store) readHead(ctx context.Context) (head, error) {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.k.gipGen()), clientv3.OpGet(s.k.record())).Commit()
	if err != nil {
		return head{}, err
	}
	h := head{rev: resp.Header.Revision}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		g, err := strconv.ParseUint(string(kvs[0].Value), 16, 64)
		if err != nil {
			return head{}, fmt.Errorf("GIP generation %q at %s is not a hex number: the prefix is damaged", kvs[0].Value, s.k.gipGen())
		}
		h.gen, h.modRev = g, kvs[0].ModRevision
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 && len(kvs[0].Value) > 0 {
		h.record = bytes.Clone(kvs[0].Value)
	}
	return h, nil
}

// readGIPs reads the GIPs of h's generation at h's revision, sorted by name.
func (s *Store) readGIPs(ctx context.Context, h head) ([]vipsmart.GIP, error) {
	pfx := s.k.gips(h.gen)
	resp, err := s.cli.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(h.rev))
	if err != nil {
		return nil, err
	}
	gips := make([]vipsmart.GIP, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var g vipsmart.GIP
		if err := json.Unmarshal(kv.Value, &g); err != nil {
			return nil, fmt.Errorf("decode GIP %s: %w", strings.TrimPrefix(string(kv.Key), pfx), err)
		}
		gips = append(gips, g)
	}
	return gips, nil
}

// LoadFederation returns the federation record last saved (nil if none,
// or if the last save had an empty record) and every GIP, sorted by name
// (an empty, non-nil slice when there are none), as one consistent
// snapshot.
func (s *Store) LoadFederation(ctx context.Context) ([]byte, []vipsmart.GIP, error) {
	var rec []byte
	var gips []vipsmart.GIP
	err := s.do(ctx, "load federation", func(ctx context.Context) error {
		for {
			h, err := s.readHead(ctx)
			if err != nil {
				return err
			}
			gips, err = s.readGIPs(ctx, h)
			if errors.Is(err, rpctypes.ErrCompacted) {
				continue // compacted between the two reads: read again
			}
			rec = h.record
			return err
		}
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
		put[g.Name] = data
	}
	var del []string
	if !u.ReplaceGIPs {
		for _, n := range u.DeleteGIPs {
			if _, ok := put[n]; ok {
				delete(put, n) // deletes come after puts
			}
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
			h, err := s.readHead(ctx)
			if err != nil {
				return err
			}
			if !u.ReplaceGIPs && s.fits(len(put)+len(del), sizeOf(put)+len(rec)) {
				err = s.saveIncremental(ctx, h, rec, put, del)
			} else {
				err = s.saveGeneration(ctx, h, rec, u.ReplaceGIPs, put, del)
			}
			if errors.Is(err, errHeadMoved) || errors.Is(err, rpctypes.ErrCompacted) {
				if err := ctx.Err(); err != nil {
					return err
				}
				continue
			}
			return err
		}
	})
}

// saveIncremental writes the record and the GIP puts and deletes on the
// current generation in one transaction.
func (s *Store) saveIncremental(ctx context.Context, h head, rec []byte, put map[string][]byte, del []string) error {
	ops := []clientv3.Op{recordOp(s.k.record(), rec)}
	pfx := s.k.gips(h.gen)
	for _, n := range sortedKeys(put) {
		ops = append(ops, clientv3.OpPut(pfx+n, string(put[n])))
	}
	for _, n := range del {
		ops = append(ops, clientv3.OpDelete(pfx+n))
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

// saveGeneration writes the complete new GIP set under generation h.gen+1
// (staged in as many transactions as it takes when it does not fit in
// one), then switches to it, writes the record and deletes every other
// generation in one last transaction. With replace the new set is put;
// otherwise it is the current set with put and del applied.
func (s *Store) saveGeneration(ctx context.Context, h head, rec []byte, replace bool, put map[string][]byte, del []string) error {
	set := put
	if !replace {
		cur, err := s.readGIPs(ctx, h)
		if err != nil {
			return err
		}
		set = make(map[string][]byte, len(cur)+len(put))
		for _, g := range cur {
			data, err := json.Marshal(g)
			if err != nil {
				return fmt.Errorf("encode GIP %s: %w", g.Name, err)
			}
			set[g.Name] = data
		}
		for n, d := range put {
			set[n] = d
		}
		for _, n := range del {
			delete(set, n)
		}
	}
	next := h.gen + 1
	pfx := s.k.gips(next)
	same := clientv3.Compare(clientv3.ModRevision(s.k.gipGen()), "=", h.modRev)
	// Delete every generation but next: [gips/, gips/<next>/) and
	// [gips/<next>0, gips0), '0' being '/'+1.
	all := s.k.gipsAll()
	dropOthers := []clientv3.Op{
		clientv3.OpDelete(all, clientv3.WithRange(pfx)),
		clientv3.OpDelete(strings.TrimSuffix(pfx, "/")+"0", clientv3.WithRange(clientv3.GetPrefixRangeEnd(all))),
	}
	names := sortedKeys(set)
	if s.fits(len(names), sizeOf(set)+len(rec)) {
		ops := append([]clientv3.Op{clientv3.OpPut(s.k.gipGen(), hex16(next)), recordOp(s.k.record(), rec)}, dropOthers...)
		for _, n := range names {
			ops = append(ops, clientv3.OpPut(pfx+n, string(set[n])))
		}
		return s.commitHead(ctx, same, ops)
	}
	// Stage, after clearing what a crashed earlier attempt may have left
	// at next (etcd refuses a put and a delete of one key in one
	// transaction, so that is a transaction of its own).
	if err := s.commitHead(ctx, same, []clientv3.Op{clientv3.OpDelete(pfx, clientv3.WithPrefix())}); err != nil {
		return err
	}
	var batches [][]clientv3.Op
	var batch []clientv3.Op
	size := 0
	for i, n := range names {
		batch = append(batch, clientv3.OpPut(pfx+n, string(set[n])))
		size += s.opOverhead() + len(n) + len(set[n])
		last := i == len(names)-1
		if last || len(batch)+fixedOps >= MaxTxnOps || size+s.opOverhead()+len(names[i+1])+len(set[names[i+1]])+1024 > MaxTxnBytes {
			batches = append(batches, batch)
			batch, size = nil, 0
		}
	}
	// The batches are independent: commit a few at once, so etcd can
	// group them into fewer raft rounds and disk syncs.
	if err := s.commitAll(ctx, same, batches); err != nil {
		return err
	}
	return s.commitHead(ctx, same, append([]clientv3.Op{clientv3.OpPut(s.k.gipGen(), hex16(next)), recordOp(s.k.record(), rec)}, dropOthers...))
}

// stagingParallelism is how many staging transactions run at once.
const stagingParallelism = 8

// commitAll commits every batch with commitHead, stagingParallelism at a
// time, and returns the first error.
func (s *Store) commitAll(ctx context.Context, same clientv3.Cmp, batches [][]clientv3.Op) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, stagingParallelism)
	errs := make(chan error, len(batches))
	var wg sync.WaitGroup
	for _, b := range batches {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
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

// fits says whether n GIP operations whose names and values add up to
// size bytes fit in one transaction with the fixed ones.
func (s *Store) fits(n, size int) bool {
	return n+fixedOps <= MaxTxnOps && size+n*s.opOverhead()+1024 <= MaxTxnBytes
}

// opOverhead bounds the bytes one GIP operation adds to a request beyond
// its name and value: the key prefix and the protobuf framing.
func (s *Store) opOverhead() int { return len(s.k.gips(0)) + 32 }

func sizeOf(m map[string][]byte) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	return n
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
