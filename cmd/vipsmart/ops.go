package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/daemon"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/httpapi"
	"github.com/vipsmart/vipsmart/ui"
)

// The operability of `vipsmart serve`: the metrics registry and its
// optional listener, readiness towards systemd, and SIGHUP reloads.

func (o *serveOptions) opsFlags(f *pflag.FlagSet) {
	f.StringVar(&o.metricsListen, "metrics-listen", "", "IP:PORT of an extra listener that serves only GET /metrics (Prometheus), e.g. 127.0.0.1:9611 (default: none; /metrics is always on the API)")
}

// serveOps is the operability state of one serve run.
type serveOps struct {
	o        *serveOptions
	log      *slog.Logger
	reg      *prometheus.Registry
	d        *daemon.Daemon
	reloadOK prometheus.Gauge
	reloadAt prometheus.Gauge
	metrics  *http.Server
}

// newServeOps makes the registry with the process-wide series (build info,
// Go runtime, process, reloads); the daemon and the announcers register
// their own on it.
func newServeOps(o *serveOptions, log *slog.Logger) *serveOps {
	s := &serveOps{o: o, log: log, reg: prometheus.NewRegistry()}
	b := buildInfo()
	s.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vipsmart_config_last_reload_successful", Help: "1 if the last configuration reload (SIGHUP) succeeded (also before any reload), else 0."})
	s.reloadAt = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vipsmart_config_last_reload_success_timestamp_seconds", Help: "Time of the last successful configuration reload, or of the start, in seconds since the epoch."})
	s.reloadOK.Set(1)
	s.reloadAt.SetToCurrentTime()
	s.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vipsmart_build_info",
			Help:        "Always 1; the labels say which vipsmart binary runs.",
			ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
		}, func() float64 { return 1 }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.reloadOK, s.reloadAt,
	)
	return s
}

// api is what the operator API serves beside its routes.
func (s *serveOps) api() httpapi.Ops {
	return httpapi.Ops{Ready: s.d.Ready, Metrics: s.handler(), UI: ui.Handler(s.d, ui.Options{})}
}

// handler serves the registry in the Prometheus text format.
func (s *serveOps) handler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})
}

// registerAnnouncers adds the announcers' own series.
func (s *serveOps) registerAnnouncers() error {
	if a := s.o.ann.bgp; a != nil {
		if err := s.reg.Register(a.Collector()); err != nil {
			return fmt.Errorf("registering the BGP metrics: %w", err)
		}
	}
	return nil
}

// listenMetrics starts the --metrics-listen listener, if any.
func (s *serveOps) listenMetrics() error {
	if s.o.metricsListen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(s.o.metricsListen); err != nil {
		return usageError{fmt.Errorf("--metrics-listen %q is not IP:PORT (e.g. 127.0.0.1:9611)", s.o.metricsListen)}
	}
	ln, err := net.Listen("tcp", s.o.metricsListen)
	if err != nil {
		return fmt.Errorf("cannot listen on --metrics-listen %s: %w", s.o.metricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "only GET /metrics is served here", http.StatusNotFound)
	})
	s.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("the metrics listener failed", "err", err)
		}
	}()
	s.log.Info("serving metrics", "listen", ln.Addr().String())
	return nil
}

func (s *serveOps) close(ctx context.Context) {
	if s.metrics != nil {
		_ = s.metrics.Shutdown(ctx)
	}
	_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
}

// notifyReady tells systemd (Type=notify) that the daemon is ready once
// it is (see /readyz), and keeps quiet outside systemd (no NOTIFY_SOCKET).
func (s *serveOps) notifyReady(ctx context.Context) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.d.Ready(rctx)
		cancel()
		if err == nil {
			if _, err := sddaemon.SdNotify(false, sddaemon.SdNotifyReady); err != nil {
				s.log.Warn("telling systemd we are ready", "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// reloadable are the serve flags a SIGHUP applies to the running daemon;
// every other flag that changed is named as needing a restart.
var reloadable = map[string]bool{
	"log-level": true, "shutdown-timeout": true,
	"heartbeat-interval": true, "heartbeat-misses": true, "invite-ttl": true, "review-ttl": true, "phase-timeout": true,
	"bgp-peer": true, "bgp-hold-time": true, "bgp-peer-password": true, "bgp-multihop": true,
	"bgp-community": true, "bgp-standby-community": true, "bgp-standby-prepend": true, "bgp-next-hop": true, "bgp-next-hop6": true,
	"garp-count": true, "garp-interval": true,
}

var fedFlags = []string{"heartbeat-interval", "heartbeat-misses", "invite-ttl", "review-ttl", "phase-timeout"}

// flagValues snapshots every flag's value (slice flags item by item).
func flagValues(fs *pflag.FlagSet) map[string][]string {
	out := map[string][]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			out[f.Name] = slices.Clone(sv.GetSlice())
			return
		}
		out[f.Name] = []string{f.Value.String()}
	})
	return out
}

