package daemon

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/token"
)

// Keyring is the DC's key as the daemon sees it: the fingerprint of the
// current key, and the pending key of a rotation (identity.Identity).
type Keyring interface {
	Fingerprint() string
	Pending() string
	// Prepare makes a pending key and returns its fingerprint.
	Prepare() (string, error)
	// Promote makes the pending key the current one.
	Promote() error
	// Discard drops the pending key.
	Discard() error
}

// Tokens keeps the DC's join and API tokens, hashed (a token.Keeper:
// token.File, or etcd.Tokens on a DC with several nodes).
type Tokens interface {
	CreateJoin(name, identity string, ttl time.Duration, now time.Time) (vipsmart.JoinToken, error)
	CheckJoin(tok, name, identity string, now time.Time) (string, error)
	HasUnused(now time.Time) bool
	ConsumeAll(now time.Time, how string) (int, error)
	CreateAPI(name string, role vipsmart.Role, ttl time.Duration, now time.Time) (vipsmart.NewAPIToken, error)
	ListAPI() []vipsmart.APIToken
	RevokeAPI(name string) error
}

// ConnResetter is a Transport that can drop its connections, so that the
// next ones present a newly promoted key.
type ConnResetter interface{ ResetConnections() }

var _ vipsmart.TrustService = (*Daemon)(nil)

// askedBy names the caller of ctx for the event log ("" if none).
func askedBy(ctx context.Context) string {
	if c, ok := vipsmart.CallerFrom(ctx); ok {
		return c.String()
	}
	return ""
}

func byNote(ctx context.Context) string {
	if b := askedBy(ctx); b != "" {
		return " (asked by " + b + ")"
	}
	return ""
}

// reconcileKeys is run at start: a pending key whose fingerprint the
// federation committed (the daemon stopped between the commit and
// installing the key) is installed; any other pending key is dropped. It
// returns true if the current key changed.
func (d *Daemon) reconcileKeys() (bool, error) {
	k := d.cfg.Keys
	if k == nil {
		return false, nil
	}
	committed := d.node.CommittedIdentity()
	if p := k.Pending(); p != "" {
		if p == committed {
			if err := k.Promote(); err != nil {
				return false, err
			}
			return true, nil
		}
		if err := k.Discard(); err != nil {
			return false, err
		}
	}
	if committed != "" && committed != k.Fingerprint() {
		msg := fmt.Sprintf("this DC's key %s is not the key %s its federation committed for it: every member will refuse it. If its key was lost, see docs/security.md (recovery)", vipsmart.ShortIdentity(k.Fingerprint()), vipsmart.ShortIdentity(committed))
		d.log.Error(msg)
		d.event(vipsmart.EventSecurity, msg)
	}
	return false, nil
}

// afterPersist runs in processReady once a Ready's update is on disk and
// before its messages leave: it installs a key whose rotation just
// committed (so that the commit messages already present it), drops a
// pending key whose rotation ended without a commit, and, once this DC is
// a member, marks its join tokens used (a join token works once; the
// invite path itself writes nothing, so that it costs no disk write).
func (d *Daemon) afterPersist(ctx context.Context) {
	if k := d.cfg.Keys; k != nil {
		self := d.node.Self().Identity
		switch p := k.Pending(); {
		case p != "" && self == p:
			if err := k.Promote(); err != nil {
				d.log.Error("installing the new key failed: restart the daemon to retry", "err", err)
				break
			}
			if r, ok := d.cfg.Transport.(ConnResetter); ok {
				r.ResetConnections()
			}
			d.event(vipsmart.EventSecurity, fmt.Sprintf("new key %s installed: the federation committed it", vipsmart.ShortIdentity(p)))
		case p != "" && !d.node.RotationPending():
			if err := k.Discard(); err != nil {
				d.log.Warn("dropping the unused new key", "err", err)
			}
		}
	}
	d.consumeJoinTokens(ctx)
}

