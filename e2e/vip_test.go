package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

type vipInfo struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Interface string `json:"interface"`
	State     string `json:"state"`
	Created   string `json:"created"`
	Check     *struct {
		URL      string `json:"url"`
		Interval string `json:"interval"`
		Timeout  string `json:"timeout"`
		Rise     int    `json:"rise"`
		Fall     int    `json:"fall"`
	} `json:"check"`
}

func TestVIPLifecycleThroughCLI(t *testing.T) {
	d := startDaemon(t, "dc-1")
	s := d.server()

	var st map[string]any
	cliJSON(t, s, &st, "status")
	if st["name"] != "dc-1" || st["status"] != "standalone" || st["federation"] != nil {
		t.Fatalf("status of a fresh daemon = %v; want name dc-1, status standalone, federation null", st)
	}
	if !strings.Contains(mustCLI(t, s, "status"), "standalone") {
		t.Fatal("table status does not say standalone")
	}

	mustCLI(t, s, "vip", "add", "web", "192.0.2.10", "--interface", "eth0", "--check", "tcp://127.0.0.1:1", "--check-rise", "3")
	mustCLI(t, s, "vip", "add", "api", "2001:db8::10")
	var vs []vipInfo
	cliJSON(t, s, &vs, "vip", "list")
	if len(vs) != 2 || vs[0].Name != "api" || vs[1].Name != "web" {
		t.Fatalf("vip list = %+v; want api and web, sorted", vs)
	}
	if vs[0].Address != "2001:db8::10" || vs[0].State != "up" || vs[0].Check != nil {
		t.Fatalf("api = %+v", vs[0])
	}
	w := vs[1]
	if w.Address != "192.0.2.10" || w.Interface != "eth0" || w.Check == nil || w.Check.URL != "tcp://127.0.0.1:1" || w.Check.Rise != 3 || w.Check.Fall != 2 || w.Check.Interval != "1s" {
		t.Fatalf("web = %+v (check %+v)", w, w.Check)
	}
	table := mustCLI(t, s, "vip", "list")
	if !strings.Contains(table, "NAME") || !strings.Contains(table, "192.0.2.10") || !strings.Contains(table, "2001:db8::10") {
		t.Fatalf("vip list table:\n%s", table)
	}
	var one vipInfo
	cliJSON(t, s, &one, "vip", "show", "web")
	if !reflect.DeepEqual(one, w) {
		t.Fatalf("vip show web = %+v; want %+v", one, w)
	}
	mustCLI(t, s, "vip", "remove", "web")
	cliJSON(t, s, &vs, "vip", "list")
	if len(vs) != 1 || vs[0].Name != "api" {
		t.Fatalf("after remove, vip list = %+v", vs)
	}
	if r := cli(t, s, "vip", "show", "web"); r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("show of a removed VIP: %+v", r)
	}
	var dcs, gips []any
	cliJSON(t, s, &dcs, "dc", "list")
	cliJSON(t, s, &gips, "gip", "list")
	if len(dcs) != 0 || len(gips) != 0 {
		t.Fatalf("standalone DC lists DCs %v and GIPs %v; want none", dcs, gips)
	}
	if err := d.stop(); err != nil {
		t.Fatalf("clean stop on SIGTERM: %v", err)
	}
}

// TestKill9KeepsAcknowledgedWrites adds N VIPs, each acknowledged by the CLI,
// kills the daemon with SIGKILL and restarts it on the same data directory:
// every acknowledged VIP must be there, exactly as it was.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	const n = 40
	d := startDaemon(t, "dc-1")
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("198.51.100.%d", i+1)
		if i%2 == 1 {
			addr = fmt.Sprintf("2001:db8::%x", i+1)
		}
		mustCLI(t, d.server(), "vip", "add", fmt.Sprintf("v%02d", i), addr)
	}
	var before []vipInfo
	cliJSON(t, d.server(), &before, "vip", "list")
	d.kill()
	d.start()
	var after []vipInfo
	cliJSON(t, d.server(), &after, "vip", "list")
	if len(after) != n {
		t.Fatalf("after kill -9 and restart: %d VIPs; want %d", len(after), n)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("VIPs changed across kill -9:\nbefore %+v\nafter  %+v", before, after)
	}
}

