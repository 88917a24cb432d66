// Package health runs the VIP health checks of one DC: a Prober tries a
// check once, a Counter turns a stream of results into up/down with the
// check's rise and fall counts, and a Checker keeps one goroutine probing each
// checked VIP of a declared set.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Prober tries a check once. It returns nil when the check passes and an
// error saying what failed otherwise. It must return promptly when ctx is
// done.
type Prober interface {
	Probe(ctx context.Context, c vipsmart.Check) error
}

// MaxBody is how much of an HTTP check's response body NetProber reads.
const MaxBody = 64 << 10

// NetProber probes over the network: a tcp:// check passes when a TCP
// connection opens; an http:// or https:// check passes when a GET answers
// with ExpectStatus (200 if zero). Redirects are not followed; at most MaxBody
// bytes of the body are read. Each probe uses a fresh connection and is bound
// by Check.Timeout (DefaultCheckTimeout if zero). The zero value is ready to
// use.
type NetProber struct {
	// TLSConfig is used for https:// checks; nil verifies the server
	// against the system roots as usual.
	TLSConfig *tls.Config
}

// Probe implements Prober.
func (p NetProber) Probe(ctx context.Context, c vipsmart.Check) error {
	u, err := vipsmart.ParseCheckURL(c.URL)
	if err != nil {
		return err
	}
	timeout := time.Duration(c.Timeout)
	if timeout <= 0 {
		timeout = vipsmart.DefaultCheckTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if u.Scheme == "tcp" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", vipsmart.CheckTarget(u))
		if err != nil {
			return timeoutErr(err, timeout)
		}
		return conn.Close()
	}

	tr := &http.Transport{
		Proxy:             nil, // a health check goes straight to the backend
		DialContext:       (&net.Dialer{}).DialContext,
		TLSClientConfig:   p.TLSConfig,
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "vipsmart-health/1")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the "Get URL:" prefix: the URL is known
		}
		return timeoutErr(err, timeout)
	}
	defer resp.Body.Close()
	want := c.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, want)
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBody)); err != nil {
		return fmt.Errorf("reading body: %w", timeoutErr(err, timeout))
	}
	return nil
}

// timeoutErr words a deadline error with the check's timeout.
func timeoutErr(err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) || isNetTimeout(err) {
		return fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	return err
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
