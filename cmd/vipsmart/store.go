package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/bolt"
	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/httpapi"
	"github.com/vipsmart/vipsmart/identity"
)

// defaultLeaseTTL is the default lease of a node's etcd session
// (--etcd-lease-ttl): how long after a node stops renewing it (freeze,
// host down, cut from etcd) its claim and its leadership end and another
// node may lead. The etcd client gives a lease up when no renewal was
// answered for its TTL, so the TTL must outlast an election of etcd's own
// leader (about 1-2 s at etcd's default 1 s election timeout, plus the
// client's reconnection): with 2 s, killing the etcd member a leader
// talks to was seen to end its lease. A leader killed on a live host goes
// faster whatever the TTL: its followers evict it (node.go).
const defaultLeaseTTL = 4 * time.Second

// storeOptions are the store flags of `vipsmart serve`.
type storeOptions struct {
	kind      string
	endpoints []string
	cert      string
	key       string
	ca        string
	prefix    string
	node      string
	leaseTTL  time.Duration
}

func (o *storeOptions) flags(f *pflag.FlagSet) {
	f.StringVar(&o.kind, "store", "bolt", "where the DC's state lives: bolt (a file in --data-dir, one daemon per DC) or etcd (an etcd cluster, one or more nodes per DC)")
	f.StringSliceVar(&o.endpoints, "etcd-endpoints", nil, "etcd: client URLs of the etcd cluster, comma-separated (http://HOST:PORT or https://HOST:PORT)")
	f.StringVar(&o.cert, "etcd-cert", "", "etcd: client certificate file (PEM), with --etcd-key")
	f.StringVar(&o.key, "etcd-key", "", "etcd: client key file (PEM), with --etcd-cert")
	f.StringVar(&o.ca, "etcd-ca", "", "etcd: CA file (PEM) to verify the etcd servers (default: the system's CAs)")
	f.StringVar(&o.prefix, "etcd-prefix", "", "etcd: key prefix of this DC's state (default /vipsmart/<--name>/)")
	f.StringVar(&o.node, "node", "", "this node's name within its DC (default: the host name)")
	f.DurationVar(&o.leaseTTL, "etcd-lease-ttl", defaultLeaseTTL, "etcd: lease of this node's session: a leader that stops renewing it (frozen, host down, cut from etcd) is replaced after this long (whole seconds, at least 2s)")
}

// validate checks the store flags against each other (changed says which
// flags were given) and fills in the node name's default. It changes
// nothing outside o.
func (o *storeOptions) validate(changed func(flag string) bool) error {
	etcdFlags := []string{"etcd-endpoints", "etcd-cert", "etcd-key", "etcd-ca", "etcd-prefix", "etcd-lease-ttl"}
	switch o.kind {
	case "bolt":
		for _, f := range etcdFlags {
			if changed(f) {
				return usageError{fmt.Errorf("--%s is only used with --store etcd (the store is bolt): remove it or give --store etcd", f)}
			}
		}
		return nil
	case "etcd":
	default:
		return usageError{fmt.Errorf("--store %q is unknown: give bolt or etcd", o.kind)}
	}
	if changed("unsafe-no-fsync") {
		return usageError{errors.New("--unsafe-no-fsync applies to the bolt store only: with --store etcd, durability is the etcd server's (its own --unsafe-no-fsync)")}
	}
	if len(o.endpoints) == 0 {
		return usageError{errors.New("--store etcd needs --etcd-endpoints: give the client URLs of the etcd cluster, e.g. --etcd-endpoints https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379")}
	}
	schemes := map[string]bool{}
	for i, e := range o.endpoints {
		e = strings.TrimSpace(e)
		o.endpoints[i] = e
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return usageError{fmt.Errorf("--etcd-endpoints: %q is not an etcd client URL: give http://HOST:PORT or https://HOST:PORT, e.g. https://10.0.0.1:2379", e)}
		}
		schemes[u.Scheme] = true
	}
	if len(schemes) > 1 {
		return usageError{errors.New("--etcd-endpoints mixes http:// and https://: an etcd cluster serves clients over one of them; give all endpoints with the same scheme")}
	}
	if (o.cert == "") != (o.key == "") {
		return usageError{errors.New("--etcd-cert and --etcd-key go together: give both (the client certificate and its key) or neither")}
	}
	if (o.cert != "" || o.ca != "") && schemes["http"] {
		return usageError{errors.New("--etcd-cert, --etcd-key and --etcd-ca need https:// endpoints: the --etcd-endpoints given are http://")}
	}
	for _, f := range []struct{ flag, path string }{{"--etcd-cert", o.cert}, {"--etcd-key", o.key}, {"--etcd-ca", o.ca}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return usageError{fmt.Errorf("%s %s: %w", f.flag, f.path, err)}
		}
	}
	if o.prefix != "" && (len(o.prefix) < 3 || !strings.HasPrefix(o.prefix, "/") || !strings.HasSuffix(o.prefix, "/") || strings.ContainsFunc(o.prefix, func(r rune) bool { return r <= ' ' || r == 0x7f })) {
		return usageError{fmt.Errorf("--etcd-prefix %q must start and end with / and name something below the root, without spaces: e.g. /vipsmart/dc-1/", o.prefix)}
	}
	if o.leaseTTL < 2*time.Second || o.leaseTTL > time.Minute || o.leaseTTL%time.Second != 0 {
		return usageError{fmt.Errorf("--etcd-lease-ttl %s must be whole seconds between 2s and 1m (etcd grants leases in seconds, at least about 2s at its default election timeout)", o.leaseTTL)}
	}
	if o.node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return usageError{errors.New("--node is not given and the host name is unknown: give --node NAME")}
		}
		o.node = strings.ToLower(h)
	}
	if err := validNode(o.node); err != nil {
		return usageError{err}
	}
	return nil
}

