package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/daemon"
	"github.com/vipsmart/vipsmart/httpapi"
	"github.com/vipsmart/vipsmart/identity"
	"github.com/vipsmart/vipsmart/token"
)

// trustOptions are the flags of `vipsmart serve` about keys, the operator
// socket and the HTTPS operator API.
type trustOptions struct {
	tlsCert, tlsKey, tlsCA string
	socket, socketGroup    string
	apiListen              string
}

func (o *trustOptions) flags(f *pflag.FlagSet) {
	f.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate of this DC (your own PKI; default: a key and self-signed certificate made in --data-dir)")
	f.StringVar(&o.tlsKey, "tls-key", "", "PEM private key of --tls-cert (mode 0600)")
	f.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA bundle: peers' certificates must also chain to it (besides matching their pinned fingerprint)")
	f.StringVar(&o.socket, "socket", httpapi.DefaultSocket, "path of the operator API's unix socket (mode 0660)")
	f.StringVar(&o.socketGroup, "socket-group", "", "group owning the operator socket (name or GID; default: the daemon's group)")
	f.StringVar(&o.apiListen, "api-listen", "", "IP:PORT to also serve the operator API over HTTPS with bearer tokens (default: off)")
}

// maxSocketPath is the longest path a unix socket can have on Linux
// (sun_path is 108 bytes with its terminating NUL).
const maxSocketPath = 107

// listenSocket creates the operator socket at path with mode 0660 and the
// given group. A stale socket left by a daemon that died is replaced; a
// live one is refused.
func listenSocket(path, group, dataDir string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, usageError{fmt.Errorf("--socket %q is %d bytes long; a unix socket path has at most %d: give a shorter --socket", path, len(path), maxSocketPath)}
	}
	gid := -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			g, err = user.LookupGroupId(group)
		}
		if err != nil {
			return nil, usageError{fmt.Errorf("--socket-group %q is not a group of this host", group)}
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	hint := fmt.Sprintf("run as root, or give --socket PATH in a directory you can write (e.g. --socket %s)", filepath.Join(dataDir, "vipsmart.sock"))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the directory of the operator socket %s (%v): %s", path, err, hint)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, usageError{fmt.Errorf("--socket %s exists and is not a socket: remove it or give another --socket", path)}
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another daemon serves on --socket %s: give this one another --socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
		}
	}
	// Create the socket without any permission for others, so that no one
	// connects between its creation and the chmod.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("cannot create the operator socket %s (%v): %s", path, err, hint)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("giving the operator socket to group %s: %w", group, err)
		}
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// trustServe is what serve sets up for trust: the identity, the tokens,
// and the three listeners (federation over mutual TLS, the local socket,
// and, with --api-listen, HTTPS with tokens).
type trustServe struct {
	id      *identity.Identity
	tokens  token.Keeper
	fed     net.Listener
	sock    net.Listener
	api     net.Listener
	servers []*http.Server
	refuse  func(remote, who, key, why string)
	// node is set on a node of a DC on etcd (node.go); op and fedH are
	// the handlers served, switched when a follower becomes the leader.
	node     *nodeRuntime
	op, fedH *switchHandler
}

func setupTrust(o *serveOptions, self vipsmart.DC, log *slog.Logger) (*trustServe, error) {
	t := &trustServe{}
	// Until the daemon runs, refusals only go to the log.
	t.refuse = func(remote, who, key, why string) { log.Warn("refused", "remote", remote, "who", who, "why", why) }
	id, err := identity.Load(identity.Options{Dir: o.dataDir, CertFile: o.trust.tlsCert, KeyFile: o.trust.tlsKey, CAFile: o.trust.tlsCA, Name: self.Name, Addrs: addrsOf(self, o.trust.apiListen)})
	if err != nil {
		return nil, err
	}
	t.id = id
	if t.tokens, err = token.Open(filepath.Join(o.dataDir, token.FileName)); err != nil {
		return nil, err
	}
	if o.trust.apiListen != "" {
		if _, _, err := net.SplitHostPort(o.trust.apiListen); err != nil {
			return nil, usageError{fmt.Errorf("--api-listen %q is not IP:PORT (e.g. 192.0.2.1:9620)", o.trust.apiListen)}
		}
	}
	if t.sock, err = listenSocket(o.trust.socket, o.trust.socketGroup, o.dataDir); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		t.close()
		return nil, fmt.Errorf("cannot listen on %s: %w", o.listen, err)
	}
	refuse := func(remote, why string) { t.refuse(remote, "", "", why) }
	// The connection limit goes under TLS: net/http sees the *tls.Conn
	// (and so the key the peer presented) only if it is the outermost.
	t.fed = identity.NewListener(httpapi.LimitListener(ln), id.PeerServerConfig(refuse), refuse)
	if o.trust.apiListen != "" {
		aln, err := net.Listen("tcp", o.trust.apiListen)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("cannot listen on --api-listen %s: %w", o.trust.apiListen, err)
		}
		t.api = identity.NewListener(httpapi.LimitListener(aln), id.APIServerConfig(), func(remote, why string) { t.refuse(remote, "", "", "operator API: "+why) })
	}
	return t, nil
}

