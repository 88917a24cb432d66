package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart/federation"
)

// countingReceiver validates what reaches it, as the daemon does, and
// counts the messages it would believe.
type countingReceiver struct{ n int }

func (c *countingReceiver) Deliver(_ context.Context, m federation.Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	c.n++
	return nil
}

// TestPeerBodiesAreCheckedAtTheEdge posts malformed federation messages
// to the federation listener's handler (issue 15, finding 7): each is
// refused with 400 and a message naming the field, and none reaches the
// receiver.
func TestPeerBodiesAreCheckedAtTheEdge(t *testing.T) {
	recv := &countingReceiver{}
	srv := httptest.NewServer(PeerHandler(recv, nil, nil))
	defer srv.Close()
	cases := []struct{ name, body, want string }{
		{"garbage type", `{"type":"bogus"}`, "unknown message type"},
		{"unknown field", `{"type":"heartbeat","evil":true}`, `unknown field "evil"`},
		{"negative number", `{"type":"heartbeat","epoch":-1}`, `field "epoch" must not be negative, not -1`},
		{"bad peer address", `{"type":"heartbeat","from":{"name":"dc-9","address":"300.1.1.1","port":1},"to":{"name":"dc-1","address":"127.0.0.1","port":1}}`, `field "from.address": "300.1.1.1" is not an IP address`},
	}
	for _, c := range cases {
		resp, err := http.Post(srv.URL+PeerPath, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_ = json.Unmarshal(b, &e)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error.Message, c.want) {
			t.Errorf("%s: %d %s; want 400 saying %q", c.name, resp.StatusCode, b, c.want)
		}
	}
	if recv.n != 0 {
		t.Errorf("%d malformed messages reached the receiver", recv.n)
	}
}
