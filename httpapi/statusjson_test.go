package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

type statusService struct {
	vipsmart.Service
	st vipsmart.StatusInfo
}

func (s *statusService) Status(context.Context) (vipsmart.StatusInfo, error) { return s.st, nil }

// TestStatusAnswerIsTheEncoders: GET /v1/status answers the bytes the
// Encoder of writeJSON wrote before (newline included), with their
// length; a status encoding/json cannot
// encode is answered as before too.
func TestStatusAnswerIsTheEncoders(t *testing.T) {
	since := time.Date(2026, 11, 26, 7, 0, 0, 123456789, time.UTC)
	st := vipsmart.StatusInfo{Name: "dc-<1>", Address: netip.MustParseAddr("127.0.0.1"), Port: 7000, Identity: "sha256:ab", Status: vipsmart.StatusMember, Epoch: 12,
		Federation: &vipsmart.FederationInfo{ID: "f", Epoch: 12, Members: []vipsmart.DC{{Name: "dc-1", Address: netip.MustParseAddr("127.0.0.1"), Port: 7000}}}, GIPs: 3}
	for i := range 1000 { // more than net/http sends with a length by itself
		st.Announced = append(st.Announced, vipsmart.Announced{Announcement: vipsmart.Announcement{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Kind: vipsmart.AnnounceGIPStandby, Name: fmt.Sprintf("g&%d", i)}, Via: "none", Since: since, State: vipsmart.AnnounceUp})
	}
	bad := st
	bad.Announced = []vipsmart.Announced{{Since: time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC)}}
	for _, st := range []vipsmart.StatusInfo{st, bad, {}} {
		var want bytes.Buffer
		_ = json.NewEncoder(&want).Encode(st)
		srv := httptest.NewServer((&Server{Service: &statusService{st: st}}).Handler())
		resp, err := http.Get(srv.URL + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("status %d:\n got %q\nwant %q", resp.StatusCode, got, want.Bytes())
		}
		if len(got) > 0 && resp.Header.Get("Content-Length") != strconv.Itoa(len(got)) {
			t.Errorf("Content-Length %q, body %d bytes", resp.Header.Get("Content-Length"), len(got))
		}
		srv.Close()
	}
}
