package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart/httpapi"
)

// retrying makes c retry changes refused as "federation busy" (unless
// --no-retry), saying so on stderr each time: the refusal changed nothing,
// so sending the change again is safe; the pauses grow and are jittered
// so that operations that collided do not collide again; it stops when
// --timeout runs out.
func (g *globals) retrying(c *httpapi.Client) *httpapi.Client {
	if g.noRetry {
		return c
	}
	c.RetryBusy = true
	c.OnRetry = func(attempt int, pause, left time.Duration, err error) {
		msg := strings.TrimPrefix(err.Error(), "federation busy, retry: ")
		fmt.Fprintf(g.stderr, "vipsmart: federation busy (%s); retrying in %s (attempt %d failed; %s left of --timeout)\n",
			msg, pause.Round(time.Millisecond), attempt, left.Round(100*time.Millisecond))
	}
	return c
}
