package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

func check(url string, timeout time.Duration) vipsmart.Check {
	return vipsmart.Check{URL: url, Interval: vipsmart.Duration(10 * timeout), Timeout: vipsmart.Duration(timeout), Rise: 1, Fall: 1}
}

// listen returns a listener on a free loopback port.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestNetProberTCP(t *testing.T) {
	ln := listen(t)
	var p NetProber
	if err := p.Probe(context.Background(), check("tcp://"+ln.Addr().String(), time.Second)); err != nil {
		t.Errorf("open port: %v", err)
	}
	err := p.Probe(context.Background(), check("tcp://"+closedPort(t), time.Second))
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("closed port: got %v, want connection refused", err)
	}
	if err := p.Probe(context.Background(), check("ftp://127.0.0.1:21", time.Second)); !vipsmart.IsCode(err, vipsmart.EINVALID) {
		t.Errorf("bad URL: got %v, want EINVALID", err)
	}
}

func TestNetProberHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "fine")
		case "/fail":
			w.WriteHeader(500)
		case "/nocontent":
			w.WriteHeader(204)
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/huge": // an endless body: the probe reads 64 KiB and hangs up
			buf := make([]byte, 32<<10)
			for {
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
		}
	}))
	defer srv.Close()
	var p NetProber
	for _, tc := range []struct {
		path   string
		expect int
		errHas string // "" for success
	}{
		{"/ok", 0, ""},
		{"/ok", 200, ""},
		{"/fail", 0, "status 500, want 200"},
		{"/fail", 500, ""},
		{"/nocontent", 204, ""},
		{"/ok", 204, "status 200, want 204"},
		{"/redirect", 0, "status 302, want 200"},
		{"/redirect", 302, ""},
		{"/huge", 200, ""},
	} {
		c := check(srv.URL+tc.path, 2*time.Second)
		c.ExpectStatus = tc.expect
		start := time.Now()
		err := p.Probe(context.Background(), c)
		switch {
		case tc.errHas == "" && err != nil:
			t.Errorf("%s expect %d: %v", tc.path, tc.expect, err)
		case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
			t.Errorf("%s expect %d: got %v, want %q", tc.path, tc.expect, err, tc.errHas)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s took %s", tc.path, d)
		}
	}
	if err := p.Probe(context.Background(), check("http://"+closedPort(t)+"/", time.Second)); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("closed port: got %v, want connection refused", err)
	}
}

func TestNetProberHTTPTimeout(t *testing.T) {
	// A listener that accepts connections and never answers.
	ln := listen(t)
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	var p NetProber
	start := time.Now()
	err := p.Probe(context.Background(), check("http://"+ln.Addr().String()+"/", 100*time.Millisecond))
	d := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "no answer within 100ms") {
		t.Errorf("got %v, want a timeout", err)
	}
	if d < 90*time.Millisecond || d > time.Second {
		t.Errorf("timed out after %s, want about 100ms", d)
	}

	// The caller's context ends the probe too.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start = time.Now()
	if err := p.Probe(ctx, check("http://"+ln.Addr().String()+"/", 5*time.Second)); err == nil || time.Since(start) > time.Second {
		t.Errorf("cancelled probe: %v after %s", err, time.Since(start))
	}
}

func TestNetProberHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	c := check(srv.URL+"/", 2*time.Second)
	// Normal verification refuses the test server's self-signed certificate.
	if err := (NetProber{}).Probe(context.Background(), c); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: got %v, want a verification error", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	if err := (NetProber{TLSConfig: &tls.Config{RootCAs: pool}}).Probe(context.Background(), c); err != nil {
		t.Errorf("trusted certificate: %v", err)
	}
}
