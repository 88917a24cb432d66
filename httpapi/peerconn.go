package httpapi

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Federation messages go over kept mutual-TLS connections that the
// sending goroutine (a peer's sender in the daemon) uses itself: it
// writes the request with net/http's Request.Write and reads the answer
// with http.ReadResponse on its own goroutine. net/http's Transport runs
// two goroutines per connection (a write loop the request is handed to,
// a read loop that hands the response back and waits to be told the body
// was read), so each message cost three goroutine hand-offs on the sender
// besides the network's own wake-up; on a host shared by many daemons each
// is a thread woken (BENCHMARKS.md, "hop9"). The peer's listener is
// net/http's server as before; the bytes on the wire are the same
// HTTP/1.1 requests.
//
// What Transport's read loop also did, noticing at once that the server
// closed an idle connection, is done when a connection is taken for reuse
// (alive: a non-blocking peek at the socket), and a request whose write
// failed on a reused connection is sent again on a new one (nothing of it
// reached the peer whole), as Transport does. Idle connections are closed
// after peerConnIdle, well before the server's idle timeout (90 s), and
// at most maxIdlePeerConns are kept per destination.
type peerConns struct {
	mu        sync.Mutex
	idle      map[string][]*peerConn // by address and pinned key
	gen       uint64                 // raised by reset: older connections are not kept
	lastSweep time.Time
}

// peerConn is one kept connection, used by one goroutine at a time.
type peerConn struct {
	key    string
	gen    uint64
	tc     *tls.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	since  time.Time // idle since
	reused bool
}

const (
	peerConnIdle     = 30 * time.Second
	maxIdlePeerConns = 4
)

// get returns a live idle connection to key, or nil.
func (cs *peerConns) get(key string) *peerConn {
	now := time.Now()
	cs.mu.Lock()
	var stale []*peerConn
	if now.Sub(cs.lastSweep) > peerConnIdle {
		cs.lastSweep = now
		for k, l := range cs.idle {
			keep := l[:0]
			for _, c := range l {
				if now.Sub(c.since) > peerConnIdle {
					stale = append(stale, c)
				} else {
					keep = append(keep, c)
				}
			}
			if len(keep) == 0 {
				delete(cs.idle, k)
			} else {
				cs.idle[k] = keep
			}
		}
	}
	var c *peerConn
	for l := cs.idle[key]; len(l) > 0 && c == nil; l = cs.idle[key] {
		c = l[len(l)-1] // the most recently used
		cs.idle[key] = l[:len(l)-1]
		if now.Sub(c.since) > peerConnIdle {
			stale, c = append(stale, c), nil
		}
	}
	cs.mu.Unlock()
	for _, s := range stale {
		s.tc.Close()
	}
	if c != nil && !alive(c) {
		c.tc.Close()
		return cs.get(key)
	}
	if c != nil {
		c.reused = true
	}
	return c
}

// put keeps c for reuse, or closes it.
func (cs *peerConns) put(c *peerConn) {
	_ = c.tc.SetDeadline(time.Time{})
	c.since = time.Now()
	cs.mu.Lock()
	if c.gen == cs.gen && len(cs.idle[c.key]) < maxIdlePeerConns {
		if cs.idle == nil {
			cs.idle = map[string][]*peerConn{}
		}
		cs.idle[c.key] = append(cs.idle[c.key], c)
		c = nil
	}
	cs.mu.Unlock()
	if c != nil {
		c.tc.Close()
	}
}

// reset closes every idle connection; those in use are closed when done.
func (cs *peerConns) reset() {
	cs.mu.Lock()
	old := cs.idle
	cs.idle = nil
	cs.gen++
	cs.mu.Unlock()
	for _, l := range old {
		for _, c := range l {
			c.tc.Close()
		}
	}
}

func (cs *peerConns) generation() uint64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.gen
}

// do sends req to addr, a DC whose key is pin, on a kept connection or a
// new one, and returns the response; its Body must be closed (the
// connection is kept again once the body was read to its end). The
// exchange, body included, ends with ctx and p.Timeout.
func (p *PeerClient) do(req *http.Request, addr, pin string) (*http.Response, error) {
	ctx := req.Context()
	key := addr + "|" + pin
	deadline := time.Time{}
	if p.Timeout > 0 {
		deadline = time.Now().Add(p.Timeout)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	for {
		c := p.conns.get(key)
		if c == nil {
			var err error
			if c, err = p.dial(ctx, key, addr, pin, deadline); err != nil {
				return nil, err
			}
		}
		resp, err := c.exchange(ctx, req, deadline, &p.conns)
		if err == nil {
			return resp, nil
		}
		c.tc.Close()
		var we unwritten
		if !c.reused || !errors.As(err, &we) || ctx.Err() != nil || req.GetBody == nil {
			return nil, err
		}
		// A kept connection the peer had closed: nothing of the request
		// reached it whole. Send it again, on a new connection.
		body, berr := req.GetBody()
		if berr != nil {
			return nil, err
		}
		req = req.Clone(ctx)
		req.Body = body
	}
}

// dial makes a new mutual-TLS connection to addr pinned to pin, as
// Transport did: the TCP connection within peerDialTimeout, then the
// handshake within peerHandshakeTimeout, both within ctx and deadline.
func (p *PeerClient) dial(ctx context.Context, key, addr, pin string, deadline time.Time) (*peerConn, error) {
	gen := p.conns.generation()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	nc, err := (&net.Dialer{Timeout: peerDialTimeout, KeepAlive: 30 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := p.TLS(pin)
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(addr)
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	hctx, cancel := context.WithTimeout(ctx, peerHandshakeTimeout)
	defer cancel()
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		nc.Close()
		return nil, err
	}
	return &peerConn{key: key, gen: gen, tc: tc, br: bufio.NewReaderSize(tc, 4096), bw: bufio.NewWriterSize(tc, 4096)}, nil
}

const (
	peerDialTimeout      = 5 * time.Second
	peerHandshakeTimeout = 5 * time.Second
)

// unwritten is a request that could not be written.
type unwritten struct{ error }

func (e unwritten) Unwrap() error { return e.error }

// exchange writes req on c and reads the response head; the body is
// read by the caller through peerBody, which gives c back to cs at its
// end.
func (c *peerConn) exchange(ctx context.Context, req *http.Request, deadline time.Time, cs *peerConns) (*http.Response, error) {
	if err := c.tc.SetDeadline(deadline); err != nil {
		return nil, unwritten{err}
	}
	// A context cancelled without a deadline (the daemon stopping) ends
	// the exchange too.
	stop := context.AfterFunc(ctx, func() { _ = c.tc.SetDeadline(time.Unix(1, 0)) })
	if err := req.Write(c.bw); err != nil {
		stop()
		return nil, unwritten{err}
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, unwritten{err}
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		stop()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, err
	}
	resp.Body = &peerBody{r: resp.Body, c: c, cs: cs, stop: stop, keep: !resp.Close}
	return resp, nil
}

// peerBody is a response body: read to its end and closed, its
// connection is kept for the next request.
type peerBody struct {
	r      io.ReadCloser
	c      *peerConn
	cs     *peerConns
	stop   func() bool
	keep   bool
	eof    bool
	closed bool
}

func (b *peerBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("read on a closed response body")
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		b.keep = false
	}
	return n, err
}

func (b *peerBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.r.Close()
	if !b.stop() { // the context ended meanwhile: the deadline is spent
		b.keep = false
	}
	if b.eof && b.keep {
		b.cs.put(b.c)
	} else {
		b.c.tc.Close()
	}
	return nil
}