func addrsOf(self vipsmart.DC, apiListen string) []netip.Addr {
	out := []netip.Addr{self.Address}
	if h, _, err := net.SplitHostPort(apiListen); err == nil {
		if a, err := netip.ParseAddr(h); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func (t *trustServe) close() {
	for _, l := range []net.Listener{t.fed, t.sock, t.api} {
		if l != nil {
			l.Close()
		}
	}
}

// serveAll serves the federation listener, the socket and the HTTPS API
// with the daemon d; errors go to errc.
func (t *trustServe) serveAll(d *daemon.Daemon, api *httpapi.Server, log *slog.Logger, errc chan<- error) {
	t.refuse = d.PeerRefused
	op := api.Handler()
	var fed http.Handler
	if t.node != nil { // a node of a DC on etcd, now its leader (node.go)
		fed = t.node.leaderFed(d, op, log)
		op = t.node.withNodes(op)
	} else {
		fed = httpapi.PeerHandler(d, identity.PeerFingerprint, log)
		op = oneNode(op)
	}
	t.start(op, fed, log, errc)
	if t.node != nil {
		t.node.served = t.op
		t.node.leaderServes.Store(true)
	}
}

// start serves the operator API op and the federation listener fed; when
// they are served already (a follower node that now leads), it switches
// to op and fed.
func (t *trustServe) start(op, fedH http.Handler, log *slog.Logger, errc chan<- error) {
	if t.servers != nil {
		t.op.set(op)
		t.fedH.set(fedH)
		return
	}
	t.op, t.fedH = newSwitch(op), newSwitch(fedH)
	// The handshake errors of crypto/tls are refusals already recorded
	// (rate-limited) by the daemon: keep them out of the log.
	quiet := stdlog.New(slogWriter{log}, "", 0)
	// Unclean paths are refused before any route of this command's
	// (node routes in an http.ServeMux) could clean them.
	fed := &http.Server{Handler: httpapi.RefuseUncleanPaths(t.fedH), ReadHeaderTimeout: 5 * time.Second, ErrorLog: quiet}
	sock := &http.Server{Handler: httpapi.RefuseUncleanPaths(t.op), ReadHeaderTimeout: 5 * time.Second, ConnContext: httpapi.SocketCaller}
	httpapi.Harden(fed)
	httpapi.Harden(sock)
	t.servers = []*http.Server{fed, sock}
	go func() { errc <- fed.Serve(t.fed) }()
	// The socket is not wrapped in the connection limit: SocketCaller
	// reads the peer's uid from the *net.UnixConn itself (local users are
	// held by the request limits).
	go func() { errc <- sock.Serve(t.sock) }()
	if t.api != nil {
		if len(t.tokens.ListAPI()) == 0 {
			log.Warn("--api-listen is on but there is no API token yet: every request is refused until one is made (vipsmart token create NAME --role admin|read on this host)")
		}
		api := &http.Server{Handler: httpapi.RequireToken(t.tokens, func(remote, who, why string) { t.refuse(remote, who, "", why) }, httpapi.RefuseUncleanPaths(t.op)), ReadHeaderTimeout: 5 * time.Second, ErrorLog: quiet}
		httpapi.Harden(api)
		t.servers = append(t.servers, api)
		go func() { errc <- api.Serve(t.api) }()
	}
}

// switchHandler serves with the handler set last.
type switchHandler struct{ h atomic.Pointer[http.Handler] }

func newSwitch(h http.Handler) *switchHandler {
	s := &switchHandler{}
	s.set(h)
	return s
}

func (s *switchHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

func (t *trustServe) shutdown(ctx context.Context) {
	for _, s := range t.servers {
		_ = s.Shutdown(ctx)
	}
	t.close()
}

// slogWriter turns the standard logger of net/http into debug records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}

// ---- CLI ----

// clientTLS builds the TLS configuration of an https:// --server from
// --server-fingerprint or --ca (nil: the system's roots).
func (g *globals) clientTLS() (*tls.Config, error) {
	switch {
	case g.fingerprint != "" && g.caFile != "":
		return nil, usageError{errors.New("give --server-fingerprint or --ca, not both")}
	case g.fingerprint != "":
		fp, err := vipsmart.ParseIdentity("--server-fingerprint", g.fingerprint)
		if err != nil {
			return nil, err
		}
		return identity.PinnedConfig(fp), nil
	case g.caFile != "":
		b, err := os.ReadFile(g.caFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--ca: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, usageError{fmt.Errorf("--ca %s holds no PEM certificate", g.caFile)}
		}
		return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}, nil
	}
	return nil, nil
}

func newJoinTokenCmd(g *globals) *cobra.Command {
	var ttl time.Duration
	c := &cobra.Command{
		Use:   "join-token",
		Short: "Make a join token for this (standalone) DC: it prints the token alone",
		Long: `Join-token makes a single-use token that lets a member add this DC to its
federation: run it on the DC to add, then give the token to "vipsmart dc add
NAME,IP,PORT --token TOKEN" on a member. The token carries this DC's name and
key fingerprint (so the member pins this DC's key) and a secret that proves to
this DC that its own operator allowed the invitation. It is stored hashed,
works once (it is used up when the add commits) and expires after --ttl.`,
		Example: `  TOKEN=$(vipsmart dc join-token)                 # on dc-2
  vipsmart dc add dc-2,192.168.0.99,9610 --token "$TOKEN"   # on a member`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < time.Second || ttl > 7*24*time.Hour {
				return usageError{fmt.Errorf("--ttl %s is out of range: give 1s to 168h", ttl)}
			}
			ctx, cancel := g.ctx()
			defer cancel()
			t, err := g.client().CreateJoinToken(ctx, ttl)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, t)
			}
			fmt.Fprintln(g.stdout, t.Token)
			return nil
		},
	}
	c.Flags().DurationVar(&ttl, "ttl", vipsmart.DefaultJoinTokenTTL, "how long the token is valid")
	return c
}

func newRotateIdentityCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-identity",
		Short: "Give this DC a new key, committed on every member or none",
		Long: `Rotate-identity makes a new key pair for the local DC and commits its
fingerprint to the member list as one federation change: on every member, or on
none. The old key works until the change commits; after it, every member
refuses it. With your own certificate (serve --tls-cert), first put the new
certificate and key at the --tls-cert and --tls-key paths with ".next"
appended.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			st, err := g.client().RotateIdentity(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, st)
			}
			fmt.Fprintf(g.stdout, "New key of %s committed: %s\n", st.Name, st.Identity)
			return nil
		},
	}
}

func newTokenCmd(g *globals) *cobra.Command {
	c := group(&cobra.Command{Use: "token", Short: "Manage the API tokens of remote operators (on the DC's host)"})
	var role string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Make an API token for serve --api-listen; it prints the token alone",
		Long: `Create makes a bearer token for the HTTPS operator API (serve --api-listen).
Role admin may do everything the CLI does; role read may only read. The token
is printed once and stored hashed. API tokens are managed on the DC's local
socket only.`,
		Example: "  vipsmart token create ci-deploy --role admin --ttl 720h",
		Args:    exactArgs(1),
		RunE: g.namedRun(func(ctx context.Context, name string) error {
			r, err := vipsmart.ParseRole("--role", role)
			if err != nil {
				return err
			}
			if ttl < 0 {
				return usageError{fmt.Errorf("--ttl %s is negative: give a duration, or 0 for no expiry", ttl)}
			}
			t, err := g.client().CreateToken(ctx, name, r, ttl)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(g.stdout, t)
			}
			fmt.Fprintln(g.stdout, t.Token)
			return nil
		}),
	}
	create.Flags().StringVar(&role, "role", "", "admin or read (required)")
	create.Flags().DurationVar(&ttl, "ttl", 0, "how long the token is valid (default: no expiry)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the API tokens (never their secrets)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			ts, err := g.client().ListTokens(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				if ts == nil {
					ts = []vipsmart.APIToken{}
				}
				return printJSON(g.stdout, ts)
			}
			now := time.Now()
			rows := make([][]string, 0, len(ts))
			for _, t := range ts {
				exp := "never"
				if t.Expires != nil {
					exp = t.Expires.Local().Format(time.RFC3339)
					if !now.Before(*t.Expires) {
						exp += " (expired)"
					}
				}
				rows = append(rows, []string{t.Name, string(t.Role), t.Created.Local().Format(time.RFC3339), exp})
			}
			return table(g.stdout, []string{"NAME", "ROLE", "CREATED", "EXPIRES"}, rows)
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an API token at once",
		Args:  exactArgs(1),
		RunE: g.namedRun(func(ctx context.Context, name string) error {
			if err := g.client().RevokeToken(ctx, name); err != nil {
				return err
			}
			if g.output != "json" {
				fmt.Fprintf(g.stdout, "API token %s revoked\n", name)
			}
			return nil
		}),
	}
	c.AddCommand(create, list, revoke)
	return c
}
