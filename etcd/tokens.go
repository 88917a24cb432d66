package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/token"
)

// Tokens are the API and join tokens of a DC on etcd (a token.Keeper),
// shared by every node of the DC:
//
//	P tokens/api/<name>      JSON token.APIRecord (the secret's hash)
//	P tokens/join/<hash>     JSON token.JoinRecord
//	P tokens/imported        set once: the first node imported the tokens
//	                         of its data directory (ImportFile)
//
// Every write is one conditional transaction, so single use holds across
// nodes whichever node writes: a revoke deletes the key and succeeds only
// for the call that deleted it; a join token is marked used only if it is
// unchanged since it was read unused; a name is given only if it is free
// (or held by an expired token, unchanged since read).
//
// Authenticate, ListAPI and HasUnused answer from a cache of the whole
// set, read again from etcd (a linearizable read) every Refresh, and by
// the writer right after each of its own writes. A node accepts an API
// token only from a cache read at most MaxStale ago: a revoke takes effect
// on every node within Refresh (plus one etcd round trip) while etcd
// answers, and within MaxStale in any case (a node that cannot read etcd
// refuses every API token, EUNAVAILABLE, until it can). CheckJoin and
// ConsumeAll read etcd itself.
type Tokens struct {
	st       *Store
	refresh  time.Duration
	maxStale time.Duration
	stop     context.CancelFunc
	done     chan struct{}

	mu    sync.Mutex
	api   map[string]token.APIRecord
	join  map[string]token.JoinRecord
	rev   int64     // the etcd revision the cache reflects
	fresh time.Time // when the read the cache reflects was sent
	err   error     // of the last failed read
}

// The defaults of TokensConfig.
const (
	DefaultTokenRefresh  = 500 * time.Millisecond
	DefaultTokenMaxStale = 3 * time.Second
)

// maxJoinTokens bounds the join tokens kept (the oldest go first).
const maxJoinTokens = 1000

var _ token.Keeper = (*Tokens)(nil)

func (k keys) tokens() string               { return k.p + "tokens/" }
func (k keys) apiTokens() string            { return k.p + "tokens/api/" }
func (k keys) apiToken(name string) string  { return k.p + "tokens/api/" + name }
func (k keys) joinTokens() string           { return k.p + "tokens/join/" }
func (k keys) joinToken(hash string) string { return k.p + "tokens/join/" + hash }
func (k keys) tokensImported() string       { return k.p + "tokens/imported" }

// OpenTokens reads the DC's tokens and keeps the cache fresh until Close
// (or ctx ends). refresh and maxStale of 0 are the defaults.
func (st *Store) OpenTokens(ctx context.Context, refresh, maxStale time.Duration) (*Tokens, error) {
	if refresh <= 0 {
		refresh = DefaultTokenRefresh
	}
	if maxStale <= 0 {
		maxStale = DefaultTokenMaxStale
	}
	if maxStale < refresh {
		return nil, fmt.Errorf("tokens: maxStale %s is shorter than refresh %s", maxStale, refresh)
	}
	t := &Tokens{st: st, refresh: refresh, maxStale: maxStale, done: make(chan struct{})}
	if err := t.read(ctx); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.stop = cancel
	go t.loop(cctx)
	return t, nil
}

// Close stops refreshing the cache.
func (t *Tokens) Close() {
	t.stop()
	<-t.done
}

func (t *Tokens) loop(ctx context.Context) {
	defer close(t.done)
	tick := time.NewTicker(t.refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_ = t.read(ctx)
		}
	}
}

// read replaces the cache with etcd's set (unless the cache already
// reflects a later revision).
func (t *Tokens) read(ctx context.Context) error {
	sent := time.Now()
	var resp *clientv3.GetResponse
	err := t.st.do(ctx, "read the tokens of DC "+t.st.dc, func(ctx context.Context) error {
		var err error
		resp, err = t.st.cli.Get(ctx, t.st.k.tokens(), clientv3.WithPrefix())
		return err
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.err = err
		return err
	}
	t.err = nil
	if resp.Header.Revision < t.rev {
		return nil
	}
	api, join := map[string]token.APIRecord{}, map[string]token.JoinRecord{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		switch {
		case strings.HasPrefix(k, t.st.k.apiTokens()):
			var r token.APIRecord
			if json.Unmarshal(kv.Value, &r) == nil {
				api[r.Name] = r
			}
		case strings.HasPrefix(k, t.st.k.joinTokens()):
			var r token.JoinRecord
			if json.Unmarshal(kv.Value, &r) == nil {
				join[r.Hash] = r
			}
		}
	}
	t.api, t.join, t.rev, t.fresh = api, join, resp.Header.Revision, sent
	return nil
}

// wrote applies a write of this process to the cache at once.
func (t *Tokens) wrote(rev int64, f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rev >= t.rev {
		f()
		t.rev = rev
	}
}

func (t *Tokens) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), t.st.timeout)
}

// ---- API tokens ----

