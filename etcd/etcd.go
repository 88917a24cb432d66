// Package etcd is a vipsmart.Store on an etcd cluster, for DCs that run
// several daemons (nodes) on one shared, replicated store. It also holds
// what those nodes need from etcd beyond storage: a lease-backed session
// per node, the election of one leader per DC, fencing (every write of the
// leader conditional on still being the leader) and node claims (each node's
// key, alive as long as its lease). It uses etcd's own client and its
// concurrency package; it runs no consensus of its own.
//
// # Key layout
//
// Everything lives under one prefix P (by default /vipsmart/<dc name>/),
// so one etcd cluster can hold many DCs, and nothing is written outside it:
//
//	P schema                 "1", the layout version (SchemaVersion)
//	P dc                     the DC name the prefix belongs to
//	P vips/<name>            JSON vipsmart.VIP
//	P vipaddrs/<address>     VIP name: the address uniqueness index
//	P federation             the opaque federation record (absent if empty)
//	P gipgen                 "G N": the GIP base is generation G (16 hex
//	                         digits) in N chunks
//	P gips/base/<G>/<i>      base chunk i (8 hex digits): a JSON array of
//	                         GIPs sorted by name, at most ChunkBytes
//	P gips/put/<name>        overlay: JSON vipsmart.GIP, added or replacing
//	                         the base's
//	P gips/del/<name>        overlay: the base's GIP name is deleted
//	P eventseq               the last event sequence number handed out
//	P events/<seq, 16 hex>   JSON vipsmart.Event
//	P election/<lease, hex>  the leader election (concurrency.Election)
//	P nodes/<node>           a node's claim, bound to its session lease
//	P identity               JSON SharedIdentity: the DC's key pair, which
//	                         every node presents (ShareIdentity)
//	P identity.next          JSON SharedIdentity: a rotation's pending pair
//	P identity.current       the fingerprint the leader promoted last
//	P tokens/api/<name>      JSON token.APIRecord (Tokens)
//	P tokens/join/<hash>     JSON token.JoinRecord
//	P tokens/imported        the first node imported its token file
//	P beats/<node>           a node's VIP-holder beat (vipmove.go)
//	P holders/<vip>          JSON: a VIP's holder node (vipmove.go)
//
// The GIP set is the base with the overlay applied: a versioned blob (in
// chunks) plus per-GIP keys. A name never has both a put and a del key,
// and del keys exist only over a base that has chunks.
//
// # Invariants
//
// Every method is atomic against concurrent writers (a read, then
// transactions that commit only if what was read is unchanged; they retry
// otherwise), and durable once it returns nil (etcd fsyncs its raft log on
// a quorum before it answers). A store made by Fenced adds the leader's
// fence to every transaction, so a node that is no longer the leader
// changes nothing (ErrNotLeader).
//
// etcd limits one transaction to 128 operations and one request to 1.5 MiB
// by default (--max-txn-ops, --max-request-bytes); this package stays
// within MaxTxnOps and MaxTxnBytes, below those defaults, whatever the
// size of the state:
//
//   - An incremental SaveFederation (the record and a few GIP puts and
//     deletes, as gip add/update/remove make) is one transaction that
//     writes overlay keys, as long as it fits and the overlay stays within
//     1,000 keys. It also writes P gipgen again (the same value), so that
//     every save moves P gipgen's revision.
//   - Every SaveFederation transaction commits only while P gipgen's
//     revision is the one its try read. A try that did not answer in half
//     the request timeout (a member that forwarded it to a leader that
//     died waits longer than that) is tried again on a fresh read; if the
//     first try is applied late, after a later save, its compare fails and
//     it changes nothing: an old state never comes back.
//   - A GIP replacement (a candidate receiving the federation's state, a DC
//     catching up), or an incremental update too large for that, writes
//     the complete new set as the chunks of a new base G+1: about 2 MB and
//     8 chunks for 10,000 GIPs, one transaction if it fits, else staged in
//     as many as it takes (run at once). Staged chunks are invisible:
//     readers use only the base named by P gipgen. A last small transaction
//     then switches P gipgen to G+1, writes the record, and deletes the
//     overlay and every other base. Every staging transaction and the
//     switch commit only while P gipgen is unchanged (and the fence holds),
//     so a replacement is all or nothing: a crash part-way leaves the old
//     state visible, and stray chunks that the next replacement deletes.
//   - LoadFederation reads P gipgen, the record and every GIP key in one
//     transaction: one consistent snapshot.
//   - AppendEvents numbers events from P eventseq with a compare-and-swap,
//     so numbers are never reused, and deletes the events beyond MaxEvents in
//     the same transaction. A batch of more than MaxTxnOps-4 events (never
//     the case for the daemon) is stored as several such transactions.
//
// # Errors
//
// Every call takes a context and also gives up after Config.RequestTimeout.
// When etcd cannot answer (no endpoint reachable, no quorum, no leader, out
// of space) the error is a vipsmart.EUNAVAILABLE whose message starts with
// "store unavailable: ". A write that fails that way may or may not have been
// applied (the answer was lost), as with any networked store; every write
// here is safe to repeat (it fails with ECONFLICT or ENOTFOUND if it was).
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vipsmart/vipsmart"
)

