package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

func TestParseServer(t *testing.T) {
	good := map[string]string{
		"":                            DefaultSocket,
		"/run/vipsmart/vipsmart.sock": "/run/vipsmart/vipsmart.sock",
		"unix:///tmp/x.sock":          "/tmp/x.sock",
		"./dc-1.sock":                 "./dc-1.sock",
		"dc-1.sock":                   "dc-1.sock",
		"https://192.0.2.1:9620":      "https://192.0.2.1:9620",
		"https://[2001:db8::1]:9620/": "https://[2001:db8::1]:9620",
		"https://dc-1.example:9620":   "https://dc-1.example:9620",
	}
	for in, want := range good {
		ep, err := ParseServer(in)
		if err != nil || ep.String() != want {
			t.Errorf("ParseServer(%q) = %v, %v; want %s", in, ep, err, want)
		}
	}
	bad := map[string]string{
		"127.0.0.1:9610":           "federation port",
		"http://127.0.0.1:9610":    "plain HTTP",
		"https://192.0.2.1":        "HOST:PORT",
		"https://192.0.2.1:1/v1":   "HOST:PORT",
		"https://u:p@192.0.2.1:1":  "HOST:PORT",
		"unix://relative.sock":     "absolute",
		"ftp://x":                  "unknown scheme",
		"localhost":                "socket path",
		"https://192.0.2.1:9620?x": "HOST:PORT",
	}
	for in, msg := range bad {
		if _, err := ParseServer(in); !vipsmart.IsCode(err, vipsmart.EINVALID) || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseServer(%q) = %v; want EINVALID saying %q", in, err, msg)
		}
	}
}

type fakeAuth map[string]vipsmart.APIToken

func (f fakeAuth) Authenticate(b string, now time.Time) (vipsmart.APIToken, error) {
	if t, ok := f[b]; ok {
		return t, nil
	}
	return vipsmart.APIToken{}, vipsmart.Errorf(vipsmart.EUNAUTHORIZED, "token", "the API token is not valid")
}

func TestRequireToken(t *testing.T) {
	auth := fakeAuth{"A": {Name: "ops", Role: vipsmart.RoleAdmin}, "R": {Name: "viewer", Role: vipsmart.RoleRead}}
	var reached []string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := vipsmart.CallerFrom(r.Context())
		reached = append(reached, r.Method+" "+c.String())
		w.WriteHeader(204)
	})
	var refused []string
	h := RequireToken(auth, func(remote, who, why string) { refused = append(refused, who+": "+why) }, next)
	for _, c := range []struct {
		method, auth string
		status       int
	}{
		{"GET", "", 401},
		{"GET", "Basic QQ==", 401},
		{"GET", "Bearer", 401},
		{"GET", "Bearer X", 401},
		{"GET", "Bearer R", 204},
		{"HEAD", "bearer R", 204},
		{"POST", "Bearer R", 403},
		{"DELETE", "Bearer R", 403},
		{"POST", "Bearer A", 204},
	} {
		req := httptest.NewRequest(c.method, "/v1/vips", nil)
		req.RemoteAddr = "192.0.2.7:4000"
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != c.status {
			t.Errorf("%s with %q: %d %s; want %d", c.method, c.auth, w.Code, w.Body, c.status)
		}
		if c.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s with %q: 401 without WWW-Authenticate", c.method, c.auth)
		}
	}
	if len(reached) != 3 || reached[2] != "POST token ops (admin) from 192.0.2.7:4000" {
		t.Fatalf("requests that reached the API: %q", reached)
	}
	if len(refused) != 6 || !strings.HasPrefix(refused[4], "token viewer: POST /v1/vips") {
		t.Fatalf("refusals reported: %q", refused)
	}
}