// snapshot is everything an operator can read; bad input must not change it.
func snapshot(t testing.TB, d *daemon) string {
	t.Helper()
	server := d.server()
	var b strings.Builder
	for _, p := range []string{"/v1/vips", "/v1/dcs", "/v1/gips", "/v1/events"} {
		resp, err := d.http().Get(d.url(p))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b.Write(body)
	}
	var st map[string]any
	cliJSON(t, server, &st, "status")
	delete(st, "time_left")
	sb, _ := json.Marshal(st)
	b.Write(sb)
	return b.String()
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	d := startDaemon(t, "dc-1")
	s := d.server()
	mustCLI(t, s, "vip", "add", "existing", "192.0.2.1")

	cliCases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"vip", "add", "Web", "192.0.2.2"}, 2, "upper-case"},
		{[]string{"vip", "add", "web-", "192.0.2.2"}, 2, "starts or ends with '-'"},
		{[]string{"vip", "add", "w_b", "192.0.2.2"}, 2, "may hold only"},
		{[]string{"vip", "add", strings.Repeat("a", 64), "192.0.2.2"}, 2, "at most 63"},
		{[]string{"vip", "add", "web", "192.0.2.2/32"}, 2, "prefix length"},
		{[]string{"vip", "add", "web", "0.0.0.0"}, 2, "unspecified"},
		{[]string{"vip", "add", "web", "::"}, 2, "unspecified"},
		{[]string{"vip", "add", "web", "224.0.0.5"}, 2, "multicast"},
		{[]string{"vip", "add", "web", "ff02::1"}, 2, "multicast"},
		{[]string{"vip", "add", "web", "255.255.255.255"}, 2, "broadcast"},
		{[]string{"vip", "add", "web", "256.1.1.1"}, 2, "not an IP address"},
		{[]string{"vip", "add", "web", "fe80::1%eth0"}, 2, "zone"},
		{[]string{"vip", "add", "web"}, 2, "takes 2 argument"},
		{[]string{"vip", "add", "web", "192.0.2.2", "extra"}, 2, "takes 2 argument"},
		{[]string{"vip", "add", "existing", "192.0.2.99"}, 1, "already in use"},
		{[]string{"vip", "add", "other", "192.0.2.1"}, 1, "already used by VIP existing"},
		{[]string{"vip", "add", "web", "192.0.2.2", "--check", "udp://10.0.0.1:53"}, 2, "scheme"},
		{[]string{"vip", "add", "web", "192.0.2.2", "--check", "tcp://10.0.0.1"}, 2, "no port"},
		{[]string{"vip", "add", "web", "192.0.2.2", "--check", "tcp://10.0.0.1:70000"}, 2, "out of range"},
		{[]string{"vip", "add", "web", "192.0.2.2", "--check", "tcp://10.0.0.1:80", "--check-rise", "-1"}, 2, "--check-rise -1 is out of range"},
		{[]string{"vip", "add", "web", "192.0.2.2", "--check", "tcp://10.0.0.1:80", "--check-interval", "1s", "--check-timeout", "2s"}, 2, "shorter than"},
		{[]string{"vip", "add", "web", "192.0.2.2", "--check-interval", "1s"}, 2, "need --check"},
		{[]string{"vip", "add", "web", "192.0.2.2", "--interface", "much-too-long-name0"}, 2, "at most 15"},
		{[]string{"vip", "add", "web", "192.0.2.2", "--bogus"}, 2, "unknown flag"},
		{[]string{"vip", "show", "NOPE"}, 2, "upper-case"},
		{[]string{"vip", "show", "missing"}, 1, "does not exist"},
		{[]string{"vip", "remove", "missing"}, 1, "does not exist"},
		{[]string{"dc", "add", "dc-2,127.0.0.1,70000"}, 2, "out of range"},
		{[]string{"dc", "add", "dc-2"}, 2, "not NAME,IP,PORT"},
		{[]string{"dc", "add", "dc_2,127.0.0.1,9610"}, 2, "may hold only"},
		{[]string{"dc", "add", "dc-2,localhost,9610"}, 2, "not an IP address"},
		{[]string{"dc", "add", "dc-2,127.0.0.1,9610"}, 2, "needs a join token made on dc-2"},
		{[]string{"dc", "add", "dc-2,127.0.0.1,9610", "--token", "vsjoin1_AAAA"}, 2, "truncated"},
		{[]string{"dc", "remove", "Dc-2"}, 2, "upper-case"},
		{[]string{"status", "--output", "yaml"}, 2, "unknown"},
		{[]string{"status", "extra"}, 2, "takes 0 argument"},
		{[]string{"events", "--limit", "0"}, 2, "--limit 0 is out of range"},
		// Issue 15, finding 7.
		{[]string{"vip", "add", "web", " 192.0.2.2"}, 2, `ADDRESS " 192.0.2.2" has white space before or after the address: remove it`},
		{[]string{"vip", "add", "web", "127.0.0.1"}, 2, "ADDRESS 127.0.0.1 is a loopback address, which no other host can reach"},
		{[]string{"vip", "add", "web", "::1"}, 2, "ADDRESS ::1 is a loopback address"},
		{[]string{"gip", "add", "g", "127.0.0.2", "--placement", "dc-1:100"}, 2, "ADDRESS 127.0.0.2 is a loopback address"},
		{[]string{"dc", "add", "dc-9,127.0.0.1,+19109"}, 2, `port "+19109" is not a number: give a port between 1 and 65535, in digits only`},
		{[]string{"vip", "add", "wéb", "192.0.2.2"}, 2, `NAME "wéb" has the character 'é' (U+00E9), which is not ASCII`},
		{[]string{"status", "--timeout", "48h"}, 2, "--timeout is 48h0m0s, out of range: give a duration from 100ms to 24h0m0s"},
	}
	for _, c := range cliCases {
		t.Run("cli "+strings.Join(c.args, " "), func(t *testing.T) {
			before := snapshot(t, d)
			r := cli(t, s, c.args...)
			if r.code != c.code {
				t.Errorf("exit status %d; want %d (stderr: %s)", r.code, c.code, r.stderr)
			}
			if !strings.Contains(r.stderr, c.msg) {
				t.Errorf("stderr %q does not say %q", r.stderr, c.msg)
			}
			if after := snapshot(t, d); after != before {
				t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	apiCases := []struct {
		name, method, path, ctype, body string
		status                          int
		msg                             string
	}{
		{"unknown field", "POST", "/v1/vips", "application/json", `{"name":"web","address":"192.0.2.2","colour":"red"}`, 400, `unknown field "colour"`},
		{"read-only field", "POST", "/v1/vips", "application/json", `{"name":"web","address":"192.0.2.2","state":"up"}`, 400, `unknown field "state"`},
		{"unknown nested field", "POST", "/v1/vips", "application/json", `{"name":"web","address":"192.0.2.2","check":{"url":"tcp://a:1","retries":3}}`, 400, `unknown field "retries"`},
		{"not JSON", "POST", "/v1/vips", "application/json", `{name:`, 400, "not valid JSON"},
		{"trailing data", "POST", "/v1/vips", "application/json", `{"name":"web","address":"192.0.2.2"}{"x":1}`, 400, "after the JSON"},
		{"wrong type", "POST", "/v1/vips", "application/json", `{"name":5,"address":"192.0.2.2"}`, 400, `"name" must be of JSON type string`},
		{"empty body", "POST", "/v1/vips", "application/json", ``, 400, "empty"},
		{"oversize body", "POST", "/v1/vips", "application/json", `{"name":"web","address":"192.0.2.2","interface":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "larger than"},
		{"wrong content type", "POST", "/v1/vips", "text/plain", `{"name":"web","address":"192.0.2.2"}`, 415, "content type"},
		{"missing address", "POST", "/v1/vips", "application/json", `{"name":"web"}`, 400, "address is empty"},
		{"bad address", "POST", "/v1/vips", "application/json", `{"name":"web","address":"300.1.1.1"}`, 400, "not an IP address"},
		{"duplicate address", "POST", "/v1/vips", "application/json", `{"name":"web","address":"192.0.2.1"}`, 409, "already used by VIP existing"},
		{"duplicate name", "POST", "/v1/vips", "application/json", `{"name":"existing","address":"192.0.2.3"}`, 409, "already in use"},
		{"bad check", "POST", "/v1/vips", "application/json", `{"name":"web","address":"192.0.2.2","check":{"url":"tcp://a:1","interval":"soon"}}`, 400, "duration"},
		{"PUT on collection", "PUT", "/v1/vips", "application/json", `{}`, 405, "not allowed"},
		{"DELETE on collection", "DELETE", "/v1/vips", "", ``, 405, "not allowed"},
		{"POST on status", "POST", "/v1/status", "application/json", `{}`, 405, "not allowed"},
		{"bad name in path", "DELETE", "/v1/vips/Bad_Name", "", ``, 400, "name"},
		{"dc port zero", "POST", "/v1/dcs", "application/json", `{"name":"dc-2","address":"127.0.0.1","port":0}`, 400, "port"},
		{"dc port out of range", "POST", "/v1/dcs", "application/json", `{"name":"dc-2","address":"127.0.0.1","port":70000}`, 400, "out of range"},
		{"dc unknown field", "POST", "/v1/dcs", "application/json", `{"name":"dc-2","address":"127.0.0.1","spec":"x"}`, 400, `unknown field "spec"`},
		{"dc multicast", "POST", "/v1/dcs", "application/json", `{"name":"dc-2","address":"ff02::1"}`, 400, "multicast"},
		{"force not bool", "DELETE", "/v1/dcs/dc-2?force=maybe", "", ``, 400, "not a boolean"},
		{"events bad after", "GET", "/v1/events?after=-1", "", ``, 400, "sequence number"},
		{"events bad limit", "GET", "/v1/events?limit=0", "", ``, 400, "limit"},
		{"no such endpoint", "GET", "/v1/nope", "", ``, 404, "no such endpoint"},
		{"no peer route on the operator API", "POST", "/v1/peer/message", "application/json", `{"type":"heartbeat"}`, 404, "no such endpoint"},
		// Issue 15, finding 7.
		{"address with a leading space", "POST", "/v1/vips", "application/json", `{"name":"web","address":" 192.0.2.2"}`, 400, "has white space before or after the address: remove it"},
		{"loopback VIP", "POST", "/v1/vips", "application/json", `{"name":"web","address":"127.0.0.1"}`, 400, "is a loopback address"},
		{"non-ASCII name", "POST", "/v1/vips", "application/json", `{"name":"wéb","address":"192.0.2.2"}`, 400, "'é' (U+00E9), which is not ASCII"},
		{"fractional number", "POST", "/v1/dcs", "application/json", `{"name":"dc-2","address":"127.0.0.1","port":1.5}`, 400, `field "port" must be a whole number written in digits (no fraction or exponent), not 1.5`},
		{"dot-dot path", "DELETE", "/v1/vips/..", "", ``, 400, `has an empty, "." or ".." segment`},
		{"dot path", "DELETE", "/v1/vips/.", "", ``, 400, `".." segment`},
	}
	for _, c := range apiCases {
		t.Run("api "+c.name, func(t *testing.T) {
			before := snapshot(t, d)
			req, err := http.NewRequest(c.method, d.url(c.path), strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := d.http().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("HTTP status %d; want %d (body %s)", resp.StatusCode, c.status, body)
			}
			var eb struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Message == "" || eb.Error.Code == "" {
				t.Errorf("error body is not {\"error\":{\"code\",\"message\"}}: %s", body)
			}
			if !strings.Contains(eb.Error.Message, c.msg) {
				t.Errorf("message %q does not say %q", eb.Error.Message, c.msg)
			}
			if after := snapshot(t, d); after != before {
				t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}