// SchemaVersion is the version of the key layout this package reads and
// writes. Open refuses a prefix with a newer version.
const SchemaVersion = 1

// The limits this package keeps each transaction within. They are below
// etcd's defaults (--max-txn-ops 128, --max-request-bytes 1.5 MiB), so the
// etcd cluster must run with at least those defaults.
const (
	MaxTxnOps   = 100
	MaxTxnBytes = 1 << 20
)

// The defaults of Config.
const (
	DefaultMaxEvents      = 10000
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultKeepAlive      = 2 * time.Second
)

// errClosed is returned by every method called after Close.
var errClosed = errors.New("store is closed")

// Config says where a Store lives. Endpoints, Prefix and DC are required.
type Config struct {
	// Endpoints are the client URLs of the etcd cluster
	// (http://HOST:PORT or https://HOST:PORT).
	Endpoints []string
	// TLS, if set, is used for https endpoints (see TLSConfig).
	TLS *tls.Config
	// Prefix is the key prefix of the DC's state; it must end with "/".
	Prefix string
	// DC is the name of the DC. Open records it at the prefix the first
	// time and refuses a prefix that holds another DC's state.
	DC string
	// MaxEvents is how many events the store keeps, dropping the oldest
	// beyond it; 0 or less means DefaultMaxEvents.
	MaxEvents int
	// DialTimeout bounds connecting to etcd; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// RequestTimeout bounds every call; 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// KeepAlive is how long a connection may stay silent before the
	// client pings etcd, and how long it then waits for the answer before
	// it drops the connection and tries another endpoint; 0 means
	// DefaultKeepAlive.
	KeepAlive time.Duration
}

// TLSConfig loads the client certificate, key and trusted CA for https
// endpoints. Each file may be empty: no client certificate (cert and key
// go together), or the system's trusted CAs.
func TLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("a client certificate needs both its certificate and its key file")
	}
	info := transport.TLSInfo{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: caFile}
	if certFile == "" && caFile == "" {
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading etcd TLS files: %w", err)
	}
	return c, nil
}

// shared is what a Store and its fenced views have in common.
type shared struct {
	cli       *clientv3.Client
	k         keys
	dc        string
	endpoints string
	maxEvents int
	timeout   time.Duration
	closed    atomic.Bool
	fedMu     sync.Mutex // serializes SaveFederation within this process
	eventsMu  sync.Mutex // serializes AppendEvents within this process
}

// Store is a vipsmart.Store kept in etcd. It is safe for concurrent use.
type Store struct {
	*shared
	fence atomic.Pointer[Leadership] // nil: writes are not fenced
}

var _ vipsmart.Store = (*Store)(nil)

