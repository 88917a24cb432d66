package federation

// SetTimers replaces the node's timers (InviteTTL, ReviewTTL,
// HeartbeatInterval, HeartbeatMisses, PhaseTimeout) with those of c, zero
// values taking the defaults; the other fields of c are ignored. It is how
// a daemon reloads its configuration without restarting: a lock already
// taken keeps its deadline, an operation already running keeps its phase
// start; the new values apply from the next Tick.
func (n *Node) SetTimers(c Config) {
	c.setDefaults()
	n.cfg.InviteTTL = c.InviteTTL
	n.cfg.ReviewTTL = c.ReviewTTL
	n.cfg.HeartbeatInterval = c.HeartbeatInterval
	n.cfg.HeartbeatMisses = c.HeartbeatMisses
	n.cfg.PhaseTimeout = c.PhaseTimeout
}

// Timers returns the node's timers (the timer fields of its Config).
func (n *Node) Timers() Config {
	return Config{InviteTTL: n.cfg.InviteTTL, ReviewTTL: n.cfg.ReviewTTL, HeartbeatInterval: n.cfg.HeartbeatInterval,
		HeartbeatMisses: n.cfg.HeartbeatMisses, PhaseTimeout: n.cfg.PhaseTimeout}
}
