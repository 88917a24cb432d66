package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// applyService records the requests POST /v1/apply hands on.
type applyService struct {
	vipsmart.Service
	got []vipsmart.ApplyRequest
}

func (s *applyService) Apply(_ context.Context, req vipsmart.ApplyRequest) (vipsmart.ApplyResult, error) {
	s.got = append(s.got, req)
	return vipsmart.ApplyResult{ResourceVersion: "1-0123456789abcdef", Changes: []vipsmart.ObjectChange{}}, nil
}

// TestApplyRoute: a body of several MiB (10,000 GIPs) is accepted on
// POST /v1/apply (other operator routes stop at 1 MiB); bad objects are
// refused naming the object and field, and reach no service.
func TestApplyRoute(t *testing.T) {
	svc := &applyService{}
	srv := httptest.NewServer((&Server{Service: svc}).Handler())
	defer srv.Close()
	post := func(path string, body any) (int, string) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(srv.URL+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		out.ReadFrom(resp.Body)
		return resp.StatusCode, out.String()
	}
	body := ApplyBody{DryRun: true}
	for i := range 10000 {
		body.GIPs = append(body.GIPs, GIPRequest{Name: fmt.Sprintf("g%05d", i), Address: fmt.Sprintf("10.1.%d.%d", i>>8, i&255),
			Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 200}, {DC: "dc-2", Priority: 100}, {DC: "dc-3", Priority: 50}}})
	}
	if raw, _ := json.Marshal(body); len(raw) <= MaxOperatorBody {
		t.Fatalf("the body is only %d bytes: the test needs one over the 1 MiB operator limit", len(raw))
	}
	if st, out := post(ApplyPath, body); st != 200 || len(svc.got) != 1 || len(svc.got[0].GIPs) != 10000 || !svc.got[0].GIPs[0].Preempt {
		t.Fatalf("POST /v1/apply of 10,000 GIPs: %d %.200s (service got %d requests)", st, out, len(svc.got))
	}
	if st, _ := post("/v1/gips", body); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("the same body on POST /v1/gips: %d, want 413", st)
	}
	for _, c := range []struct {
		body  ApplyBody
		field string
	}{
		{ApplyBody{GIPs: []GIPRequest{{Name: "a", Address: "192.0.2.1"}, {Name: "b", Address: "192.0.2.1/32"}}}, "gips[1].address"},
		{ApplyBody{VIPs: []VIPRequest{{Name: "v", Address: "192.0.2.1"}}, GIPs: []GIPRequest{{Name: "a", Address: "192.0.2.1"}}}, "gips[0].address"},
		{ApplyBody{GIPs: []GIPRequest{{Name: "a", Address: "192.0.2.1"}, {Name: "a", Address: "192.0.2.2"}}}, "gips[1].name"},
		{ApplyBody{ResourceVersion: "seven"}, "resource_version"},
	} {
		st, out := post(ApplyPath, c.body)
		if st != 400 || !strings.Contains(out, `"field":"`+c.field+`"`) {
			t.Errorf("body %+v: %d %s, want 400 naming %s", c.body, st, out, c.field)
		}
	}
	if len(svc.got) != 1 {
		t.Fatalf("refused bodies reached the service: %d requests", len(svc.got))
	}
}
