package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipsmart/vipsmart"
)

// AppendEvents stores events, giving each the next sequence number (from
// 1, never reused, ignoring any Seq the caller set), and returns copies so
// numbered; it drops the oldest events beyond the store's MaxEvents in the
// same transaction. Appending no events changes nothing. A batch that does
// not fit in one transaction is stored as several, in order.
func (s *Store) AppendEvents(ctx context.Context, events []vipsmart.Event) ([]vipsmart.Event, error) {
	out := make([]vipsmart.Event, len(events))
	copy(out, events)
	err := s.do(ctx, "append events", func(ctx context.Context) error {
		if len(out) == 0 {
			return nil
		}
		data := make([][]byte, len(out))
		for i := range out {
			out[i].Seq = 0
			d, err := json.Marshal(out[i])
			if err != nil {
				return fmt.Errorf("encode event: %w", err)
			}
			data[i] = d
		}
		s.eventsMu.Lock()
		defer s.eventsMu.Unlock()
		for start := 0; start < len(out); {
			n, size := 0, 0
			for start+n < len(out) && n+4 < MaxTxnOps && size+len(data[start+n])+128+len(s.k.p) < MaxTxnBytes {
				size += len(data[start+n]) + 64 + len(s.k.p)
				n++
			}
			if n == 0 {
				return fmt.Errorf("event of %d bytes is too large for one etcd request", len(data[start]))
			}
			if err := s.appendChunk(ctx, out[start:start+n], data[start:start+n]); err != nil {
				return err
			}
			start += n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// appendChunk numbers and stores evs (data is their JSON without Seq) in
// one transaction that commits only if P eventseq is unchanged since it
// was read, retrying otherwise.
func (s *Store) appendChunk(ctx context.Context, evs []vipsmart.Event, data [][]byte) error {
	for {
		resp, err := s.cli.Get(ctx, s.k.eventSeq())
		if err != nil {
			return err
		}
		var last uint64
		if len(resp.Kvs) > 0 {
			if last, err = strconv.ParseUint(string(resp.Kvs[0].Value), 10, 64); err != nil {
				return fmt.Errorf("event sequence %q at %s is not a number: the prefix is damaged", resp.Kvs[0].Value, s.k.eventSeq())
			}
		}
		newLast := last + uint64(len(evs))
		keepFrom := uint64(1)
		if newLast > uint64(s.maxEvents) {
			keepFrom = newLast - uint64(s.maxEvents) + 1
		}
		ops := []clientv3.Op{
			clientv3.OpPut(s.k.eventSeq(), strconv.FormatUint(newLast, 10)),
			clientv3.OpDelete(s.k.events(), clientv3.WithRange(s.k.event(keepFrom))),
		}
		for i := range evs {
			seq := last + 1 + uint64(i)
			if seq < keepFrom {
				continue // dropped at once: beyond the bound
			}
			// The stored JSON has no seq: the key holds it.
			ops = append(ops, clientv3.OpPut(s.k.event(seq), string(data[i])))
		}
		tr, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.k.eventSeq()), "=", modRev(resp))}, ops, nil)
		if err != nil {
			return err
		}
		if tr.Succeeded {
			for i := range evs {
				evs[i].Seq = last + 1 + uint64(i)
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// ListEvents returns up to limit events with Seq > after, oldest first (an
// empty, non-nil slice when there are none). A limit of 0 or less means no
// limit.
func (s *Store) ListEvents(ctx context.Context, after uint64, limit int) ([]vipsmart.Event, error) {
	events := []vipsmart.Event{}
	err := s.do(ctx, "list events", func(ctx context.Context) error {
		if after == ^uint64(0) {
			return nil
		}
		opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.k.events()))}
		if limit > 0 {
			opts = append(opts, clientv3.WithLimit(int64(limit)))
		}
		resp, err := s.cli.Get(ctx, s.k.event(after+1), opts...)
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			k := strings.TrimPrefix(string(kv.Key), s.k.events())
			seq, err := strconv.ParseUint(k, 16, 64)
			if err != nil {
				return fmt.Errorf("event key %s is not a sequence number: the prefix is damaged", kv.Key)
			}
			var e vipsmart.Event
			if err := json.Unmarshal(kv.Value, &e); err != nil {
				return fmt.Errorf("decode event %d: %w", seq, err)
			}
			e.Seq = seq
			events = append(events, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}
