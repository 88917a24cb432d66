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
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/bolt"
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
	trust      trustOptions
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
			conf, err := loadConfig(cmd, o)
			if err != nil {
				return usageError{err}
			}
			if err := bindEnv(cmd.Flags(), conf); err != nil {
				return usageError{err}
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
	o.trust.flags(f)
	f.BoolVar(&o.noFsync, "unsafe-no-fsync", false, "skip fsync on store writes (benchmarks only: a machine crash can lose acknowledged writes)")
	f.DurationVar(&o.shutdownTO, "shutdown-timeout", 5*time.Second, "how long a clean shutdown waits for requests in flight")
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
	conf := map[string]any{}
	if err := yaml.Unmarshal(b, &conf); err != nil {
		return nil, fmt.Errorf("config file %s is not valid YAML: %w", path, err)
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
	hopts := &slog.HandlerOptions{Level: lvl}
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
	log, err := newLogger(o, os.Stderr)
	if err != nil {
		return usageError{err}
	}
	self, err := selfDC(o)
	if err != nil {
		return err
	}
	if o.maxEvents < 100 {
		return usageError{fmt.Errorf("--max-events %d is too small: give at least 100", o.maxEvents)}
	}
	if o.fed.HeartbeatInterval < time.Millisecond || o.fed.HeartbeatMisses < 1 || o.fed.InviteTTL <= 0 || o.fed.ReviewTTL <= 0 || o.fed.PhaseTimeout <= 0 {
		return usageError{errors.New("--heartbeat-interval (>= 1ms), --heartbeat-misses (>= 1), --invite-ttl, --review-ttl and --phase-timeout must be positive")}
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("cannot create data directory (set --data-dir): %w", err)
	}
	store, err := bolt.Open(filepath.Join(o.dataDir, "vipsmart.db"), bolt.Options{MaxEvents: o.maxEvents, UnsafeNoSync: o.noFsync})
	if o.noFsync {
		log.Warn("--unsafe-no-fsync: acknowledged writes can be lost if the machine crashes")
	}
	if err != nil {
		return fmt.Errorf("opening the store in %s: %w", o.dataDir, err)
	}
	defer store.Close()

	ts, err := setupTrust(o, self, log)
	if err != nil {
		return err
	}
	self.Identity = ts.id.Fingerprint()
	o.fed.OpIDs = opIDs(self.Name)
	ann, err := o.ann.build(ctx, log)
	if err != nil {
		ts.close()
		return err
	}
	cfg := daemon.Config{Self: self, Store: store, Transport: httpapi.NewPeerClient(ts.id.PeerClientConfig), Federation: o.fed, Logger: log, Announcer: ann, Keys: ts.id, Tokens: ts.tokens}
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
	srvErr := make(chan error, 3)
	ts.serveAll(d, log, srvErr)
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(runCtx) }()
	log.Info("vipsmart serving", "name", self.Name, "listen", ts.fed.Addr().String(), "advertise", self.AddrPort().String(), "socket", o.trust.socket, "api_listen", o.trust.apiListen, "identity", ts.id.Fingerprint(), "data_dir", o.dataDir)

	var runErr error
	ranOut := false
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", "signal")
	case runErr = <-srvErr:
		log.Error("stopping: the API server failed", "err", runErr)
	case runErr = <-runDone:
		ranOut = true
		log.Error("stopping: the daemon failed", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTO)
	defer cancel()
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
