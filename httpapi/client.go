package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Client implements vipsmart.Service against a daemon's operator API.
type Client struct {
	// Server is HOST:PORT of the daemon, e.g. 127.0.0.1:9610.
	Server string
	HTTP   *http.Client
}

var _ vipsmart.Service = (*Client)(nil)

// NewClient returns a client of the daemon at server (HOST:PORT).
func NewClient(server string) *Client {
	return &Client{Server: server, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

func (c *Client) url(path string, q url.Values) string {
	u := url.URL{Scheme: "http", Host: c.Server, Path: path}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// do sends a request and decodes a 2xx JSON answer into out (if non-nil);
// an error answer comes back as *vipsmart.Error, a connection failure as
// EUNAVAILABLE naming the server.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return vipsmart.Errorf(vipsmart.EINVALID, "server", "bad server address %q: %v", c.Server, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
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
			return &vipsmart.Error{Code: vipsmart.ETIMEOUT, Message: fmt.Sprintf("vipsmart daemon at %s did not answer in time", c.Server), Err: err}
		}
		return &vipsmart.Error{Code: vipsmart.EUNAVAILABLE, Message: fmt.Sprintf("cannot reach the vipsmart daemon at %s (is `vipsmart serve` running? set --server or VIPSMART_SERVER)", c.Server), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding answer of %s %s: %w", method, path, err)
	}
	return nil
}

// Status implements vipsmart.Service.
func (c *Client) Status(ctx context.Context) (vipsmart.StatusInfo, error) {
	var st vipsmart.StatusInfo
	return st, c.do(ctx, "GET", "/v1/status", nil, nil, &st)
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
	req := VIPRequest{Name: v.Name, Interface: v.Interface, Check: v.Check}
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
func (c *Client) AddDC(ctx context.Context, d vipsmart.DC) (vipsmart.StatusInfo, error) {
	port := int(d.Port)
	req := DCRequest{Name: d.Name, Port: &port}
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
	req := GIPRequest{Name: g.Name, Mode: g.Mode, Preempt: &p, Placements: g.Placements}
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