// consumeJoinTokens marks the join tokens used once this DC is a member.
func (d *Daemon) consumeJoinTokens(ctx context.Context) {
	t := d.cfg.Tokens
	if t == nil || !d.node.Member() || !t.HasUnused(d.cfg.Now()) {
		return
	}
	st := d.node.Status(d.cfg.Now())
	how := fmt.Sprintf("%s joined federation %s", d.cfg.Self.Name, st.Federation.ID)
	n, err := t.ConsumeAll(d.cfg.Now(), how)
	if err != nil {
		d.log.Error("marking join tokens used", "err", err)
		return
	}
	if n > 0 {
		d.appendEvents(context.WithoutCancel(ctx), []vipsmart.Event{{Time: d.cfg.Now(), DC: d.cfg.Self.Name, Kind: vipsmart.EventSecurity, Message: fmt.Sprintf("%d join token(s) used up: %s", n, how)}})
	}
}

// Deliver hands a message from a peer to the node. The transport must
// have put the peer's authenticated key in ctx (a vipsmart.Caller via
// ViaPeer); Admit decides from it and the committed member list whether
// the message is believed. A malformed message is refused with EINVALID,
// an unbelieved one with EFORBIDDEN; both change nothing.
func (d *Daemon) Deliver(ctx context.Context, m federation.Message) error {
	return d.deliver(ctx, m, nil)
}

// deliver is Deliver; with a slot, the answer to m is kept there instead
// of sent (reply.go).
func (d *Daemon) deliver(ctx context.Context, m federation.Message, slot *replySlot) error {
	if err := m.Validate(); err != nil {
		return err
	}
	c, _ := vipsmart.CallerFrom(ctx)
	if c.Via != vipsmart.ViaPeer || c.Identity == "" {
		err := vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "federation messages are accepted only over mutual TLS")
		d.PeerRefused(c.Addr, m.From.Name, "", err.Message)
		return err
	}
	step := func() error {
		now := d.cfg.Now()
		v, err := d.node.Admit(m, c.Identity)
		switch v {
		case federation.Accept:
			return d.node.Step(now, m)
		case federation.AnswerOnly:
			d.node.Answer(now, m)
			return nil
		case federation.NeedsJoinToken:
			if d.cfg.Tokens == nil {
				err = vipsmart.Errorf(vipsmart.EFORBIDDEN, "token", "%s keeps no join tokens", d.cfg.Self.Name)
			} else if m.Change != nil && m.Change.DC != nil && m.Change.DC.Identity != "" && m.Change.DC.Identity != d.node.Self().Identity {
				err = vipsmart.Errorf(vipsmart.EFORBIDDEN, "token", "the invite pins key %s, but %s's key is %s", vipsmart.ShortIdentity(m.Change.DC.Identity), d.cfg.Self.Name, vipsmart.ShortIdentity(d.node.Self().Identity))
			} else {
				_, err = d.cfg.Tokens.CheckJoin(m.Token, d.cfg.Self.Name, d.node.Self().Identity, now)
			}
			if err != nil {
				e := asError(err)
				d.node.RefuseInvite(m, e.Code, e.Message)
				d.PeerRefused(c.Addr, m.From.Name, c.Identity, "invite "+m.OpID+": "+e.Message)
				return err
			}
			return d.node.Step(now, m)
		}
		d.PeerRefused(c.Addr, m.From.Name, c.Identity, fmt.Sprintf("%s message: %s", m.Type, asError(err).Message))
		return err
	}
	// A heartbeat held while the loop is held (keeper.go) is stepped later
	// and answered by a separate request; otherwise the answer may ride
	// back in this request's response (reply.go).
	return d.callOrHold(ctx, m, c.Identity, d.replying(ctx, slot, step), step)
}

func asError(err error) *vipsmart.Error {
	if e, ok := err.(*vipsmart.Error); ok {
		return e
	}
	return &vipsmart.Error{Code: vipsmart.EFORBIDDEN, Message: err.Error()}
}