// validNode checks a node name: a host name (letters, digits, '-', '.',
// '_'), at most 253 characters.
func validNode(n string) error {
	if len(n) > 253 {
		return fmt.Errorf("--node %q is %d characters long: give a host name of at most 253", n[:32]+"...", len(n))
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("--node %q has the character %q: give a host name (letters, digits, '-', '.', '_')", n, c)
		}
	}
	return nil
}

// openedStore is the store serve runs on.
type openedStore struct {
	vipsmart.Store
	// lost is closed when this node may no longer write (etcd: its
	// leadership ended); nil for bolt, which never loses it.
	lost <-chan struct{}
	// bolt is the bolt store (nil on etcd): rebuild and backup work on it.
	bolt *bolt.Store
	// where describes the store for the log.
	where string
	// etcd and session are the etcd store and this node's session (nil
	// for bolt); Store is nil until the node leads (lead).
	etcd    *etcd.Store
	mu      sync.Mutex
	session *etcd.Session
	// close releases everything (etcd: resigns by revoking the session,
	// so that a standby node takes over at once).
	close func()
}

// openStore opens the store the flags ask for. With etcd it starts the
// node's session and claims the node name; the node then follows until it
// leads (nodeRuntime.follow, then lead).
func openStore(ctx context.Context, log *slog.Logger, o *serveOptions, self vipsmart.DC) (*openedStore, error) {
	if o.store.kind != "etcd" {
		if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("cannot create data directory (set --data-dir): %w", err)
		}
		sopts := boltOptions(log)
		sopts.MaxEvents, sopts.UnsafeNoSync, sopts.Rebuild = o.maxEvents, o.noFsync, o.rebuild.enabled()
		store, err := bolt.Open(filepath.Join(o.dataDir, storeFile), sopts)
		if o.noFsync {
			log.Warn("--unsafe-no-fsync: acknowledged writes can be lost if the machine crashes")
		}
		if err != nil {
			return nil, fmt.Errorf("opening the store in %s: %w", o.dataDir, storeAdvice(err, o.dataDir))
		}
		return &openedStore{Store: store, bolt: store, where: store.Path(), close: func() { _ = store.Close() }}, nil
	}
	so := &o.store
	if so.prefix == "" {
		so.prefix = "/vipsmart/" + self.Name + "/"
	}
	var tlsCfg *tls.Config
	if strings.HasPrefix(so.endpoints[0], "https://") {
		c, err := etcd.TLSConfig(so.cert, so.key, so.ca)
		if err != nil {
			return nil, usageError{fmt.Errorf("--etcd-cert, --etcd-key, --etcd-ca: %w", err)}
		}
		tlsCfg = c
	}
	store, err := etcd.Open(ctx, etcd.Config{Endpoints: so.endpoints, TLS: tlsCfg, Prefix: so.prefix, DC: self.Name, MaxEvents: o.maxEvents})
	if err != nil {
		return nil, fmt.Errorf("opening the etcd store (--etcd-endpoints %s, --etcd-prefix %s): %w", strings.Join(so.endpoints, ","), so.prefix, err)
	}
	// Waiting for the node name or the leadership can take long (a
	// standby waits until the leader goes): SIGINT or SIGTERM ends it,
	// revoking this node's lease on the way out.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	se, err := store.NewSession(ctx, so.node, so.leaseTTL)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("node %s: %w", so.node, err)
	}
	fail := func(err error) (*openedStore, error) {
		_ = se.Close()
		_ = store.Close()
		return nil, err
	}
	info, _ := json.Marshal(nodeInfo{Node: so.node, DC: self.Name, Address: self.AddrPort().String(), PID: os.Getpid()})
	if err := se.Claim(ctx, info); err != nil {
		return fail(fmt.Errorf("node %s of DC %s: %w", so.node, self.Name, err))
	}
	opened := &openedStore{
		etcd:    store,
		session: se,
		where:   "etcd " + strings.Join(so.endpoints, ",") + " " + so.prefix + " node " + so.node,
	}
	opened.close = func() {
		opened.mu.Lock()
		se := opened.session
		opened.mu.Unlock()
		_ = se.Close()
		_ = store.Close()
	}
	return opened, nil
}

