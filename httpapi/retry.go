package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vipsmart/vipsmart"
)

// A "busy" refusal (code busy, HTTP 423) means that a federation
// operation could not take a lock because another one held it, and that
// nothing was changed: sending the same request again later is safe. Both
// sides here retry it with a jittered, growing pause (so that operations
// that collided do not collide again), until the client's time is up.

// RetryHeader asks the daemon to retry a change refused as busy itself,
// until the request's Vipsmart-Timeout (30s without one): send
// "Vipsmart-Retry: busy". The answer carries AttemptsHeader.
const (
	RetryHeader    = "Vipsmart-Retry"
	AttemptsHeader = "Vipsmart-Attempts"
)

// The pauses between attempts: full jitter over an exponential ceiling.
const (
	retryBase = 50 * time.Millisecond
	retryMax  = 2 * time.Second
)

// retryPause is the pause before attempt n+1 (n >= 1).
func retryPause(n int) time.Duration {
	ceil := retryMax
	if n < 16 {
		ceil = min(retryMax, retryBase<<n)
	}
	return retryBase/2 + rand.N(ceil)
}

// do sends a request like doOnce. With c.RetryBusy a change refused as
// busy is sent again after a pause, until ctx ends; c.OnRetry hears of
// each pause. Reads are never refused as busy.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	start := time.Now()
	var busy error // the last busy answer, once there was one
	for n := 1; ; n++ {
		err := c.doOnce(ctx, method, path, q, in, out)
		if busy != nil && err != nil && ctx.Err() != nil {
			// The time ran out during a retry: what stands in the way
			// is still the last busy answer, not the timeout.
			return fmt.Errorf("gave up after %d attempts in %s (the timeout ran out): %w", n-1, time.Since(start).Round(time.Millisecond), busy)
		}
		if !c.RetryBusy || !vipsmart.IsCode(err, vipsmart.EBUSY) || method == http.MethodGet {
			return err
		}
		busy = err
		pause := retryPause(n)
		left := time.Duration(1<<63 - 1)
		if dl, ok := ctx.Deadline(); ok {
			left = time.Until(dl)
		}
		if pause >= left {
			return fmt.Errorf("gave up after %d attempts in %s (the timeout ran out): %w", n, time.Since(start).Round(time.Millisecond), err)
		}
		if c.OnRetry != nil {
			c.OnRetry(n, pause, left, err)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return fmt.Errorf("gave up after %d attempts in %s (the timeout ran out): %w", n, time.Since(start).Round(time.Millisecond), err)
		}
	}
}

// retryBusy serves requests carrying RetryHeader: a change answered 423
// is served again after a pause while the request's time lasts. It sits
// inside clientDeadline, so that the time is the client's.
func retryBusy(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get(RetryHeader)
		if v == "" || r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		if v != "busy" {
			writeHTTPError(w, http.StatusBadRequest, vipsmart.EINVALID, fmt.Sprintf("header %s: %q is unknown: send %s: busy (retry changes refused as busy)", RetryHeader, v, RetryHeader))
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeHTTPError(w, http.StatusBadRequest, vipsmart.EINVALID, fmt.Sprintf("reading request body: %v", err))
			return
		}
		ctx := r.Context()
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
		}
		for n := 1; ; n++ {
			rec := &recorded{header: http.Header{}}
			r2 := r.Clone(ctx)
			r2.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(rec, r2)
			pause := retryPause(n)
			dl, _ := ctx.Deadline()
			if rec.status != http.StatusLocked || time.Until(dl) <= pause {
				rec.header.Set(AttemptsHeader, strconv.Itoa(n))
				rec.writeTo(w)
				return
			}
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				rec.header.Set(AttemptsHeader, strconv.Itoa(n))
				rec.writeTo(w)
				return
			}
		}
	})
}

// recorded is a response kept to be sent (or dropped for a retry).
type recorded struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorded) Header() http.Header { return r.header }

func (r *recorded) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}

func (r *recorded) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *recorded) writeTo(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	if r.status == 0 {
		r.status = http.StatusOK
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body.Bytes())
}