// setFlagValue sets f to v, as flagValues gave it.
func setFlagValue(f *pflag.Flag, v []string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.Replace(v)
	}
	if len(v) == 0 {
		return f.Value.Set("")
	}
	return f.Value.Set(v[0])
}

// defaultValue is f's default as flagValues would give it: a slice flag's
// DefValue is "[a,b]" with CSV quoting.
func defaultValue(f *pflag.Flag) []string {
	if _, ok := f.Value.(pflag.SliceValue); !ok {
		return []string{f.DefValue}
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(f.DefValue, "["), "]")
	if inner == "" {
		return nil
	}
	items, err := csv.NewReader(strings.NewReader(inner)).Read()
	if err != nil {
		return strings.Split(inner, ",")
	}
	return items
}

// restore puts the flags named in names back to the values of snap.
func restore(fs *pflag.FlagSet, snap map[string][]string, names []string) {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil {
			_ = setFlagValue(f, snap[n])
		}
	}
}

// reload re-reads the configuration (SIGHUP): the flags given on the
// command line keep their values, the others are read again from the
// environment and the config file, and what changed is applied where it
// can be, named where it cannot. It never stops the daemon: a bad file
// changes nothing and is reported.
func (s *serveOps) reload(ctx context.Context, cmd *cobra.Command) {
	o, log := s.o, s.log
	_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyReloading)
	defer func() { _, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyReady) }()
	fs := cmd.Flags()
	before := flagValues(fs)
	var all []string
	fs.VisitAll(func(f *pflag.Flag) { all = append(all, f.Name) })
	fail := func(err error) {
		restore(fs, before, all)
		s.reloadOK.Set(0)
		log.Error("configuration reload failed: nothing changed", "err", err)
		_ = s.d.Reload(ctx, daemon.Reload{Failed: []string{err.Error()}})
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !o.cmdline[f.Name] && f.Name != "help" {
			_ = setFlagValue(f, defaultValue(f))
			f.Changed = false
		}
	})
	conf, err := loadConfig(cmd, o)
	if err == nil {
		err = bindEnv(fs, conf)
	}
	if err != nil {
		fail(err)
		return
	}
	after := flagValues(fs)
	var changed, needRestart []string
	for _, n := range all {
		if slices.Equal(before[n], after[n]) {
			continue
		}
		if reloadable[n] {
			changed = append(changed, n)
		} else {
			needRestart = append(needRestart, n)
		}
	}
	// What cannot change now keeps its running value, so that the
	// options always describe the running daemon.
	restore(fs, before, needRestart)
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		fail(fmt.Errorf("--log-level %q is unknown: give debug, info, warn or error", o.logLevel))
		return
	}
	if err := checkFedTimers(o.fed); err != nil {
		fail(err)
		return
	}
	r := daemon.Reload{Changed: changed, NeedRestart: needRestart}
	if slices.ContainsFunc(changed, func(n string) bool { return slices.Contains(fedFlags, n) }) {
		fc := o.fed
		r.Federation = &fc
	}
	anyOf := func(prefix string) bool {
		return slices.ContainsFunc(changed, func(n string) bool { return strings.HasPrefix(n, prefix) })
	}
	if a := o.ann.bgp; a != nil && anyOf("bgp-") {
		opts, err := o.ann.bgpOptions(log)
		if err != nil {
			fail(err)
			return
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		more, err := a.Reload(rctx, opts)
		cancel()
		r.NeedRestart = append(r.NeedRestart, more...)
		if err != nil {
			if vipsmart.IsCode(err, vipsmart.EINVALID) {
				fail(err)
				return
			}
			r.Failed = append(r.Failed, err.Error())
		}
	}
	if a := o.ann.netlink; a != nil && anyOf("garp-") {
		if err := a.SetGARP(o.ann.garpCount, o.ann.garpInterval); err != nil {
			fail(err)
			return
		}
	}
	o.level.Set(lvl)
	if err := s.d.Reload(ctx, r); err != nil {
		log.Error("configuration reload: the daemon did not take it", "err", err)
	}
	if len(r.Failed) > 0 {
		s.reloadOK.Set(0)
		log.Error("configuration reloaded with failures", "changed", changed, "failed", r.Failed)
	} else {
		s.reloadOK.Set(1)
		s.reloadAt.SetToCurrentTime()
		log.Info("configuration reloaded", "changed", changed)
	}
	if len(r.NeedRestart) > 0 {
		log.Warn("configuration reload: these settings changed but take effect only after a restart", "need_restart", r.NeedRestart)
	}
}

// checkFedTimers checks the protocol timers of the flags.
func checkFedTimers(c federation.Config) error {
	if c.HeartbeatInterval < time.Millisecond || c.HeartbeatMisses < 1 || c.InviteTTL <= 0 || c.ReviewTTL <= 0 || c.PhaseTimeout <= 0 {
		return errors.New("--heartbeat-interval (>= 1ms), --heartbeat-misses (>= 1), --invite-ttl, --review-ttl and --phase-timeout must be positive")
	}
	return nil
}
