package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/daemon"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/httpapi"
)

// serveOptions are the flags of `vipsmart serve`.
type serveOptions struct {
	config     string
	name       string
	listen     string
	advertise  string
	dataDir    string
	logFormat  string
	logLevel   string
	maxEvents  int
	fed        federation.Config
	shutdownTO time.Duration
	noFsync    bool
	ann        announcerOptions
	move       moveOptions
	store      storeOptions
	rebuild    rebuildOptions
	actWait    time.Duration
	trust      trustOptions
	witness    bool // witness.go

	metricsListen string
	// cmd is the serve command and cmdline the flags given on its command
	// line (a reload keeps them); level is the live log level.
	cmd     *cobra.Command
	cmdline map[string]bool
	level   *slog.LevelVar
}

func newServeCmd(g *globals) *cobra.Command {
	o := &serveOptions{}
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon of one DC",
		Long: `Serve runs the vipsmart daemon of one DC: the federation listener (mutual TLS
between DCs only) on --listen, the operator API on the unix socket --socket (and
over HTTPS with tokens on --api-listen, if set), the embedded store (a bbolt
file) and the DC's key in --data-dir, and the federation protocol. Every flag can also be set with an environment variable
VIPSMART_<FLAG> (upper case, '-' as '_', e.g. VIPSMART_DATA_DIR) or as a key of
the YAML file given with --config (keys are flag names, e.g. "data-dir").
Precedence: flag, environment, config file, default. SIGINT or SIGTERM stops
it cleanly.`,
		Example: "  vipsmart serve --name dc-1 --listen 192.168.0.98:9610 --data-dir /var/lib/vipsmart",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.cmd, o.cmdline = cmd, map[string]bool{}
			cmd.Flags().Visit(func(f *pflag.Flag) { o.cmdline[f.Name] = true })
			conf, err := loadConfig(cmd, o)
			if err != nil {
				return usageError{err}
			}
			given := changedFlags(cmd.Flags())
			if err := bindEnv(cmd.Flags(), conf); err != nil {
				return usageError{err}
			}
			if err := checkServeFlags(cmd.Flags(), given, conf, configPath(cmd, o)); err != nil {
				return usageError{err}
			}
			if err := o.store.validate(cmd.Flags().Changed); err != nil {
				return err
			}
			if err := o.move.validate(o.store.kind, cmd.Flags().Changed); err != nil {
				return err
			}
			if o.store.kind == "etcd" && o.rebuild.enabled() {
				return usageError{errors.New("--rebuild-federation and --rebuild-from apply to the bolt store only: a DC on etcd keeps its state in etcd (see docs/ha.md)")}
			}
			return serve(cmd.Context(), g, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.config, "config", "", "YAML config file whose keys are flag names (env VIPSMART_CONFIG)")
	f.StringVar(&o.name, "name", "", "this DC's name, a DNS label unique in the federation (required)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:9610", "ADDR:PORT of the federation listener (mutual TLS between DCs)")
	f.StringVar(&o.advertise, "advertise", "", "IP:PORT other DCs use to reach this one (default: --listen)")
	f.StringVar(&o.dataDir, "data-dir", "/var/lib/vipsmart", "directory of the embedded store")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.IntVar(&o.maxEvents, "max-events", 10000, "events kept in the event log")
	f.DurationVar(&o.fed.HeartbeatInterval, "heartbeat-interval", federation.DefaultHeartbeatInterval, "interval of heartbeats between members")
	f.IntVar(&o.fed.HeartbeatMisses, "heartbeat-misses", federation.DefaultHeartbeatMisses, "missed heartbeat intervals after which a member is unreachable")
	f.DurationVar(&o.fed.InviteTTL, "invite-ttl", federation.DefaultInviteTTL, "how long a candidate stays invited before reverting to standalone")
	f.DurationVar(&o.fed.ReviewTTL, "review-ttl", federation.DefaultReviewTTL, "how long a member stays in candidate-review or leaving before reverting to member")
	f.DurationVar(&o.fed.PhaseTimeout, "phase-timeout", federation.DefaultPhaseTimeout, "how long a coordinator waits for the answers of one phase of an operation")
	o.ann.flags(f)
	o.store.flags(f)
	o.move.flags(f)
	o.rebuild.flags(f)
	f.DurationVar(&o.actWait, "activation-wait", daemon.DefaultActivationWait, "longest a DC waits, before activating a GIP, for a better placement's VIP health that is not known yet")
	o.trust.flags(f)
	f.BoolVar(&o.noFsync, "unsafe-no-fsync", false, "skip fsync on store writes (benchmarks only: a machine crash can lose acknowledged writes)")
	f.DurationVar(&o.shutdownTO, "shutdown-timeout", 5*time.Second, "how long a clean shutdown waits for requests in flight")
	o.opsFlags(f)
	o.witnessFlag(f)
	return c
}