// PeerRefused records that a peer or a connection was refused: who it
// claimed to be (may be empty), from where, with which key (may be empty),
// and why. Records are rate-limited per remote host: at most refusalBurst
// per refusalWindow, the next one saying how many were left out. It is
// safe to call from any goroutine.
func (d *Daemon) PeerRefused(remote, who, key, why string) {
	now := d.cfg.Now()
	ok, skipped := d.refusals.allow(hostOf(remote), now)
	if !ok {
		return
	}
	msg := "refused "
	switch {
	case who != "" && key != "":
		msg += who + " (key " + vipsmart.ShortIdentity(key) + ")"
	case who != "":
		msg += who
	case key != "":
		msg += "key " + vipsmart.ShortIdentity(key)
	default:
		msg += "a connection"
	}
	if remote != "" {
		msg += " from " + remote
	}
	msg += ": " + why
	if skipped > 0 {
		msg += fmt.Sprintf(" (and %d more refusals from that host since the last record, not listed)", skipped)
	}
	d.log.Warn(msg, "kind", vipsmart.EventSecurity)
	if _, err := d.cfg.Store.AppendEvents(context.Background(), []vipsmart.Event{{Time: now, DC: d.cfg.Self.Name, Kind: vipsmart.EventSecurity, Message: msg}}); err != nil {
		d.log.Error("storing events", "err", err)
	}
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// The rate limit of refusal records: refusalBurst per refusalWindow per
// remote host.
const (
	refusalWindow = 10 * time.Second
	refusalBurst  = 3
)

// maxRefusalHosts bounds the hosts the limiter remembers; beyond it, new
// hosts share one budget.
const maxRefusalHosts = 1024

// refusalLimiter lets through refusalBurst refusals of a host per window,
// counting those it holds back.
type refusalLimiter struct {
	mu    sync.Mutex
	hosts map[string]*refusalHost
}

type refusalHost struct {
	start   time.Time // of the current window
	n       int       // records in the current window
	skipped int       // refusals held back since the last record
}

func (l *refusalLimiter) allow(host string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hosts == nil {
		l.hosts = map[string]*refusalHost{}
	}
	h, ok := l.hosts[host]
	if !ok {
		if len(l.hosts) >= maxRefusalHosts {
			for k, v := range l.hosts {
				if now.Sub(v.start) >= refusalWindow && v.skipped == 0 {
					delete(l.hosts, k)
				}
			}
		}
		if len(l.hosts) >= maxRefusalHosts {
			host = "(other hosts)"
			h = l.hosts[host]
		}
		if h == nil {
			h = &refusalHost{start: now}
			l.hosts[host] = h
		}
	}
	if now.Sub(h.start) >= refusalWindow || now.Before(h.start) {
		h.start, h.n = now, 0
	}
	if h.n >= refusalBurst {
		h.skipped++
		return false, 0
	}
	h.n++
	n := h.skipped
	h.skipped = 0
	return true, n
}

// ---- TrustService ----

// CreateJoinToken implements vipsmart.TrustService.
func (d *Daemon) CreateJoinToken(ctx context.Context, ttl time.Duration) (vipsmart.JoinToken, error) {
	if d.cfg.Tokens == nil {
		return vipsmart.JoinToken{}, vipsmart.Errorf(vipsmart.EINTERNAL, "", "this daemon keeps no tokens")
	}
	var out vipsmart.JoinToken
	err := d.call(ctx, func() error {
		if d.node.Member() {
			st := d.node.Status(d.cfg.Now())
			return vipsmart.Errorf(vipsmart.ESTATE, "", "%s is already a member of federation %s: a join token is for a standalone DC (run `vipsmart dc leave` first to move it)", d.cfg.Self.Name, st.Federation.ID)
		}
		t, err := d.cfg.Tokens.CreateJoin(d.cfg.Self.Name, d.node.Self().Identity, ttl, d.cfg.Now())
		if err != nil {
			return err
		}
		out = t
		d.event(vipsmart.EventSecurity, fmt.Sprintf("join token made for %s (key %s), valid until %s%s", t.DC, vipsmart.ShortIdentity(t.Identity), t.Expires.Format(time.RFC3339), byNote(ctx)))
		return nil
	})
	return out, err
}

// RotateIdentity implements vipsmart.TrustService: it makes a new key and
// commits its fingerprint as one federation change; the new key is
// installed when the change commits here, and dropped if it fails.
func (d *Daemon) RotateIdentity(ctx context.Context) (vipsmart.StatusInfo, error) {
	if d.cfg.Keys == nil {
		return vipsmart.StatusInfo{}, vipsmart.Errorf(vipsmart.EINTERNAL, "", "this daemon has no key to rotate")
	}
	err := d.proposeWith(ctx, func() (federation.Proposal, error) {
		if !d.node.Member() {
			return federation.Proposal{}, vipsmart.Errorf(vipsmart.ESTATE, "", "%s is standalone: its key is in no member list, so there is nothing to commit. To change it anyway, stop the daemon and remove %s from its data directory", d.cfg.Self.Name, "identity.key and identity.crt")
		}
		fp, err := d.cfg.Keys.Prepare()
		if err != nil {
			return federation.Proposal{}, err
		}
		self := d.node.Self()
		self.Identity = fp
		return federation.Proposal{Kind: federation.RotateIdentity, DC: self, By: askedBy(ctx)}, nil
	}, func() {
		if err := d.cfg.Keys.Discard(); err != nil {
			d.log.Warn("dropping the unused new key", "err", err)
		}
	})
	if err != nil {
		return vipsmart.StatusInfo{}, err
	}
	return d.Status(context.WithoutCancel(ctx))
}

// CreateToken implements vipsmart.TrustService.
func (d *Daemon) CreateToken(ctx context.Context, name string, role vipsmart.Role, ttl time.Duration) (vipsmart.NewAPIToken, error) {
	if d.cfg.Tokens == nil {
		return vipsmart.NewAPIToken{}, vipsmart.Errorf(vipsmart.EINTERNAL, "", "this daemon keeps no tokens")
	}
	t, err := d.cfg.Tokens.CreateAPI(name, role, ttl, d.cfg.Now())
	if err != nil {
		return t, err
	}
	exp := "no expiry"
	if t.Expires != nil {
		exp = "valid until " + t.Expires.Format(time.RFC3339)
	}
	d.appendEvents(context.WithoutCancel(ctx), []vipsmart.Event{{Time: d.cfg.Now(), DC: d.cfg.Self.Name, Kind: vipsmart.EventSecurity, Message: fmt.Sprintf("API token %s (%s, %s) created%s", name, role, exp, byNote(ctx))}})
	return t, nil
}

// ListTokens implements vipsmart.TrustService.
func (d *Daemon) ListTokens(ctx context.Context) ([]vipsmart.APIToken, error) {
	if d.cfg.Tokens == nil {
		return nil, nil
	}
	return d.cfg.Tokens.ListAPI(), nil
}

// RevokeToken implements vipsmart.TrustService.
func (d *Daemon) RevokeToken(ctx context.Context, name string) error {
	if d.cfg.Tokens == nil {
		return vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "there is no API token named %s", name)
	}
	if err := d.cfg.Tokens.RevokeAPI(name); err != nil {
		return err
	}
	d.appendEvents(context.WithoutCancel(ctx), []vipsmart.Event{{Time: d.cfg.Now(), DC: d.cfg.Self.Name, Kind: vipsmart.EventSecurity, Message: fmt.Sprintf("API token %s revoked%s", name, byNote(ctx))}})
	return nil
}

// checkJoinToken checks the join token of dc add at the coordinator, as
// far as the token itself tells (the candidate checks the rest), and
// returns the candidate with the key the token binds.
func checkJoinToken(c vipsmart.DC, tok string, now time.Time) (vipsmart.DC, error) {
	if tok == "" {
		return c, vipsmart.Errorf(vipsmart.EINVALID, "token", "dc add needs a join token made on %s: run `vipsmart dc join-token` on %s and pass what it prints with --token (or VIPSMART_JOIN_TOKEN)", c.Name, c.Name)
	}
	j, err := token.ParseJoin(tok)
	if err != nil {
		return c, err
	}
	if j.DC != c.Name {
		return c, vipsmart.Errorf(vipsmart.EINVALID, "token", "the join token was made on %s, not on %s: check the NAME given to dc add, or make a token on %s", j.DC, c.Name, c.Name)
	}
	if !now.Before(j.Expires) {
		return c, vipsmart.Errorf(vipsmart.EINVALID, "token", "the join token expired at %s: make a new one on %s with `vipsmart dc join-token`", j.Expires.Format(time.RFC3339), c.Name)
	}
	c.Identity = j.Identity
	return c, nil
}
