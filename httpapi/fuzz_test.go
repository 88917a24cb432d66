package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// fuzzService records what reaches the service; only the routes the fuzz
// targets use are implemented.
type fuzzService struct {
	vipsmart.Service
	vips []vipsmart.VIP
	gips []vipsmart.GIP
}

func (s *fuzzService) AddVIP(_ context.Context, v vipsmart.VIP) (vipsmart.VIP, error) {
	s.vips = append(s.vips, v)
	return v, nil
}

func (s *fuzzService) AddGIP(_ context.Context, g vipsmart.GIP) (vipsmart.GIPInfo, error) {
	s.gips = append(s.gips, g)
	return vipsmart.GIPInfo{GIP: g}, nil
}

func (s *fuzzService) UpdateGIP(_ context.Context, g vipsmart.GIP) (vipsmart.GIPInfo, error) {
	s.gips = append(s.gips, g)
	return vipsmart.GIPInfo{GIP: g}, nil
}

// post sends body to path on a fresh server and returns the status and
// what reached the service.
func fuzzPost(t *testing.T, method, path, body string) (int, *fuzzService) {
	svc := &fuzzService{}
	h := (&Server{Service: svc}).Handler()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code >= 500 {
		t.Fatalf("%s %s %q: %d %s", method, path, body, w.Code, w.Body)
	}
	return w.Code, svc
}

// FuzzVIPRequest: POST /v1/vips bodies from operators. Anything is either
// refused with a 4xx (and never reaches the service) or reaches it as a
// VIP that passes validation.
func FuzzVIPRequest(f *testing.F) {
	for _, s := range []string{`{"name":"web","address":"192.0.2.2"}`, `{"name":"web","address":"2001:db8::1","interface":"eth0","check":{"url":"tcp://10.0.0.1:80","interval":"1s","timeout":"200ms","rise":2,"fall":3}}`,
		`{"name":"web","address":"192.0.2.2","check":{"url":"http://h/x","expect_status":204}}`, `{"name":5}`, `{name:`, `{}{}`, `{"name":"web","address":"192.0.2.2/32"}`, `{"check":{"interval":-1}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		code, svc := fuzzPost(t, "POST", "/v1/vips", body)
		if code != http.StatusCreated {
			if len(svc.vips) != 0 {
				t.Fatalf("refused with %d, yet reached the service: %+v", code, svc.vips)
			}
			return
		}
		if len(svc.vips) != 1 {
			t.Fatalf("201 but %d VIPs reached the service", len(svc.vips))
		}
		v := svc.vips[0]
		if err := v.Validate(); err != nil {
			t.Fatalf("an invalid VIP reached the service: %+v: %v", v, err)
		}
	})
}

// FuzzGIPRequest: POST /v1/gips and PUT /v1/gips/{name} bodies. Anything
// is refused with a 4xx or reaches the service as a valid GIP.
func FuzzGIPRequest(f *testing.F) {
	for _, s := range []string{`{"name":"www","address":"203.0.113.10","placements":[{"dc":"dc-1","priority":200,"vip":"web"},{"dc":"dc-2","priority":100}]}`,
		`{"name":"www","address":"2001:db8::10","mode":"anycast","preempt":false,"placements":[]}`, `{"name":"www","address":"203.0.113.10","placements":[{"dc":"dc-1","priority":0}]}`,
		`{"name":"www","address":"203.0.113.10","placements":[{"dc":"dc-1","priority":1},{"dc":"dc-1","priority":2}]}`, `{"mode":"x"}`, `[]`} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, body string, put bool) {
		method, path := "POST", "/v1/gips"
		if put {
			method, path = "PUT", "/v1/gips/www"
		}
		code, svc := fuzzPost(t, method, path, body)
		if code >= 300 {
			if len(svc.gips) != 0 {
				t.Fatalf("refused with %d, yet reached the service: %+v", code, svc.gips)
			}
			return
		}
		if len(svc.gips) != 1 {
			t.Fatalf("%d but %d GIPs reached the service", code, len(svc.gips))
		}
		g := svc.gips[0]
		if err := g.Validate(); err != nil {
			t.Fatalf("an invalid GIP reached the service: %+v: %v", g, err)
		}
		if put && g.Name != "www" {
			t.Fatalf("PUT /v1/gips/www changed GIP %q", g.Name)
		}
	})
}

// FuzzParseServer: the CLI's --server. It is refused with EINVALID or is
// exactly one of a socket path and an https URL with a host and a port.
func FuzzParseServer(f *testing.F) {
	for _, s := range []string{"", "/run/vipsmart/vipsmart.sock", "unix:///x", "https://192.0.2.1:9620", "https://[::1]:1/", "127.0.0.1:9610", "http://h:1", "x.sock", "https://h", "unix://", "https://:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := ParseServer(s)
		if err != nil {
			if !vipsmart.IsCode(err, vipsmart.EINVALID) {
				t.Fatalf("ParseServer(%q): %v", s, err)
			}
			return
		}
		if (ep.Socket == "") == (ep.URL == nil) {
			t.Fatalf("ParseServer(%q) = %+v: want a socket or a URL", s, ep)
		}
		if ep.URL != nil && (ep.URL.Scheme != "https" || ep.URL.Host == "" || ep.URL.Port() == "") {
			t.Fatalf("ParseServer(%q) = %v: not https://HOST:PORT", s, ep.URL)
		}
	})
}
