package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// fakePeer takes messages; a message whose reason is "block" waits until
// release is closed.
type fakePeer struct {
	mu      sync.Mutex
	got     int
	release chan struct{}
	started chan struct{}
}

func (p *fakePeer) Deliver(ctx context.Context, m federation.Message) error {
	if strings.TrimSpace(m.Reason) == "block" {
		p.started <- struct{}{}
		select {
		case <-p.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	p.got++
	p.mu.Unlock()
	return nil
}

func newPeerServer(t *testing.T, l Limits) (*httptest.Server, *fakePeer) {
	t.Helper()
	p := &fakePeer{release: make(chan struct{}), started: make(chan struct{}, 16)}
	srv := httptest.NewServer((&Server{Peer: p, PeerLimits: &l}).Peers(nil))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-p.release:
		default:
			close(p.release)
		}
	})
	return srv, p
}

func dc(i int) vipsmart.DC {
	return vipsmart.DC{Name: fmt.Sprintf("dc-%d", i), Address: netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}), Port: 9610}
}

// message is a heartbeat of about size bytes (padded in its reason).
func message(t *testing.T, size int, reason string) []byte {
	t.Helper()
	m := federation.Message{Type: federation.MsgHeartbeat, From: dc(1), To: dc(2), Reason: reason}
	b, _ := json.Marshal(m)
	if pad := size - len(b); pad > 0 {
		m.Reason += strings.Repeat(" ", pad)
		b, _ = json.Marshal(m)
	}
	return b
}

func post(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url+PeerPath, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// largestState is the largest legitimate peer message measured for the
// limit: a state transfer of 10,000 GIPs with 63-character names and IPv6
// addresses, each placed in 8 DCs with 63-character names and VIP names.
func largestState() federation.Message {
	long := func(p string, i int) string {
		s := fmt.Sprintf("%s-%d", p, i)
		return s + strings.Repeat("x", 63-len(s))
	}
	addr := netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")
	st := &federation.State{FedID: "f-dc-1-abcdef-1", Epoch: 1 << 40}
	for i := range 8 {
		st.Members = append(st.Members, vipsmart.DC{Name: long("dc", i), Address: addr, Port: 65535})
	}
	for i := range 10000 {
		g := vipsmart.GIP{Name: long("gip", i), Address: addr, Mode: vipsmart.ModeFailover, Preempt: true}
		for j := range 8 {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: long("dc", j), Priority: 255, VIP: long("vip", j)})
		}
		st.GIPs = append(st.GIPs, g)
	}
	return federation.Message{Type: federation.MsgState, From: st.Members[0], To: st.Members[1], State: st}
}

func TestLargestStateFitsThePeerLimit(t *testing.T) {
	b, err := json.Marshal(largestState())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("largest legitimate state transfer: %d bytes (%.1f MiB); MaxPeerBody %d MiB", len(b), float64(len(b))/(1<<20), MaxPeerBody>>20)
	if len(b) > MaxPeerBody {
		t.Fatalf("a state of 10,000 GIPs in 8 DCs with maximal names is %d bytes, over MaxPeerBody %d", len(b), MaxPeerBody)
	}
	srv, p := newPeerServer(t, DefaultPeerLimits)
	if code, body := post(t, srv.URL, b); code != http.StatusAccepted {
		t.Fatalf("the largest state was answered %d: %s", code, body)
	}
	if p.got != 1 {
		t.Fatalf("delivered %d messages, want 1", p.got)
	}
	big := message(t, MaxPeerBody+1, "")
	if code, body := post(t, srv.URL, big); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "larger than") {
		t.Fatalf("a body over the limit: %d %s", code, body)
	}
}

func TestLargeBodiesWaitTheirTurn(t *testing.T) {
	l := DefaultPeerLimits
	l.LargeBody, l.MaxLarge, l.MaxLargePerSource, l.Wait = 1024, 1, 1, 300*time.Millisecond
	srv, p := newPeerServer(t, l)
	first := make(chan int)
	go func() {
		code, _ := post(t, srv.URL, message(t, 4096, "block"))
		first <- code
	}()
	<-p.started // the first large body holds the only slot
	start := time.Now()
	code, body := post(t, srv.URL, message(t, 4096, ""))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "large requests") {
		t.Fatalf("a second large body while the slot is taken: %d %s", code, body)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("refused after %s, before waiting its turn (%s)", waited, l.Wait)
	}
	// Small messages (heartbeats) are not held up meanwhile.
	if code, body := post(t, srv.URL, message(t, 200, "")); code != http.StatusAccepted {
		t.Fatalf("a small message while a large one is read: %d %s", code, body)
	}
	close(p.release)
	if code := <-first; code != http.StatusAccepted {
		t.Fatalf("the first large body: %d", code)
	}
	if code, body := post(t, srv.URL, message(t, 4096, "")); code != http.StatusAccepted {
		t.Fatalf("a large body once the slot is free: %d %s", code, body)
	}
}