// Open connects to etcd and opens the DC's state at cfg.Prefix, creating
// the schema and DC markers if the prefix is empty. It refuses a prefix
// with a newer schema, one that belongs to another DC, and one that holds
// keys but no vipsmart schema (another program's data).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("open etcd store: no endpoints")
	}
	if len(cfg.Prefix) < 2 || !strings.HasSuffix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("open etcd store: prefix %q must end with / and name something below the root, e.g. /vipsmart/dc-1/", cfg.Prefix)
	}
	if cfg.DC == "" {
		return nil, errors.New("open etcd store: no DC name")
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		TLS:         cfg.TLS,
		DialTimeout: cfg.DialTimeout,
		// Keepalives find a dead connection (and let the client move to
		// another endpoint) without waiting for a request to time out.
		DialKeepAliveTime:    cfg.KeepAlive,
		DialKeepAliveTimeout: cfg.KeepAlive,
		// The client would log retries as JSON on stderr; every failure
		// reaches the caller as an error instead.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("open etcd store at %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s := &Store{shared: &shared{
		cli:       cli,
		k:         keys{cfg.Prefix},
		dc:        cfg.DC,
		endpoints: strings.Join(cfg.Endpoints, ","),
		maxEvents: cfg.MaxEvents,
		timeout:   cfg.RequestTimeout,
	}}
	if err := s.init(ctx); err != nil {
		_ = cli.Close()
		return nil, err
	}
	return s, nil
}

// init creates or checks the schema and DC markers.
func (s *Store) init(ctx context.Context) error {
	op := "open etcd store at " + s.k.p
	return s.do(ctx, op, func(ctx context.Context) error {
		resp, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(s.k.schema()), "=", 0),
		).Then(
			clientv3.OpGet(s.k.p, clientv3.WithPrefix(), clientv3.WithCountOnly()),
		).Else(
			clientv3.OpGet(s.k.schema()),
			clientv3.OpGet(s.k.dc()),
		).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			if n := resp.Responses[0].GetResponseRange().Count; n > 0 {
				return fmt.Errorf("prefix %s holds %d keys but no vipsmart schema marker (%s): it is not a vipsmart store; choose another prefix", s.k.p, n, s.k.schema())
			}
			resp, err := s.cli.Txn(ctx).If(
				clientv3.Compare(clientv3.CreateRevision(s.k.schema()), "=", 0),
			).Then(
				clientv3.OpPut(s.k.schema(), strconv.Itoa(SchemaVersion)),
				clientv3.OpPut(s.k.dc(), s.dc),
			).Commit()
			if err != nil {
				return err
			}
			if !resp.Succeeded {
				return s.init(ctx) // another process created it: check it
			}
			return nil
		}
		v := resp.Responses[0].GetResponseRange().Kvs[0].Value
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 {
			return fmt.Errorf("schema version %q at %s is not a positive integer: the prefix is damaged or not a vipsmart store", v, s.k.schema())
		}
		if n > SchemaVersion {
			return fmt.Errorf("schema version %d at %s is newer than version %d, the newest this vipsmart supports: upgrade vipsmart", n, s.k.schema(), SchemaVersion)
		}
		dcs := resp.Responses[1].GetResponseRange().Kvs
		if len(dcs) == 0 {
			return fmt.Errorf("prefix %s has a schema marker but no DC marker (%s): the prefix is damaged", s.k.p, s.k.dc())
		}
		if got := string(dcs[0].Value); got != s.dc {
			return fmt.Errorf("prefix %s holds the state of DC %s, not of DC %s: give each DC its own prefix", s.k.p, got, s.dc)
		}
		return nil
	})
}

// Prefix returns the key prefix of the store.
func (s *Store) Prefix() string { return s.k.p }

// Client returns the etcd client the store uses (for the daemon's own
// watches and for tests). Closing the store closes it.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Close closes the connection to etcd. Every call after the first,
// including Close, fails; so do calls on the store's fenced views.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("close etcd store %s: %w", s.k.p, errClosed)
	}
	if err := s.cli.Close(); err != nil {
		return fmt.Errorf("close etcd store %s: %w", s.k.p, err)
	}
	return nil
}