// CreateAPI implements token.Keeper.
func (t *Tokens) CreateAPI(name string, role vipsmart.Role, ttl time.Duration, now time.Time) (vipsmart.NewAPIToken, error) {
	rec, out, err := token.NewAPIRecord(name, role, ttl, now)
	if err != nil {
		return vipsmart.NewAPIToken{}, err
	}
	b, _ := json.Marshal(rec)
	key := t.st.k.apiToken(name)
	ctx, cancel := t.ctx()
	defer cancel()
	var rev int64
	err = t.st.do(ctx, "create API token "+name, func(ctx context.Context) error {
		// Free, or held by an expired token unchanged since read.
		free := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		for range 5 {
			resp, err := t.st.txn(ctx, []clientv3.Cmp{free}, []clientv3.Op{clientv3.OpPut(key, string(b))}, []clientv3.Op{clientv3.OpGet(key)})
			if err != nil {
				return err
			}
			if resp.Succeeded {
				rev = resp.Header.Revision
				return nil
			}
			kvs := resp.Responses[0].GetResponseRange().Kvs
			if len(kvs) == 0 {
				free = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
				continue
			}
			var old token.APIRecord
			if json.Unmarshal(kvs[0].Value, &old) == nil && old.Live(now) {
				return token.ErrAPIExists(name)
			}
			free = clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)
		}
		return vipsmart.Errorf(vipsmart.ECONFLICT, "name", "API token %s is being changed by another node: retry", name)
	})
	if err != nil {
		return vipsmart.NewAPIToken{}, err
	}
	t.wrote(rev, func() { t.api[name] = rec })
	return out, nil
}

// ListAPI implements token.Keeper (from the cache).
func (t *Tokens) ListAPI() []vipsmart.APIToken {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]vipsmart.APIToken, 0, len(t.api))
	for _, r := range t.api {
		out = append(out, r.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// RevokeAPI implements token.Keeper: of two nodes revoking one name at
// once, one succeeds and the other finds no token.
func (t *Tokens) RevokeAPI(name string) error {
	if vipsmart.ValidateName("name", name) != nil {
		return token.ErrNoAPI(name)
	}
	ctx, cancel := t.ctx()
	defer cancel()
	var rev int64
	err := t.st.do(ctx, "revoke API token "+name, func(ctx context.Context) error {
		resp, err := t.st.txn(ctx, nil, []clientv3.Op{clientv3.OpDelete(t.st.k.apiToken(name))}, nil)
		if err != nil {
			return err
		}
		if resp.Responses[0].GetResponseDeleteRange().Deleted != 1 {
			return token.ErrNoAPI(name)
		}
		rev = resp.Header.Revision
		return nil
	})
	if err != nil {
		return err
	}
	t.wrote(rev, func() { delete(t.api, name) })
	return nil
}

// Authenticate implements token.Keeper, from a cache at most MaxStale old.
func (t *Tokens) Authenticate(bearer string, now time.Time) (vipsmart.APIToken, error) {
	a, err := token.ParseAPI(bearer)
	if err != nil {
		return vipsmart.APIToken{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if age := time.Since(t.fresh); age > t.maxStale {
		why := ""
		if t.err != nil {
			why = ": " + t.err.Error()
		}
		return vipsmart.APIToken{}, vipsmart.Errorf(vipsmart.EUNAVAILABLE, "token", "this node could not read the API tokens of DC %s from etcd for %s (a revoked token must not pass): retry, use another node, or the local socket%s", t.st.dc, age.Truncate(time.Millisecond), why)
	}
	r, ok := t.api[a.Name]
	if !ok {
		return token.CheckAPIRecord(nil, a, now)
	}
	return token.CheckAPIRecord(&r, a, now)
}

// ---- join tokens ----

// CreateJoin implements token.Keeper. Join tokens forgotten (a day past
// their expiry) and the oldest beyond 1,000 are deleted on the way.
func (t *Tokens) CreateJoin(name, identity string, ttl time.Duration, now time.Time) (vipsmart.JoinToken, error) {
	rec, out, err := token.NewJoinRecord(name, identity, ttl, now)
	if err != nil {
		return vipsmart.JoinToken{}, err
	}
	b, _ := json.Marshal(rec)
	key := t.st.k.joinToken(rec.Hash)
	ctx, cancel := t.ctx()
	defer cancel()
	var rev int64
	var gone []string
	err = t.st.do(ctx, "create a join token of DC "+t.st.dc, func(ctx context.Context) error {
		all, err := t.st.cli.Get(ctx, t.st.k.joinTokens(), clientv3.WithPrefix())
		if err != nil {
			return err
		}
		type kept struct {
			hash    string
			created time.Time
		}
		var live []kept
		gone = gone[:0]
		for _, kv := range all.Kvs {
			var r token.JoinRecord
			if json.Unmarshal(kv.Value, &r) != nil || r.Forgotten(now) {
				gone = append(gone, strings.TrimPrefix(string(kv.Key), t.st.k.joinTokens()))
				continue
			}
			live = append(live, kept{r.Hash, r.Created})
		}
		if n := len(live) + 1 - maxJoinTokens; n > 0 {
			sort.Slice(live, func(i, j int) bool { return live[i].created.Before(live[j].created) })
			for _, k := range live[:n] {
				gone = append(gone, k.hash)
			}
		}
		if len(gone) > MaxTxnOps-2 {
			gone = gone[:MaxTxnOps-2]
		}
		ops := []clientv3.Op{clientv3.OpPut(key, string(b))}
		for _, h := range gone {
			ops = append(ops, clientv3.OpDelete(t.st.k.joinToken(h)))
		}
		resp, err := t.st.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, ops, nil)
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "", "a join token with the same secret exists (this should never happen): retry")
		}
		rev = resp.Header.Revision
		return nil
	})
	if err != nil {
		return vipsmart.JoinToken{}, err
	}
	t.wrote(rev, func() {
		for _, h := range gone {
			delete(t.join, h)
		}
		t.join[rec.Hash] = rec
	})
	return out, nil
}

// CheckJoin implements token.Keeper: it reads the token's record from
// etcd (not the cache), so a token made through any node, under any
// leader, is found.
func (t *Tokens) CheckJoin(tok, name, identity string, now time.Time) (string, error) {
	h, err := token.ParseJoinFor(tok, name, identity)
	if err != nil {
		return "", err
	}
	ctx, cancel := t.ctx()
	defer cancel()
	var rec *token.JoinRecord
	err = t.st.do(ctx, "check a join token of DC "+t.st.dc, func(ctx context.Context) error {
		resp, err := t.st.cli.Get(ctx, t.st.k.joinToken(h))
		if err != nil {
			return err
		}
		if len(resp.Kvs) > 0 {
			var r token.JoinRecord
			if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
				return fmt.Errorf("join token record %s is damaged: %w", resp.Kvs[0].Key, err)
			}
			rec = &r
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if err := token.CheckJoinRecord(rec, name, now); err != nil {
		return "", err
	}
	return h, nil
}

// HasUnused implements token.Keeper (from the cache).
func (t *Tokens) HasUnused(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.join {
		if r.Unused(now) {
			return true
		}
	}
	return false
}

// ConsumeAll implements token.Keeper: each join token unused at now is
// marked used by one transaction that commits only if the token is
// unchanged since it was read unused, so of several nodes marking at
// once, each token is counted by exactly one.
func (t *Tokens) ConsumeAll(now time.Time, how string) (int, error) {
	ctx, cancel := t.ctx()
	defer cancel()
	marked := map[string]token.JoinRecord{}
	var rev int64
	err := t.st.do(ctx, "mark the join tokens of DC "+t.st.dc+" used", func(ctx context.Context) error {
		all, err := t.st.cli.Get(ctx, t.st.k.joinTokens(), clientv3.WithPrefix())
		if err != nil {
			return err
		}
		for _, kv := range all.Kvs {
			var r token.JoinRecord
			if json.Unmarshal(kv.Value, &r) != nil || !r.Unused(now) {
				continue
			}
			r.Use(now, how)
			b, _ := json.Marshal(r)
			resp, err := t.st.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)}, []clientv3.Op{clientv3.OpPut(string(kv.Key), string(b))}, nil)
			if err != nil {
				return err
			}
			if resp.Succeeded {
				marked[r.Hash] = r
				rev = resp.Header.Revision
			}
		}
		return nil
	})
	if len(marked) > 0 {
		t.wrote(rev, func() {
			for h, r := range marked {
				t.join[h] = r
			}
		})
	}
	return len(marked), err
}