// loadConfig reads the YAML config file named by --config or
// VIPSMART_CONFIG; it refuses keys that are not flags of serve.
func loadConfig(cmd *cobra.Command, o *serveOptions) (map[string]any, error) {
	path := o.config
	if !cmd.Flags().Changed("config") {
		path = os.Getenv(envName("config"))
	}
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	conf, err := configValues(path, b)
	if err != nil {
		return nil, err
	}
	for k := range conf {
		if k == "config" || cmd.Flags().Lookup(k) == nil {
			return nil, fmt.Errorf("config file %s: unknown key %q (keys are the flag names of `vipsmart serve`, e.g. data-dir)", path, k)
		}
	}
	return conf, nil
}

func newLogger(o *serveOptions, w *os.File) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q is unknown: give debug, info, warn or error", o.logLevel)
	}
	if o.level == nil {
		o.level = &slog.LevelVar{}
	}
	o.level.Set(lvl)
	hopts := &slog.HandlerOptions{Level: o.level}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("--log-format %q is unknown: give text or json", o.logFormat)
}

// selfDC derives this DC's identity from --name, --listen and --advertise.
func selfDC(o *serveOptions) (vipsmart.DC, error) {
	if o.name == "" {
		return vipsmart.DC{}, usageError{errors.New("--name is required: give this DC's name, e.g. --name dc-1 (or VIPSMART_NAME)")}
	}
	if err := vipsmart.ValidateName("--name", o.name); err != nil {
		return vipsmart.DC{}, err
	}
	lhost, lport, err := net.SplitHostPort(o.listen)
	if err != nil {
		return vipsmart.DC{}, usageError{fmt.Errorf("--listen %q is not ADDR:PORT (e.g. 127.0.0.1:9610 or [::1]:9610)", o.listen)}
	}
	if _, err := vipsmart.ParsePort("--listen port", lport); err != nil {
		return vipsmart.DC{}, err
	}
	adv := o.advertise
	if adv == "" {
		adv = o.listen
		if a, err := netip.ParseAddr(lhost); lhost == "" || err != nil || a.IsUnspecified() {
			return vipsmart.DC{}, usageError{fmt.Errorf("--listen %q does not name one address other DCs can use: give --advertise IP:PORT", o.listen)}
		}
	}
	ah, ap, err := net.SplitHostPort(adv)
	if err != nil {
		return vipsmart.DC{}, usageError{fmt.Errorf("--advertise %q is not IP:PORT", adv)}
	}
	a, err := vipsmart.ParseHostAddr("--advertise address", ah)
	if err != nil {
		return vipsmart.DC{}, err
	}
	p, err := vipsmart.ParsePort("--advertise port", ap)
	if err != nil {
		return vipsmart.DC{}, err
	}
	return vipsmart.DC{Name: o.name, Address: a, Port: p}, nil
}