// do runs fn with ctx bounded by the request timeout, after checking that
// ctx is live and s is open, and turns its error into the package's errors
// (see fail).
func (s *Store) do(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	fence := s.fence.Load()
	if fence != nil && fence.ended() {
		return fence.unavailable(op)
	}
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if fence != nil {
		// A term that ends while the call waits (etcd lost its quorum,
		// so the lease could not be renewed) ends the wait: the node
		// must not block for the whole request timeout once it knows.
		go func() {
			select {
			case <-fence.done:
				cancel()
			case <-tctx.Done():
			}
		}()
	}
	err := fn(tctx)
	if err != nil && fence != nil && fence.ended() && ctx.Err() == nil && !errors.Is(err, ErrNotLeader) {
		return fence.unavailable(op)
	}
	return s.fail(ctx, op, err)
}

// fail maps err for op: a *vipsmart.Error passes unchanged; the caller's
// own cancellation is wrapped as such; an etcd that cannot answer becomes
// EUNAVAILABLE ("store unavailable: ..."); anything else is wrapped with op.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var e *vipsmart.Error
	if errors.As(err, &e) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", op, cerr)
	}
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	if why := unavailable(err, s.timeout); why != "" {
		return &vipsmart.Error{
			Code:    vipsmart.EUNAVAILABLE,
			Message: fmt.Sprintf("store unavailable: %s: etcd at %s %s", op, s.endpoints, why),
			Err:     err,
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unavailable says why err means etcd could not serve the request, or ""
// if it means something else.
func unavailable(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("did not answer within %s", timeout)
	}
	code := codes.OK
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	switch code {
	case codes.DeadlineExceeded:
		return fmt.Sprintf("did not answer within %s", timeout)
	case codes.Unavailable:
		return "cannot serve requests"
	case codes.ResourceExhausted:
		if errors.Is(err, rpctypes.ErrNoSpace) {
			return "is out of space (alarm NOSPACE: compact, defragment and disarm it)"
		}
		return "is overloaded"
	}
	return ""
}

// txn runs one transaction whose Then ops commit only if every cmp holds
// and, for a fenced store, the fence holds. It returns the response; when
// it did not commit because the fence failed, the error is ErrNotLeader.
// els are run when it does not commit, and their responses come first.
func (s *Store) txn(ctx context.Context, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	fence := s.fence.Load()
	if fence != nil {
		cmps = append(cmps[:len(cmps):len(cmps)], fence.cmp())
		els = append(els[:len(els):len(els)], clientv3.OpGet(fence.key))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded && fence != nil {
		kvs := resp.Responses[len(resp.Responses)-1].GetResponseRange().Kvs
		if len(kvs) == 0 || kvs[0].CreateRevision != fence.rev {
			return nil, fence.notLeader()
		}
	}
	return resp, nil
}

// keys builds the keys of the layout (see the package doc).
type keys struct{ p string }

func (k keys) schema() string             { return k.p + "schema" }
func (k keys) dc() string                 { return k.p + "dc" }
func (k keys) vips() string               { return k.p + "vips/" }
func (k keys) vip(name string) string     { return k.p + "vips/" + name }
func (k keys) vipAddr(addr string) string { return k.p + "vipaddrs/" + addr }
func (k keys) record() string             { return k.p + "federation" }
func (k keys) eventSeq() string           { return k.p + "eventseq" }
func (k keys) events() string             { return k.p + "events/" }
func (k keys) event(seq uint64) string    { return k.p + "events/" + hex16(seq) }
func (k keys) election() string           { return k.p + "election" }
func (k keys) nodes() string              { return k.p + "nodes/" }
func (k keys) node(name string) string    { return k.p + "nodes/" + name }

func hex16(n uint64) string { return fmt.Sprintf("%016x", n) }
