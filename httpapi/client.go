package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Client implements vipsmart.Service and vipsmart.TrustService against a
// daemon's operator API: on its local socket, or over HTTPS with a bearer
// token.
type Client struct {
	// Server is the daemon as given (see ParseServer).
	Server string
	// Token is the bearer token sent to an https:// server.
	Token string
	HTTP  *http.Client

	// RetryBusy makes a change refused as busy be sent again after a
	// jittered, growing pause, until the context ends (retry.go);
	// OnRetry, if set, is told of each pause and the time left.
	RetryBusy bool
	OnRetry   func(attempt int, pause, left time.Duration, err error)

	ep  Endpoint
	err error
}

var (
	_ vipsmart.Service      = (*Client)(nil)
	_ vipsmart.TrustService = (*Client)(nil)
)

// DefaultSocket is where `vipsmart serve` puts its operator socket and
// where the CLI looks for it, unless told otherwise.
const DefaultSocket = "/run/vipsmart/vipsmart.sock"

// Endpoint is a parsed --server: a unix socket path, or an https URL.
type Endpoint struct {
	Socket string   // path of the local socket
	URL    *url.URL // https://HOST:PORT
}

func (e Endpoint) String() string {
	if e.URL != nil {
		return e.URL.String()
	}
	return e.Socket
}

// ParseServer reads what the CLI's --server takes: unix:///PATH, a bare
// socket path, or https://HOST:PORT. Plain http:// is refused (the
// operator API is served only on the socket and over HTTPS).
func ParseServer(s string) (Endpoint, error) {
	s = strings.TrimSpace(s)
	bad := func(format string, args ...any) (Endpoint, error) {
		return Endpoint{}, vipsmart.Errorf(vipsmart.EINVALID, "--server", "--server %q: "+format, append([]any{s}, args...)...)
	}
	switch {
	case s == "":
		return Endpoint{Socket: DefaultSocket}, nil
	case strings.HasPrefix(s, "unix://"):
		p := strings.TrimPrefix(s, "unix://")
		if !strings.HasPrefix(p, "/") {
			return bad("give an absolute path: unix:///run/vipsmart/vipsmart.sock")
		}
		return Endpoint{Socket: p}, nil
	case strings.HasPrefix(s, "https://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return bad("give https://HOST:PORT, the daemon's --api-listen address")
		}
		u.Path = ""
		return Endpoint{URL: u}, nil
	case strings.HasPrefix(s, "http://"):
		return bad("the operator API is not served over plain HTTP: give https://HOST:PORT (serve --api-listen, with a token) or the path of the local socket")
	case strings.Contains(s, "://"):
		return bad("unknown scheme: give unix:///PATH, a socket path, or https://HOST:PORT")
	case strings.Contains(s, "/") || strings.HasSuffix(s, ".sock"):
		return Endpoint{Socket: s}, nil
	}
	return bad("give a socket path (default %s), unix:///PATH, or https://HOST:PORT; HOST:PORT alone is the federation port, which speaks only mutual TLS between DCs", DefaultSocket)
}

// NewClient returns a client of the daemon at server (see ParseServer);
// an https:// server is verified with the system's roots (use
// NewClientTLS to pin its key). A bad server is reported by every call.
func NewClient(server string) *Client {
	return NewClientTLS(server, nil)
}

// NewClientTLS is NewClient with the TLS configuration of an https://
// server (nil: the system's roots).
func NewClientTLS(server string, tc *tls.Config) *Client {
	c := &Client{Server: server}
	c.ep, c.err = ParseServer(server)
	tr := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
	if c.ep.Socket != "" {
		path := c.ep.Socket
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}
	} else if tc != nil {
		tr.TLSClientConfig = tc
	}
	c.HTTP = &http.Client{Timeout: 60 * time.Second, Transport: tr}
	return c
}