func serve(ctx context.Context, g *globals, o *serveOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// SIGHUP reloads the configuration; it never stops the daemon, not
	// even while it starts.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log, err := newLogger(o, os.Stderr)
	if err != nil {
		return usageError{err}
	}
	setMemoryLimit(log)
	heapPages := adviseHeap()
	self, err := selfDC(o)
	if err != nil {
		return err
	}
	if o.maxEvents < 100 {
		return usageError{fmt.Errorf("--max-events %d is too small: give at least 100", o.maxEvents)}
	}
	if err := checkFedTimers(o.fed); err != nil {
		return usageError{err}
	}
	if o.actWait <= 0 {
		return usageError{fmt.Errorf("--activation-wait %s must be positive (e.g. 10s)", o.actWait)}
	}
	if o.rebuild.enabled() {
		if _, err := o.rebuild.parse(); err != nil {
			return err
		}
	}
	store, err := openStore(ctx, log, o, self)
	if err != nil {
		return err
	}
	defer store.close()
	if store.etcd != nil {
		if err := shareIdentity(ctx, o, self, store.etcd); err != nil {
			return err
		}
	}
	// The DC's key is made after the store is opened (a fresh data
	// directory holds neither yet; a key beside a missing store is
	// evidence of a lost one).
	ts, err := setupTrust(o, self, log)
	if err != nil {
		return err
	}
	if store.etcd != nil {
		// The DC's tokens are shared by its nodes (sharedtrust.go).
		closeTokens, err := shareTokens(ctx, log, store.etcd, ts)
		if err != nil {
			ts.close()
			return err
		}
		defer closeTokens()
	}
	self.Identity = ts.id.Fingerprint()
	peers := httpapi.NewPeerClient(ts.id.PeerClientConfig)
	srvErr := make(chan error, 3)
	var ann vipsmart.Announcer
	var inherited []vipsmart.Announcement
	var mv *mover // the VIP mover of a node on etcd (vipmove.go)
	if store.etcd != nil {
		// A node of a DC on etcd follows until it leads (node.go),
		// announcing the leader's set meanwhile (nodeannounce.go).
		if ann, err = o.ann.build(ctx, log); err != nil {
			ts.close()
			return err
		}
		nctx, cancelNode := context.WithCancel(ctx)
		defer cancelNode()
		fann := followerAnnouncer(ann)
		var split *splitAnnouncer
		if o.move.enabled {
			// Each VIP is held by one node (vipmove.go).
			split, mv = startMover(ctx, log, o, store, ann)
			defer mv.stop()
			ann = mainPart{split}
			fann = ann
		}
		var led bool
		led, inherited, err = followThenLead(nctx, log, o, self, store, ts, peers, srvErr, fann)
		if split != nil {
			split.setFollower(false)
		}
		if err != nil || !led {
			sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTO)
			ts.shutdown(sctx)
			if cerr := ann.Close(sctx); cerr != nil {
				log.Error("withdrawing announcements", "err", cerr)
			}
			cancel()
			return err
		}
	}
	if o.rebuild.enabled() {
		// Before the daemon serves: the others never see it behind.
		if err := o.rebuild.run(ctx, log, store.bolt, self, peers); err != nil {
			ts.close()
			return err
		}
	}
	o.fed.OpIDs = opIDs(self.Name)
	if ann == nil {
		if ann, err = o.ann.build(ctx, log); err != nil {
			ts.close()
			return err
		}
	}
	ops := newServeOps(o, log)
	if err := ops.registerAnnouncers(); err != nil {
		ts.close()
		return err
	}
	if err := o.checkWitness(&self); err != nil {
		ts.close()
		return err
	}
	cfg := daemon.Config{Self: self, Store: store, Transport: peers, Federation: o.fed, Logger: log, Announcer: ann, Metrics: ops.reg, ActivationWait: o.actWait, Keys: ts.id, Tokens: ts.tokens, Inherited: inherited}
	if store.etcd != nil {
		// The DC's key is shared through etcd, rotations too
		// (sharedkey.go); it may have changed while this node followed.
		keys, err := newSharedKeys(ctx, log, ts.id, store, o.trust.tlsCert != "")
		if err != nil {
			ts.close()
			return err
		}
		keys.retired = ts.node.retire
		cfg.Keys = keys
		cfg.Self.Identity = ts.id.Fingerprint()
	}
	if cfg.Fault, err = testFault(log); err != nil {
		ts.close()
		return usageError{err}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(ctx, cfg)
	if err != nil {
		ts.close()
		return err
	}
	ops.d = d
	var svc vipsmart.Service = d
	if mv != nil {
		svc = moveService{d, mv}
	}
	ts.serveAll(d, &httpapi.Server{Service: svc, Trust: d, Backup: store.backup(), Logger: log, Ops: ops.api()}, log, srvErr)
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(runCtx) }()
	if ts.node != nil {
		go ts.node.syncNodes(runCtx, d) // nodesync.go
	}
	if err := ops.listenMetrics(); err != nil {
		cancelRun()
		<-runDone
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ts.shutdown(sctx)
		cancel()
		return err
	}
	go ops.notifyReady(runCtx)
	log.Info("vipsmart serving", "name", self.Name, "listen", ts.fed.Addr().String(), "advertise", self.AddrPort().String(), "socket", o.trust.socket, "api_listen", o.trust.apiListen, "identity", ts.id.Fingerprint(), "data_dir", o.dataDir, "store", store.where, "version", buildInfo().Version, "heap_huge_pages", heapPages)

	var runErr error
	ranOut := false
	lost, regained := store.lost, make(chan error, 1)
