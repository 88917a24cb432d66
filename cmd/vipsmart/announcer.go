package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/announce"
	"github.com/vipsmart/vipsmart/announce/bgp"
	"github.com/vipsmart/vipsmart/announce/netlink"
	"github.com/vipsmart/vipsmart/announce/none"
)

// announcerOptions are the data-plane flags of `vipsmart serve`.
type announcerOptions struct {
	kinds        []string
	nlInterface  string
	garpCount    int
	garpInterval time.Duration

	bgpASN          uint32
	bgpRouterID     string
	bgpPeers        []string
	bgpListenPort   int32
	bgpPrepend      int
	bgpCommunities  []string
	bgpStandbyComms []string
	bgpHoldTime     time.Duration
	bgpPassword     string
	bgpMultihop     bool
	bgpNextHop      string
	bgpNextHop6     string
	bgpBFD          bool
	bfdMinRx        time.Duration
	bfdMinTx        time.Duration
	bfdMultiplier   int
	fs              *pflag.FlagSet

	// The announcers build made, for reloads and metrics (nil when not
	// asked for).
	bgp     *bgp.Announcer
	netlink *netlink.Announcer
}

func (o *announcerOptions) flags(f *pflag.FlagSet) {
	o.fs = f
	f.StringSliceVar(&o.kinds, "announcer", []string{"none"}, "announcers: none (state only), netlink, bgp; several may be combined (netlink,bgp)")
	f.StringVar(&o.nlInterface, "netlink-interface", "", "netlink: interface VIPs and GIPs are bound on (a VIP's --interface overrides it)")
	f.IntVar(&o.garpCount, "garp-count", netlink.DefaultGARPCount, "netlink: gratuitous ARPs / unsolicited NAs sent on takeover (0: none)")
	f.DurationVar(&o.garpInterval, "garp-interval", netlink.DefaultGARPInterval, "netlink: time between them")
	f.Uint32Var(&o.bgpASN, "bgp-asn", 0, "bgp: local AS number (required with --announcer bgp)")
	f.StringVar(&o.bgpRouterID, "bgp-router-id", "", "bgp: router id, an IPv4 address (required with --announcer bgp)")
	f.StringArrayVar(&o.bgpPeers, "bgp-peer", nil, "bgp: a peer IP,ASN[,PORT] (repeatable)")
	f.Int32Var(&o.bgpListenPort, "bgp-listen-port", 179, "bgp: port the speaker listens on (-1: do not listen, only connect out)")
	f.IntVar(&o.bgpPrepend, "bgp-standby-prepend", 3, "bgp: times the local AS is prepended on standby GIP routes (1-16)")
	f.StringArrayVar(&o.bgpCommunities, "bgp-community", nil, "bgp: community ASN:VALUE on VIP and active GIP routes (repeatable)")
	f.StringArrayVar(&o.bgpStandbyComms, "bgp-standby-community", nil, "bgp: community ASN:VALUE on standby GIP routes (repeatable)")
	f.DurationVar(&o.bgpHoldTime, "bgp-hold-time", 9*time.Second, "bgp: hold time of every session (keepalives every third of it)")
	f.StringVar(&o.bgpPassword, "bgp-peer-password", "", "bgp: TCP MD5 password of every session")
	f.BoolVar(&o.bgpMultihop, "bgp-multihop", false, "bgp: allow peers that are more than one hop away (eBGP multihop)")
	f.StringVar(&o.bgpNextHop, "bgp-next-hop", "", "bgp: next hop of IPv4 routes (default: the session's local address)")
	f.StringVar(&o.bgpNextHop6, "bgp-next-hop6", "", "bgp: next hop of IPv6 routes (default: the session's local address)")
	f.BoolVar(&o.bgpBFD, "bgp-bfd", false, "bgp: run BFD (single hop, RFC 5880/5881) on every session, so routers drop a silent DC's routes in about --bfd-multiplier x --bfd-min-tx")
	f.DurationVar(&o.bfdMinRx, "bfd-min-rx", bgp.DefaultBFDMinRx, "bgp: BFD required minimum receive interval (10ms-10s)")
	f.DurationVar(&o.bfdMinTx, "bfd-min-tx", bgp.DefaultBFDMinTx, "bgp: BFD desired minimum transmit interval (10ms-10s)")
	f.IntVar(&o.bfdMultiplier, "bfd-multiplier", bgp.DefaultBFDMultiplier, "bgp: BFD detection multiplier: packets missed before the session is down (1-255)")
}

