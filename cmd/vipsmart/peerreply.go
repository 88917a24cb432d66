package main

import (
	"github.com/vipsmart/vipsmart/daemon"
	"github.com/vipsmart/vipsmart/httpapi"
)

// The answers to federation requests ride back in the HTTP responses
// (httpapi/peerreply.go, daemon/reply.go) only if both sides implement
// their half: checked here, where the two are wired together.
var (
	_ daemon.ReplyTransport = (*httpapi.PeerClient)(nil)
	_ httpapi.PeerReplier   = (*daemon.Daemon)(nil)
)