wait:
	for {
		select {
		case <-hup:
			ops.reload(ctx, o.cmd)
		case <-ctx.Done():
			log.Info("shutting down", "reason", "signal")
			break wait
		case runErr = <-srvErr:
			log.Error("stopping: the API server failed", "err", runErr)
			break wait
		case runErr = <-runDone:
			ranOut = true
			if fencedOut(runErr) { // nodesync.go
				// A node whose term ended had to store a change (one the
				// new leader committed, heard from a peer): its write
				// was fenced, so it stops, as in regain (node.go).
				runErr = fmt.Errorf("node %s lost the leadership of DC %s: it could not store a change, its write fenced (%w): stopping, so that only the leader acts; restarted, it follows", o.store.node, self.Name, runErr)
				log.Error("stopping: leadership lost", "err", runErr)
				break wait
			}
			log.Error("stopping: the daemon failed", "err", runErr)
			break wait
		case <-lost:
			// A DC on etcd: this node's lease ended (node.go, regain).
			lost = nil
			log.Warn("the etcd lease of this node ended (etcd unreachable, or this process frozen): it keeps announcing, answering heartbeats and reads from memory and refuses changes until it leads again or another node does", "node", o.store.node, "lease_ttl", o.store.leaseTTL)
			go func() { regained <- ts.node.regain(runCtx, store) }()
		case err := <-regained:
			if err != nil {
				runErr = err
				log.Error("stopping: leadership lost", "err", runErr)
				break wait
			}
			lost = store.lost
			log.Info("leading the DC again", "dc", self.Name, "node", o.store.node)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTO)
	defer cancel()
	ops.close(sctx)
	ts.shutdown(sctx)
	// Stop the daemon and wait for it: it withdraws every announcement
	// before Run returns, and that must happen before the process exits.
	cancelRun()
	if !ranOut {
		if err := <-runDone; err != nil && runErr == nil {
			runErr = err
		}
	}
	if runErr != nil && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	log.Info("stopped")
	return nil
}

// opIDs makes operation ids NAME-RANDOM-COUNTER: RANDOM is drawn once per
// process, so ids stay unique even when a data directory is wiped and the
// DC starts over (federation ids are made from operation ids).
func opIDs(name string) func() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	prefix := name + "-" + hex.EncodeToString(b[:]) + "-"
	var n uint64
	return func() string {
		n++
		return prefix + strconv.FormatUint(n, 10)
	}
}

// testFault returns the test-only crash point set by VIPSMART_TEST_FAULT
// ("persist:TEXT" or "send:TYPE[:N]", see daemon.Fault): the process kills
// itself with SIGKILL there. It exists for the end-to-end tests of crashes
// in the middle of an operation; never set it in production.
func testFault(log *slog.Logger) (*daemon.Fault, error) {
	spec := os.Getenv("VIPSMART_TEST_FAULT")
	if spec == "" {
		return nil, nil
	}
	f, err := daemon.ParseFault(spec)
	if err != nil {
		return nil, fmt.Errorf("VIPSMART_TEST_FAULT: %w", err)
	}
	log.Warn("test crash point armed", "fault", spec)
	f.Crash = func(why string) {
		log.Warn("test crash point reached: SIGKILL", "where", why)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Second)
	}
	return f, nil
}