func optAddr(flag, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	return vipsmart.ParseHostAddr(flag, s)
}

// build makes the announcer the flags ask for.
func (o *announcerOptions) build(ctx context.Context, log *slog.Logger) (vipsmart.Announcer, error) {
	var out announce.Multi
	seen := map[string]bool{}
	for _, k := range o.kinds {
		k = strings.TrimSpace(k)
		if seen[k] {
			continue
		}
		seen[k] = true
		switch k {
		case "none":
			out = append(out, none.New())
		case "netlink":
			o.netlink = netlink.New(netlink.NewLinuxOS(), netlink.Options{DefaultInterface: o.nlInterface, GARPCount: o.garpCount, GARPInterval: o.garpInterval, Logger: log})
			out = append(out, o.netlink)
		case "bgp":
			opts, err := o.bgpOptions(log)
			if err != nil {
				return nil, err
			}
			a, err := bgp.New(ctx, bgp.NewGoBGP(log), opts)
			if err != nil {
				return nil, fmt.Errorf("starting the BGP speaker: %w", err)
			}
			o.bgp = a
			out = append(out, a)
		default:
			return nil, usageError{fmt.Errorf("--announcer %q is unknown: give none, netlink or bgp (comma-separated to combine)", k)}
		}
	}
	if len(out) == 1 {
		return out[0], nil
	}
	return out, nil
}

// bgpOptions makes the options of the BGP announcer from the flags.
func (o *announcerOptions) bgpOptions(log *slog.Logger) (bgp.Options, error) {
	if o.bgpASN == 0 || o.bgpRouterID == "" {
		return bgp.Options{}, usageError{fmt.Errorf("--announcer bgp needs --bgp-asn and --bgp-router-id")}
	}
	if !o.bgpBFD && o.fs != nil {
		for _, n := range []string{"bfd-min-rx", "bfd-min-tx", "bfd-multiplier"} {
			if o.fs.Changed(n) {
				return bgp.Options{}, usageError{fmt.Errorf("--%s has no effect without --bgp-bfd: add --bgp-bfd to run BFD on the BGP sessions", n)}
			}
		}
	}
	rid, err := vipsmart.ParseHostAddr("--bgp-router-id", o.bgpRouterID)
	if err != nil {
		return bgp.Options{}, err
	}
	opts := bgp.Options{ASN: o.bgpASN, RouterID: rid, ListenPort: o.bgpListenPort, StandbyPrepend: o.bgpPrepend,
		Communities: o.bgpCommunities, StandbyCommunities: o.bgpStandbyComms, Logger: log}
	if opts.NextHop, err = optAddr("--bgp-next-hop", o.bgpNextHop); err != nil {
		return bgp.Options{}, err
	}
	if opts.NextHop6, err = optAddr("--bgp-next-hop6", o.bgpNextHop6); err != nil {
		return bgp.Options{}, err
	}
	for _, s := range o.bgpPeers {
		p, err := bgp.ParsePeer(s)
		if err != nil {
			return bgp.Options{}, fmt.Errorf("--bgp-peer: %w", err)
		}
		p.HoldTime, p.Password, p.Multihop = o.bgpHoldTime, o.bgpPassword, o.bgpMultihop
		if o.bgpBFD {
			// Zero means "default" to the library; on the command line it
			// is a mistake.
			switch {
			case o.bfdMinRx <= 0:
				return bgp.Options{}, vipsmart.Errorf(vipsmart.EINVALID, "bfd-min-rx", "--bfd-min-rx %s: want 10ms to 10s (e.g. 100ms)", o.bfdMinRx)
			case o.bfdMinTx <= 0:
				return bgp.Options{}, vipsmart.Errorf(vipsmart.EINVALID, "bfd-min-tx", "--bfd-min-tx %s: want 10ms to 10s (e.g. 100ms)", o.bfdMinTx)
			case o.bfdMultiplier < 1:
				return bgp.Options{}, vipsmart.Errorf(vipsmart.EINVALID, "bfd-multiplier", "BFD multiplier %d: want 1 to 255 (e.g. 3)", o.bfdMultiplier)
			}
			p.BFD = &bgp.BFD{MinRx: o.bfdMinRx, MinTx: o.bfdMinTx, Multiplier: o.bfdMultiplier}
		}
		opts.Peers = append(opts.Peers, p)
	}
	return opts, nil
}