// ---- migration ----

// ImportFile stores the tokens of a data directory's token file (token.File.Export) in etcd,
// if no node of the DC imported any before: the first node of a DC that
// moves to etcd brings its tokens along; later nodes' files are ignored.
// It returns whether it imported, and how many tokens.
func (t *Tokens) ImportFile(ctx context.Context, api []token.APIRecord, join []token.JoinRecord) (bool, int, error) {
	var ops []clientv3.Op
	for _, r := range api {
		if vipsmart.ValidateName("name", r.Name) != nil {
			continue
		}
		b, _ := json.Marshal(r)
		ops = append(ops, clientv3.OpPut(t.st.k.apiToken(r.Name), string(b)))
	}
	for _, r := range join {
		b, _ := json.Marshal(r)
		ops = append(ops, clientv3.OpPut(t.st.k.joinToken(r.Hash), string(b)))
	}
	marker := t.st.k.tokensImported()
	first := min(len(ops), MaxTxnOps-2)
	imported := false
	err := t.st.do(ctx, "import the tokens of this node's data directory into DC "+t.st.dc, func(ctx context.Context) error {
		then := append([]clientv3.Op{clientv3.OpPut(marker, time.Now().UTC().Format(time.RFC3339))}, ops[:first]...)
		resp, err := t.st.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(marker), "=", 0)}, then, nil)
		if err != nil {
			return err
		}
		imported = resp.Succeeded
		if !imported {
			return nil
		}
		// The rest (a file with more tokens than one transaction
		// holds): each only if no node made that key meanwhile.
		for _, op := range ops[first:] {
			k := string(op.KeyBytes())
			if _, err := t.st.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)}, []clientv3.Op{op}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || !imported {
		return false, 0, err
	}
	return true, len(ops), t.read(ctx)
}