func TestInFlightAndPerSourceLimits(t *testing.T) {
	l := DefaultPeerLimits
	l.MaxInFlight, l.MaxPerSource = 4, 2
	srv, p := newPeerServer(t, l)
	done := make(chan int, 2)
	for range 2 {
		go func() {
			code, _ := post(t, srv.URL, message(t, 100, "block"))
			done <- code
		}()
		<-p.started
	}
	code, body := post(t, srv.URL, message(t, 100, ""))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "from 127.0.0.1") {
		t.Fatalf("a third request at once from one source: %d %s", code, body)
	}
	close(p.release)
	for range 2 {
		if c := <-done; c != http.StatusAccepted {
			t.Fatalf("a blocked request ended with %d", c)
		}
	}
}

// TestSlowBodyIsCutOff sends a body that trickles in slower than the read
// timeout allows: the request fails and the server goes on answering.
func TestSlowBodyIsCutOff(t *testing.T) {
	l := DefaultPeerLimits
	l.ReadTimeout = 300 * time.Millisecond
	srv, _ := newPeerServer(t, l)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":\"heartbeat\",", PeerPath)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	answer, rerr := io.ReadAll(conn) // the server answers and closes
	t.Logf("answer %q err %v", answer, rerr)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("the trickling body was cut off after %s; read timeout %s", d, l.ReadTimeout)
	}
	if !strings.HasPrefix(string(answer), "HTTP/1.1 400") || !strings.Contains(string(answer), "timeout") {
		t.Fatalf("answer to a body that stopped coming: %q", answer)
	}
	if code, body := post(t, srv.URL, message(t, 100, "")); code != http.StatusAccepted {
		t.Fatalf("after a slow body: %d %s", code, body)
	}
}

// TestReadTimeoutDoesNotCancelALongRequest checks that the read deadline
// covers the body only: a request still being served after it is not
// cancelled (a deadline on the whole request, or one left on the
// connection, would cancel it).
func TestReadTimeoutDoesNotCancelALongRequest(t *testing.T) {
	l := DefaultPeerLimits
	l.ReadTimeout = 100 * time.Millisecond
	srv, p := newPeerServer(t, l)
	done := make(chan int)
	go func() {
		code, _ := post(t, srv.URL, message(t, 100, "block"))
		done <- code
	}()
	<-p.started
	time.Sleep(400 * time.Millisecond) // well past the read deadline
	close(p.release)
	if code := <-done; code != http.StatusAccepted {
		t.Fatalf("a request served past the read timeout ended with %d", code)
	}
}

func TestUncleanPathsAreRefused(t *testing.T) {
	srv := httptest.NewServer((&Server{}).Handler())
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/v1/vips/..", "/v1/vips/.", "/v1//vips", "/v1/vips/../status", "/v1/%2e%2e/status"} {
		req, _ := http.NewRequest("DELETE", srv.URL+p, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `\"..\" segment`) {
			t.Errorf("DELETE %s: %d %s; want 400 naming the segment", p, resp.StatusCode, b)
		}
	}
}

func TestNumberErrorsSayWhatIsWrong(t *testing.T) {
	type body struct {
		Port  *int   `json:"port"`
		Epoch uint64 `json:"epoch"`
		Small uint16 `json:"small"`
	}
	for in, want := range map[string]string{
		`{"epoch":-1}`:                  `field "epoch" must not be negative, not -1`,
		`{"port":1.5}`:                  `field "port" must be a whole number written in digits (no fraction or exponent), not 1.5`,
		`{"port":1e3}`:                  `not 1e3`,
		`{"port":99999999999999999999}`: `field "port" is out of range: 99999999999999999999 does not fit in -9223372036854775808 to 9223372036854775807`,
		`{"small":70000}`:               `field "small" is out of range: 70000 does not fit in 0 to 65535`,
		`{"port":"80"}`:                 `field "port" must be of JSON type number, not string`,
	} {
		var b body
		err := json.Unmarshal([]byte(in), &b)
		if err == nil {
			t.Fatalf("%s decoded", in)
		}
		if got := jsonError(err, "").Error(); got != want && !strings.Contains(got, want) {
			t.Errorf("%s: %q; want %q", in, got, want)
		}
	}
}

func TestBadAddressInAPeerMessageNamesTheField(t *testing.T) {
	srv, _ := newPeerServer(t, DefaultPeerLimits)
	code, body := post(t, srv.URL, []byte(`{"type":"heartbeat","from":{"name":"dc-9","address":"300.1.1.1","port":1},"to":{"name":"dc-1","address":"127.0.0.1","port":9}}`))
	if code != http.StatusBadRequest || !strings.Contains(body, `"field":"from.address"`) || !strings.Contains(body, `is not an IP address`) {
		t.Fatalf("%d %s; want 400 naming from.address", code, body)
	}
}