func (c *Client) url(path string, q url.Values) string {
	u := url.URL{Scheme: "http", Host: "vipsmart", Path: path}
	if c.ep.URL != nil {
		u.Scheme, u.Host = "https", c.ep.URL.Host
	}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// unreachable says why the daemon could not be reached and what to try.
func (c *Client) unreachable(err error) *vipsmart.Error {
	if c.ep.Socket != "" {
		hint := "is `vipsmart serve` running on this host? give its socket with --server or VIPSMART_SERVER"
		if errors.Is(err, os.ErrPermission) {
			hint = "permission denied: run as root or as a member of the socket's group (serve --socket-group)"
		}
		return &vipsmart.Error{Code: vipsmart.EUNAVAILABLE, Message: fmt.Sprintf("cannot reach the vipsmart daemon on socket %s (%s)", c.ep.Socket, hint), Err: err}
	}
	return &vipsmart.Error{Code: vipsmart.EUNAVAILABLE, Message: fmt.Sprintf("cannot reach the vipsmart daemon at %s (is it serving --api-listen there? is the server's key the one given with --server-fingerprint or --ca?)", c.ep), Err: err}
}

// doOnce sends a request and decodes a 2xx JSON answer into out (if
// non-nil); an error answer comes back as *vipsmart.Error, a connection
// failure as EUNAVAILABLE naming the server.
func (c *Client) doOnce(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, ok := in.(encodedBody) // applyfast.go
		if !ok {
			var err error
			if b, err = json.Marshal(in); err != nil {
				return fmt.Errorf("encoding request: %w", err)
			}
		}
		body = bytes.NewReader(b)
	}
	if c.err != nil {
		return c.err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return vipsmart.Errorf(vipsmart.EINVALID, "server", "bad server address %q: %v", c.Server, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if _, ok := out.(fastDecoder); ok {
		req.Header.Set("Accept-Encoding", "gzip") // undone by readAnswer, gzipanswer.go
	}
	if c.Token != "" && c.ep.URL != nil {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	wait := hc.Timeout
	if dl, ok := ctx.Deadline(); ok && (wait == 0 || time.Until(dl) < wait) {
		wait = time.Until(dl)
	}
	if wait > 0 {
		req.Header.Set(TimeoutHeader, wait.String())
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return &vipsmart.Error{Code: vipsmart.ETIMEOUT, Message: fmt.Sprintf("vipsmart daemon at %s did not answer in time", c.ep), Err: err}
		}
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	var rd io.Reader = resp.Body
	if f, ok := out.(fastDecoder); ok {
		// applyresultfast.go: the answer read whole, then without
		// reflection if it can be.
		data, err := readAnswer(resp)
		if err != nil {
			return fmt.Errorf("decoding answer of %s %s: %w", method, path, err)
		}
		if f.decodeFast(data) {
			return nil
		}
		rd = bytes.NewReader(data)
	}
	if err := json.NewDecoder(rd).Decode(out); err != nil {
		return fmt.Errorf("decoding answer of %s %s: %w", method, path, err)
	}
	return nil
}

// Status implements vipsmart.Service.
func (c *Client) Status(ctx context.Context) (vipsmart.StatusInfo, error) {
	var st vipsmart.StatusInfo
	return st, c.do(ctx, "GET", "/v1/status", nil, nil, &statusOut{&st}) // statusfast.go
}

// ListVIPs implements vipsmart.Service.
func (c *Client) ListVIPs(ctx context.Context) ([]vipsmart.VIPInfo, error) {
	var vs []vipsmart.VIPInfo
	return vs, c.do(ctx, "GET", "/v1/vips", nil, nil, &vs)
}

// GetVIP implements vipsmart.Service.
func (c *Client) GetVIP(ctx context.Context, name string) (vipsmart.VIPInfo, error) {
	var v vipsmart.VIPInfo
	return v, c.do(ctx, "GET", "/v1/vips/"+url.PathEscape(name), nil, nil, &v)
}

// AddVIP implements vipsmart.Service.
func (c *Client) AddVIP(ctx context.Context, v vipsmart.VIP) (vipsmart.VIP, error) {
	req := VIPRequest{Name: v.Name, Interface: v.Interface, Check: v.Check, Nodes: v.Nodes, Preempt: v.Preempt}
	if v.Address.IsValid() {
		req.Address = v.Address.String()
	}
	var out vipsmart.VIP
	return out, c.do(ctx, "POST", "/v1/vips", nil, req, &out)
}

// RemoveVIP implements vipsmart.Service.
func (c *Client) RemoveVIP(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/vips/"+url.PathEscape(name), nil, nil, nil)
}

// ListDCs implements vipsmart.Service.
func (c *Client) ListDCs(ctx context.Context) ([]vipsmart.DCInfo, error) {
	var ds []vipsmart.DCInfo
	return ds, c.do(ctx, "GET", "/v1/dcs", nil, nil, &ds)
}

// AddDC implements vipsmart.Service.
func (c *Client) AddDC(ctx context.Context, d vipsmart.DC, token string) (vipsmart.StatusInfo, error) {
	port := int(d.Port)
	req := DCRequest{Name: d.Name, Port: &port, Token: token}
	if d.Address.IsValid() {
		req.Address = d.Address.String()
	}
	var st vipsmart.StatusInfo
	return st, c.do(ctx, "POST", "/v1/dcs", nil, req, &st)
}

// RemoveDC implements vipsmart.Service.
func (c *Client) RemoveDC(ctx context.Context, names []string, force bool) (vipsmart.StatusInfo, error) {
	var st vipsmart.StatusInfo
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	esc := make([]string, len(names))
	for i, name := range names {
		esc[i] = url.PathEscape(name)
	}
	return st, c.do(ctx, "DELETE", "/v1/dcs/"+strings.Join(esc, ","), q, nil, &st)
}

// Leave implements vipsmart.Service.
func (c *Client) Leave(ctx context.Context) (vipsmart.StatusInfo, error) {
	var st vipsmart.StatusInfo
	return st, c.do(ctx, "POST", "/v1/leave", nil, nil, &st)
}

// ListGIPs implements vipsmart.Service.
func (c *Client) ListGIPs(ctx context.Context) ([]vipsmart.GIPInfo, error) {
	var gs []vipsmart.GIPInfo
	return gs, c.do(ctx, "GET", "/v1/gips", nil, nil, &gs)
}

// GetGIP implements vipsmart.Service.
func (c *Client) GetGIP(ctx context.Context, name string) (vipsmart.GIPInfo, error) {
	var g vipsmart.GIPInfo
	return g, c.do(ctx, "GET", "/v1/gips/"+url.PathEscape(name), nil, nil, &g)
}

func gipRequest(g vipsmart.GIP) GIPRequest {
	p := g.Preempt
	req := GIPRequest{Name: g.Name, Mode: g.Mode, Preempt: &p, Placements: g.Placements, Partition: g.Partition}
	if g.Address.IsValid() {
		req.Address = g.Address.String()
	}
	return req
}

// AddGIP implements vipsmart.Service.
func (c *Client) AddGIP(ctx context.Context, g vipsmart.GIP) (vipsmart.GIPInfo, error) {
	var out vipsmart.GIPInfo
	return out, c.do(ctx, "POST", "/v1/gips", nil, gipRequest(g), &out)
}

// UpdateGIP implements vipsmart.Service.
func (c *Client) UpdateGIP(ctx context.Context, g vipsmart.GIP) (vipsmart.GIPInfo, error) {
	var out vipsmart.GIPInfo
	return out, c.do(ctx, "PUT", "/v1/gips/"+url.PathEscape(g.Name), nil, gipRequest(g), &out)
}

// RemoveGIP implements vipsmart.Service.
func (c *Client) RemoveGIP(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/gips/"+url.PathEscape(name), nil, nil, nil)
}

// Events implements vipsmart.Service.
func (c *Client) Events(ctx context.Context, after uint64, limit int) ([]vipsmart.Event, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var es []vipsmart.Event
	return es, c.do(ctx, "GET", "/v1/events", q, nil, &es)
}

// CreateJoinToken implements vipsmart.TrustService.
func (c *Client) CreateJoinToken(ctx context.Context, ttl time.Duration) (vipsmart.JoinToken, error) {
	var t vipsmart.JoinToken
	d := vipsmart.Duration(ttl)
	return t, c.do(ctx, "POST", JoinTokensPath, nil, JoinTokenRequest{TTL: &d}, &t)
}

// RotateIdentity implements vipsmart.TrustService.
func (c *Client) RotateIdentity(ctx context.Context) (vipsmart.StatusInfo, error) {
	var st vipsmart.StatusInfo
	return st, c.do(ctx, "POST", RotatePath, nil, nil, &st)
}

// CreateToken implements vipsmart.TrustService.
func (c *Client) CreateToken(ctx context.Context, name string, role vipsmart.Role, ttl time.Duration) (vipsmart.NewAPIToken, error) {
	var t vipsmart.NewAPIToken
	req := TokenRequest{Name: name, Role: string(role)}
	if ttl > 0 {
		d := vipsmart.Duration(ttl)
		req.TTL = &d
	}
	return t, c.do(ctx, "POST", TokensPath, nil, req, &t)
}

// ListTokens implements vipsmart.TrustService.
func (c *Client) ListTokens(ctx context.Context) ([]vipsmart.APIToken, error) {
	var ts []vipsmart.APIToken
	return ts, c.do(ctx, "GET", TokensPath, nil, nil, &ts)
}

// RevokeToken implements vipsmart.TrustService.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", TokensPath+"/"+url.PathEscape(name), nil, nil, nil)
}
