package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// busyFor answers 423 busy to the first n changes, then 201.
func busyFor(n int32, calls *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if calls.Add(1) <= n && r.Method != http.MethodGet {
			writeError(w, vipsmart.Errorf(vipsmart.EBUSY, "", "federation busy, retry: dc-2 is locked by operation dc-3-7"))
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"name": "web"})
	})
}

func TestClientRetriesBusy(t *testing.T) {
	var calls atomic.Int32
	c := NewClient(socketServer(t, busyFor(2, &calls)))
	var pauses []time.Duration
	c.RetryBusy = true
	c.OnRetry = func(n int, pause, left time.Duration, err error) {
		pauses = append(pauses, pause)
		if !vipsmart.IsCode(err, vipsmart.EBUSY) || left <= 0 {
			t.Errorf("OnRetry(%d, %s, %s, %v)", n, pause, left, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.do(ctx, "POST", "/v1/gips", nil, map[string]string{"name": "web"}, nil); err != nil {
		t.Fatalf("after two busy answers: %v", err)
	}
	if calls.Load() != 3 || len(pauses) != 2 {
		t.Fatalf("%d calls, %d pauses; want 3 and 2", calls.Load(), len(pauses))
	}

	// Without RetryBusy, or for a read, the first answer is final.
	calls.Store(0)
	c.RetryBusy = false
	if err := c.do(ctx, "POST", "/v1/gips", nil, map[string]string{}, nil); !vipsmart.IsCode(err, vipsmart.EBUSY) || calls.Load() != 1 {
		t.Fatalf("without RetryBusy: %v after %d calls", err, calls.Load())
	}

	// Busy for ever: it gives up when the context's time runs out.
	calls.Store(-1 << 30)
	c.RetryBusy = true
	short, cancel2 := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel2()
	err := c.do(short, "DELETE", "/v1/gips/web", nil, nil, nil)
	if !vipsmart.IsCode(err, vipsmart.EBUSY) || !strings.Contains(err.Error(), "gave up after") {
		t.Fatalf("busy for ever: %v", err)
	}
}

func TestRetryPausesGrowAndAreJittered(t *testing.T) {
	seen := map[time.Duration]bool{}
	for n := 1; n <= 12; n++ {
		for range 50 {
			p := retryPause(n)
			if p < retryBase/2 || p > retryBase/2+retryMax {
				t.Fatalf("pause %s after attempt %d is out of range", p, n)
			}
			seen[p] = true
		}
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct pauses in 600: not jittered", len(seen))
	}
}

func TestServerRetriesBusyOnRequest(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(retryBusy(busyFor(2, &calls)))
	defer srv.Close()
	send := func(header string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/gips", strings.NewReader(`{"name":"web"}`))
		if header != "" {
			req.Header.Set(RetryHeader, header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := send("busy"); resp.StatusCode != http.StatusCreated || resp.Header.Get(AttemptsHeader) != "3" {
		t.Fatalf("with %s: busy: %d after %s attempts; want 201 after 3", RetryHeader, resp.StatusCode, resp.Header.Get(AttemptsHeader))
	}
	calls.Store(0)
	if resp := send(""); resp.StatusCode != http.StatusLocked {
		t.Fatalf("without the header: %d; want 423", resp.StatusCode)
	}
	if resp := send("always"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("with a bad header value: %d; want 400", resp.StatusCode)
	}
}

// socketServer serves h on a unix socket in a temporary directory, as the
// daemon serves its operator API, and returns the socket's path.
func socketServer(t *testing.T, h http.Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return path
}
