package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/vipmove"
)

// The keys of VIPs that move between a DC's nodes (package vipmove, and
// docs/ha.md "VIPs that move between nodes"):
//
//	P beats/<node>    JSON beatValue, bound to the node's session lease:
//	                  its create revision is the node's incarnation, and
//	                  the node rewrites it every renew interval
//	P holders/<vip>   JSON holderValue: the VIP's holder (node and
//	                  incarnation), or none; no lease
//
// Every write is one transaction with the compares vipmove.Action names.

func (k keys) beats() string               { return k.p + "beats/" }
func (k keys) beat(node string) string     { return k.p + "beats/" + node }
func (k keys) holders() string             { return k.p + "holders/" }
func (k keys) holderKey(vip string) string { return k.p + "holders/" + vip }

type beatValue struct {
	Down     []string `json:"down,omitempty"`
	FencedBy string   `json:"fenced_by,omitempty"`
}

type holderValue struct {
	Node   string    `json:"node,omitempty"`
	Inc    int64     `json:"inc,omitempty"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// MoveState is a consistent snapshot of what the nodes of a DC need to
// move its VIPs: the VIPs (their full configuration, for the checks) and
// the protocol's view.
type MoveState struct {
	VIPs []vipsmart.VIP
	View vipmove.View
}

// MoveState reads the VIPs, beats and holders at one revision.
func (s *Store) MoveState(ctx context.Context) (MoveState, error) {
	var out MoveState
	err := s.do(ctx, "read the VIP holders of DC "+s.dc, func(ctx context.Context) error {
		resp, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(s.k.vips(), clientv3.WithPrefix()),
			clientv3.OpGet(s.k.beats(), clientv3.WithPrefix()),
			clientv3.OpGet(s.k.holders(), clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return err
		}
		m := newMoveMaps(s.k)
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				m.put(string(kv.Key), kv.Value, kv.CreateRevision, kv.ModRevision)
			}
		}
		out = m.state(resp.Header.Revision)
		return nil
	})
	return out, err
}

// moveMaps is MoveState being built from keys and watch events.
type moveMaps struct {
	k       keys
	vips    map[string]vipsmart.VIP
	beats   map[string]vipmove.Beat
	holders map[string]vipmove.Holding
}

func newMoveMaps(k keys) *moveMaps {
	return &moveMaps{k: k, vips: map[string]vipsmart.VIP{}, beats: map[string]vipmove.Beat{}, holders: map[string]vipmove.Holding{}}
}

func (m *moveMaps) put(key string, val []byte, create, mod int64) {
	switch {
	case strings.HasPrefix(key, m.k.vips()):
		var v vipsmart.VIP
		if json.Unmarshal(val, &v) == nil {
			m.vips[strings.TrimPrefix(key, m.k.vips())] = v
		}
	case strings.HasPrefix(key, m.k.beats()):
		n := strings.TrimPrefix(key, m.k.beats())
		var b beatValue
		_ = json.Unmarshal(val, &b) // a damaged value: a beat with nothing down
		m.beats[n] = vipmove.Beat{Node: n, Inc: create, Rev: mod, Fenced: b.FencedBy != "", Down: b.Down}
	case strings.HasPrefix(key, m.k.holders()):
		n := strings.TrimPrefix(key, m.k.holders())
		var h holderValue
		_ = json.Unmarshal(val, &h)
		m.holders[n] = vipmove.Holding{Node: h.Node, Inc: h.Inc, Rev: mod, Since: h.Since, Reason: h.Reason}
	}
}

func (m *moveMaps) del(key string) {
	switch {
	case strings.HasPrefix(key, m.k.vips()):
		delete(m.vips, strings.TrimPrefix(key, m.k.vips()))
	case strings.HasPrefix(key, m.k.beats()):
		delete(m.beats, strings.TrimPrefix(key, m.k.beats()))
	case strings.HasPrefix(key, m.k.holders()):
		delete(m.holders, strings.TrimPrefix(key, m.k.holders()))
	}
}

func (m *moveMaps) state(rev int64) MoveState {
	out := MoveState{View: vipmove.View{Rev: rev, Beats: make(map[string]vipmove.Beat, len(m.beats)), Holders: make(map[string]vipmove.Holding, len(m.holders))}}
	for _, v := range m.vips {
		out.VIPs = append(out.VIPs, v)
	}
	slices.SortFunc(out.VIPs, func(a, b vipsmart.VIP) int { return strings.Compare(a.Name, b.Name) })
	for _, v := range out.VIPs {
		out.View.VIPs = append(out.View.VIPs, vipmove.VIP{Name: v.Name, Nodes: v.Nodes, Preempt: v.Preempt})
	}
	for n, b := range m.beats {
		out.View.Beats[n] = b
	}
	for n, h := range m.holders {
		out.View.Holders[n] = h
	}
	return out
}

// WatchMove sends MoveState once at the start and again after every change
// of a VIP, beat or holder key, until ctx ends; then it closes the
// channel. Only the latest state matters: a slow reader skips
// intermediate ones. While etcd does not answer nothing is sent.
func (s *Store) WatchMove(ctx context.Context) <-chan MoveState {
	ch := make(chan MoveState, 1)
	put := func(st MoveState) {
		for {
			select {
			case ch <- st:
				return
			case <-ctx.Done():
				return
			default:
			}
			select {
			case <-ch:
			default:
			}
		}
	}
	go func() {
		defer close(ch)
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, s.timeout)
			resp, err := s.cli.Txn(rctx).Then(
				clientv3.OpGet(s.k.vips(), clientv3.WithPrefix()),
				clientv3.OpGet(s.k.beats(), clientv3.WithPrefix()),
				clientv3.OpGet(s.k.holders(), clientv3.WithPrefix()),
			).Commit()
			cancel()
			if err != nil {
				if s.closed.Load() {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			m := newMoveMaps(s.k)
			for _, r := range resp.Responses {
				for _, kv := range r.GetResponseRange().Kvs {
					m.put(string(kv.Key), kv.Value, kv.CreateRevision, kv.ModRevision)
				}
			}
			put(m.state(resp.Header.Revision))
			wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			wch := s.cli.Watch(wctx, s.k.p, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
			for wr := range wch {
				if wr.Err() != nil {
					break
				}
				changed := false
				for _, ev := range wr.Events {
					key := string(ev.Kv.Key)
					if !strings.HasPrefix(key, s.k.vips()) && !strings.HasPrefix(key, s.k.beats()) && !strings.HasPrefix(key, s.k.holders()) {
						continue
					}
					changed = true
					if ev.Type == clientv3.EventTypeDelete {
						m.del(key)
					} else {
						m.put(key, ev.Kv.Value, ev.Kv.CreateRevision, ev.Kv.ModRevision)
					}
				}
				if changed {
					put(m.state(wr.Header.Revision))
				}
			}
			wcancel()
		}
	}()
	return ch
}

// DoMove makes the write a of node node's vipmove engine, with lease (the
// node's session lease) for its beat, and returns the result to hand back
// to the engine. A compare that fails is a Result that is not OK (for a
// Renew, Lost); an etcd that does not answer is an error.
func (s *Store) DoMove(ctx context.Context, node string, lease clientv3.LeaseID, a vipmove.Action) (vipmove.Result, error) {
	var res vipmove.Result
	err := s.do(ctx, a.Kind.String()+" VIP holder state of node "+node, func(ctx context.Context) error {
		var err error
		res, err = s.doMove(ctx, node, lease, a)
		return err
	})
	return res, err
}

func (s *Store) doMove(ctx context.Context, node string, lease clientv3.LeaseID, a vipmove.Action) (vipmove.Result, error) {
	beat := s.k.beat(node)
	switch a.Kind {
	case vipmove.Register:
		val, _ := json.Marshal(beatValue{Down: a.Down})
		for range 10 {
			resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(beat), "=", 0)).
				Then(clientv3.OpPut(beat, string(val), clientv3.WithLease(lease))).
				Else(clientv3.OpGet(beat)).Commit()
			if err != nil {
				return vipmove.Result{}, err
			}
			if resp.Succeeded {
				return vipmove.Result{OK: true, Inc: resp.Header.Revision, Rev: resp.Header.Revision}, nil
			}
			// A beat of a former run of this node: end that incarnation.
			kvs := resp.Responses[0].GetResponseRange().Kvs
			if len(kvs) == 0 {
				continue
			}
			if _, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(beat), "=", kvs[0].ModRevision)).
				Then(clientv3.OpDelete(beat)).Commit(); err != nil {
				return vipmove.Result{}, err
			}
		}
		return vipmove.Result{}, fmt.Errorf("the beat key %s keeps changing: is another process running as node %s?", beat, node)
	case vipmove.Renew:
		val, _ := json.Marshal(beatValue{Down: a.Down})
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(beat), "=", a.Rev)).
			Then(clientv3.OpPut(beat, string(val), clientv3.WithIgnoreLease())).
			Else(clientv3.OpGet(beat)).Commit()
		if err != nil {
			return vipmove.Result{}, err
		}
		if !resp.Succeeded {
			// Still this incarnation's and not fenced: an earlier renewal
			// committed and its answer was lost.
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 && kvs[0].CreateRevision == a.Inc && a.Inc != 0 {
				var b beatValue
				if json.Unmarshal(kvs[0].Value, &b) == nil && b.FencedBy == "" {
					return vipmove.Result{Rev: kvs[0].ModRevision}, nil
				}
			}
			return vipmove.Result{Lost: true}, nil
		}
		return vipmove.Result{OK: true, Inc: 0, Rev: resp.Header.Revision}, nil
	case vipmove.Take:
		hk := s.k.holderKey(a.VIP)
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(hk), "=", a.HolderRev),
			clientv3.Compare(clientv3.CreateRevision(beat), "=", a.Inc),
		}
		if a.Prev != "" {
			pk := s.k.beat(a.Prev)
			if a.PrevBeatRev != 0 {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(pk), "=", a.PrevBeatRev))
			} else {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(pk), "=", a.PrevBeatInc))
			}
		}
		val, _ := json.Marshal(holderValue{Node: node, Inc: a.Inc, Since: time.Now().UTC(), Reason: a.Reason})
		ops := []clientv3.Op{clientv3.OpPut(hk, string(val))}
		if a.Fence && a.Prev != "" && a.Prev != node {
			fv, _ := json.Marshal(beatValue{FencedBy: node})
			ops = append(ops, clientv3.OpPut(s.k.beat(a.Prev), string(fv), clientv3.WithIgnoreLease()))
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return vipmove.Result{}, err
		}
		return vipmove.Result{OK: resp.Succeeded, Rev: resp.Header.Revision}, nil
	case vipmove.Release:
		hk := s.k.holderKey(a.VIP)
		op := clientv3.OpDelete(hk)
		if !a.Delete {
			val, _ := json.Marshal(holderValue{Since: time.Now().UTC(), Reason: a.Reason})
			op = clientv3.OpPut(hk, string(val))
		}
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(hk), "=", a.HolderRev)).Then(op).Commit()
		if err != nil {
			return vipmove.Result{}, err
		}
		return vipmove.Result{OK: resp.Succeeded, Rev: resp.Header.Revision}, nil
	}
	return vipmove.Result{}, fmt.Errorf("unknown vipmove action %d", a.Kind)
}

// FenceBeat marks node's beat fenced (by names who did) if it is still
// incarnation inc's, and reports whether it did: what the address guard
// does once the daemon died and the guard removed its addresses, so that
// the other nodes take its VIPs at once instead of after the takeover
// time.
func (s *Store) FenceBeat(ctx context.Context, node string, inc int64, by string) (bool, error) {
	var ok bool
	err := s.do(ctx, "fence the beat of node "+node, func(ctx context.Context) error {
		beat := s.k.beat(node)
		val, _ := json.Marshal(beatValue{FencedBy: by})
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(beat), "=", inc)).
			Then(clientv3.OpPut(beat, string(val), clientv3.WithIgnoreLease())).Commit()
		if err != nil {
			return err
		}
		ok = resp.Succeeded
		return nil
	})
	return ok, err
}