// Unwrap returns the store in use, so that the daemon finds its optional
// interfaces (bolt's one-transaction SaveFederationEvents).
func (s *openedStore) Unwrap() vipsmart.Store { return s.Store }

// setSession replaces the node's session (after the old one's lease
// ended).
func (s *openedStore) setSession(se *etcd.Session) {
	s.mu.Lock()
	s.session = se
	s.mu.Unlock()
}

// lead makes s the store of this node as the DC's leader: every write
// fenced by l. A node that leads again (after its lease ended) keeps the
// store and moves the fence to its new term.
func (s *openedStore) lead(l *etcd.Leadership) {
	if f, ok := s.Store.(*etcd.Store); ok {
		f.Refence(l)
	} else {
		s.Store = s.etcd.Fenced(l)
	}
	s.lost = l.Done()
}

// shareIdentity makes this node present the DC's one key (docs/ha.md):
// the first node of the DC stores the key of its --data-dir (generated if
// there is none) in etcd; every other node writes the stored pair into its
// own --data-dir before the identity is loaded. With --tls-cert, the
// operator gives every node the same files, and nothing is shared.
func shareIdentity(ctx context.Context, o *serveOptions, self vipsmart.DC, st *etcd.Store) error {
	if o.trust.tlsCert != "" {
		return nil
	}
	opts := identity.Options{Dir: o.dataDir, Name: self.Name, Addrs: addrsOf(self, o.trust.apiListen)}
	if _, err := identity.Load(opts); err != nil { // generates a pair if there is none
		return err
	}
	certPath, keyPath := filepath.Join(o.dataDir, identity.CertFile), filepath.Join(o.dataDir, identity.KeyFile)
	cert, err := os.ReadFile(certPath)
	if err != nil {
		return err
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		return err
	}
	got, err := st.ShareIdentity(ctx, etcd.SharedIdentity{Cert: cert, Key: key})
	if err != nil {
		return fmt.Errorf("sharing the DC's key through etcd: %w", err)
	}
	if bytes.Equal(got.Cert, cert) && bytes.Equal(got.Key, key) {
		return nil
	}
	if err := os.WriteFile(keyPath+".tmp", got.Key, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(certPath+".tmp", got.Cert, 0o644); err != nil {
		return err
	}
	if err := os.Rename(keyPath+".tmp", keyPath); err != nil {
		return err
	}
	return os.Rename(certPath+".tmp", certPath)
}

// backup is what serves GET /v1/backup: the bolt store's snapshots; nil
// on etcd (back etcd up with etcd's own tools: docs/ha.md).
func (s *openedStore) backup() httpapi.Snapshotter {
	if s.bolt == nil {
		return nil
	}
	return s.bolt
}

// nodeInfo is what a node publishes in its claim.
type nodeInfo struct {
	Node    string `json:"node"`
	DC      string `json:"dc"`
	Address string `json:"address"`
	PID     int    `json:"pid"`
	// Identity is the fingerprint of the key the node presents (the
	// DC's), Version its build.
	Identity string `json:"identity,omitempty"`
	Version  string `json:"version,omitempty"`
}
