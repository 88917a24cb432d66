package httpapi

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// TestApplyBodyKeysTwiceAndNotUTF8: POST /v1/apply refuses a body with a
// key twice in one object (naming it) or bytes that are not UTF-8, and
// hands nothing to the service. Before, encoding/json kept the last key
// ({"dry_run": true, ..., "dry_run": false} applied) and read bad bytes
// as U+FFFD.
func TestApplyBodyKeysTwiceAndNotUTF8(t *testing.T) {
	svc := &applyService{}
	srv := httptest.NewServer((&Server{Service: svc}).Handler())
	defer srv.Close()
	for _, c := range []struct{ body, want string }{
		{`{"dry_run": true, "gips": [], "dry_run": false}`, `"field":"dry_run"`},
		{`{"dry_run": true, "gips": [{"name": "a", "address": "192.0.2.1", "placements": [{"dc": "dc-1", "priority": 1, "dc": "dc-2"}]}]}`, `"field":"gips[0].placements[0].dc"`},
		{`{"dry_run": true, "vips": [{"name": "a", "address": "192.0.2.1", "name": "b"}]}`, `"field":"vips[0].name"`},
		{`{"dry_run": true, "vips": [{"name": "a", "address": "192.0.2.1", "check": {"url": "tcp://192.0.2.9:1", "rise": 2, "rise": 3}}]}`, `"field":"vips[0].check.rise"`},
		{`{"dry_run": true, "gips": [{"name": "a", "address": "192.0.2.1", "kind": "GIP"}]}`, `"field":"gips[0].kind","message":"unknown field \"kind\" in gips[0]: remove it`},
		{`{"dry_run": true, "gips": [{"name": "a", "address": "192.0.2.1", "placements": [{"dc": "dc-1", "priority": 1, "weight": 2}]}]}`, `"field":"gips[0].placements[0].weight"`},
		{`{"dry_run": true, "gips": [{"name": "a", "address": "192.0.2.1"}, {"name": "b", "address": "192.0.2.2", "placements": [{"dc": "dc-1", "priority": 1}, {"dc": "dc-2", "priority": 1.5}]}]}`, `"field":"gips[1].placements[1].priority"`},
		{`{"dry_run": true, "gips": [{"name": "a", "address": "192.0.2.1"}, {"name": "b", "address": "192.0.2.2", "placements": [{"dc": "dc-1", "priority": 1}, {"priority": 1}]}]}`, `"field":"gips[1].placements[1].dc","message":"gips[1]: placement dc is empty`},
		{`[]`, `"message":"request body must be one JSON object ({...}) with \"vips\"`},
		{"{\"dry_run\": true, \"vips\": [{\"name\": \"a\", \"address\": \"192.0.2.1\", \"interface\": \"e\xff\"}]}", `not UTF-8`},
	} {
		resp, err := http.Post(srv.URL+ApplyPath, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out := string(b)
		if resp.StatusCode != 400 || !strings.Contains(out, c.want) {
			t.Errorf("%s: %d %s, want 400 with %s", c.body, resp.StatusCode, out, c.want)
		}
	}
	if len(svc.got) != 0 {
		t.Fatalf("refused bodies reached the service: %+v", svc.got)
	}
}

// TestClientApplyTooLarge: a request over MaxApplyBody is refused by the
// client before it is sent, saying what to do (the daemon's 413 said
// only "request body is larger than 33554432 bytes").
func TestClientApplyTooLarge(t *testing.T) {
	svc := &applyService{}
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer((&Server{Service: svc}).Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	var req vipsmart.ApplyRequest
	for i := range 300000 {
		req.GIPs = append(req.GIPs, vipsmart.GIP{Name: fmt.Sprintf("gip-with-a-longish-name-%06d", i), Address: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
			Mode: vipsmart.ModeFailover, Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 100, VIP: "web"}, {DC: "dc-2", Priority: 100, VIP: "web"}}})
	}
	_, err = NewClient(sock).Apply(context.Background(), req)
	if err == nil || !vipsmart.IsCode(err, vipsmart.EINVALID) || !strings.Contains(err.Error(), "apply the files in parts") {
		t.Fatalf("apply of a request over %d bytes: %v", MaxApplyBody, err)
	}
	if len(svc.got) != 0 {
		t.Fatalf("the request reached the service")
	}
}

// TestApplyBodyTooLargeMessage: the 413 of POST /v1/apply says the limit
// in MiB and what to do (it said only "larger than 33554432 bytes").
func TestApplyBodyTooLargeMessage(t *testing.T) {
	srv := httptest.NewServer((&Server{Service: &applyService{}}).Handler())
	defer srv.Close()
	body := strings.Repeat(" ", MaxApplyBody+1)
	resp, err := http.Post(srv.URL+ApplyPath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "(32 MiB), the most POST /v1/apply takes: apply the files in parts") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}
