package manifest

import (
	"bytes"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// TestReadJSONIsReadJSONEach: the one-pass read of a JSON file gives the
// objects, places and errors of the object-by-object read, over layouts,
// escaped, repeated and differently cased keys, nulls and bad objects.
func TestReadJSONIsReadJSONEach(t *testing.T) {
	gip := `{"kind": "GIP", "name": "g%d", "address": "192.0.2.%d", "placements": [{"dc": "dc-1", "priority": 100}, {"dc": "dc-2", "priority": 50, "vip": "web"}]}`
	vip := `{"kind":"VIP","name":"v%d","address":"198.51.100.%d","check":{"url":"tcp://127.0.0.1:1","interval":"1s"},"nodes":["n1:10"],"preempt":true}`
	docs := []string{
		fmt.Sprintf(gip, 1, 1),
		"[" + fmt.Sprintf(gip, 1, 1) + "," + fmt.Sprintf(vip, 2, 2) + "]",
		"\n\n  [\n  " + fmt.Sprintf(gip, 1, 1) + " ,\n\n" + fmt.Sprintf(gip, 2, 2) + "\n]\n",
		"[]", " [ ] ", "{}", "[{}]", "[null]", "null", "[1]", `["x"]`, "[[]]", "[" + fmt.Sprintf(gip, 1, 1) + "]]",
		`[{"kind":"GIP","name":"g","address":"192.0.2.1","mode":"anycast","placements":[{"dc":"dc-1","priority":1}],"partition":"consistent","preempt":false}]`,
		`[{"ki\u006ed":"GIP","name":"g","address":"192.0.2.1"}]`,
		`[{"KIND":"GIP","name":"g","address":"192.0.2.1"}]`,
		`[{"kind":"GIP","kind":"VIP","name":"g","address":"192.0.2.1"}]`,
		`[{"kind":"VIP","name":"v","address":"192.0.2.1","mode":"anycast"}]`,
		`[{"kind":"GIP","name":"g","address":"192.0.2.1","mdoe":"anycast"}]`,
		`[{"kind":"GIP","name":"g","address":"192.0.2.1","placements":[{"dc":"dc-1","prio":1}]}]`,
		`[{"kind":"GIP","name":"g","address":"192.0.2.1","preempt":"yes"}]`,
		`[{"kind":"GIP","name":"g \"q\" {[,:]}","address":"192.0.2.1"}]`,
		`[{"kind":"GIP","name":"g","address":"192.0.2.1"},{"kind":"GIP","name":"g","address":"192.0.2.2"}]`,
		`[{"kind":"GIP","name":"g","address":"192.0.2.1","placements":[{"dc":"dc-1","priority":0}]}]`,
		`[{"kind":"VIP","name":"v","address":"192.0.2.1","check":{"url":"tcp://127.0.0.1:1","interval":"soon"}}]`,
		`[{"kind":"VIP","name":"v","address":"192.0.2.1","check":{"url":"tcp://127.0.0.1:1","tries":3}}]`,
		"[" + fmt.Sprintf(gip, 1, 1) + "] x", "[" + fmt.Sprintf(gip, 1, 1) + "] {}", "[" + fmt.Sprintf(gip, 1, 1),
		`[{"kind":"GIP","name":"g","address":"192.0.2.1"},]`,
		"[\n" + fmt.Sprintf(vip, 1, 1) + ",\n\n\n" + fmt.Sprintf(gip, 3, 3) + ",\n" + fmt.Sprintf(gip, 4, 4)[:40] + "\"bad\":1}\n]",
	}
	fastOnes := 0
	for i, d := range docs {
		if done, _ := (&Set{origin: map[string]string{}}).readFast("f.json", []byte(d)); done {
			fastOnes++
		}
		checkReadJSON(t, fmt.Sprintf("document %d", i), []byte(d))
	}
	if fastOnes < 10 {
		t.Fatalf("only %d of %d documents were read by readFast", fastOnes, len(docs))
	}
}

// checkReadJSON fails unless readJSON (readFast, or one pass of
// encoding/json) and readJSONEach read d alike.
func checkReadJSON(t *testing.T, what string, d []byte) {
	t.Helper()
	fast := &Set{origin: map[string]string{}}
	slow := &Set{origin: map[string]string{}}
	errFast := fast.readJSON("f.json", d)
	errSlow := slow.readJSONEach("f.json", d)
	if fmt.Sprint(errFast) != fmt.Sprint(errSlow) {
		t.Fatalf("%s %q:\n one pass: %v\n each:     %v", what, d, errFast, errSlow)
	}
	if errFast == nil && !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%s %q:\n one pass: %+v\n each:     %+v", what, d, fast, slow)
	}
}

// FuzzReadJSON: a JSON file is read alike by readJSON and object by
// object (the same objects, or the same message).
func FuzzReadJSON(f *testing.F) {
	f.Add([]byte(`[{"kind":"GIP","name":"g","address":"192.0.2.1","placements":[{"dc":"dc-1","priority":1}],"preempt":null}]`))
	f.Add([]byte(`{"kind":"VIP","name":"v","address":"192.0.2.1","check":{"url":"tcp://127.0.0.1:1"},"nodes":["a:1"]}`))
	f.Add([]byte("[\n{\"kind\":\"GIP\",\"name\":\"g\",\"address\":\"192.0.2.1\"},\n{\"kind\":\"GIP\",\"name\":\"h\",\"address\":\"192.0.2.2\",\"mode\":\"anycast\"}]"))
	f.Fuzz(func(t *testing.T, d []byte) {
		if bytes.Contains(d, []byte("\n")) && bytes.Count(d, []byte("{")) > 1 {
			// readJSONEach names a repeated object at its first copy's
			// line (TestReadJSONTwiceNamesBothLines); compare without lines.
			d = bytes.ReplaceAll(d, []byte("\n"), []byte(" "))
		}
		checkReadJSON(t, "input", d)
	})
}

// TestReadJSONTwiceNamesBothLines: an object written twice, byte for
// byte, is named at its own line (the object-by-object read found the
// first copy's line for the second).
func TestReadJSONTwiceNamesBothLines(t *testing.T) {
	g := `{"kind": "GIP", "name": "g1", "address": "192.0.2.1"}`
	_, err := Read("f.json", []byte("[\n"+g+",\n"+g+"\n]"))
	if want := "f.json: document 2 (line 3), GIP g1: field \"name\": GIP g1 is declared twice (first in f.json: document 1 (line 2), GIP g1)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// bigJSON is what BenchmarkApply applies: n GIPs, each placed in dcs DCs.
func bigJSON(tb testing.TB, n, dcs int) []byte {
	gips := make([]vipsmart.GIP, n)
	for i := range gips {
		g := vipsmart.GIP{Name: fmt.Sprintf("g%05d", i), Address: netip.AddrFrom4([4]byte{10, byte(100 + i>>16), byte(i >> 8), byte(i)}), Mode: vipsmart.ModeFailover, Preempt: true}
		for j := range dcs {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: fmt.Sprintf("dc-%d", j+1), Priority: 200 - j})
		}
		gips[i] = g
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, Objects(nil, gips)); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadJSONBig(t *testing.T) {
	b := bigJSON(t, 300, 10)
	fast := &Set{origin: map[string]string{}}
	slow := &Set{origin: map[string]string{}}
	if done, err := fast.readFast("gips.json", b); !done || err != nil {
		t.Fatalf("the file BenchmarkApply applies is not read by readFast: %v", err)
	}
	if err := slow.readJSONEach("gips.json", b); err != nil {
		t.Fatal(err)
	}
	if len(fast.GIPs) != 300 || !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%d GIPs read in one pass, not those read one by one", len(fast.GIPs))
	}
}

// BenchmarkReadJSON reads the file of 10,000 GIPs in 10 DCs that
// BenchmarkApply applies (7.7 MiB), in one pass and object by object (as
// before).
func BenchmarkReadJSON(b *testing.B) {
	data := bigJSON(b, 10000, 10)
	for _, c := range []struct {
		name string
		read func(*Set, string, []byte) error
	}{{"readjson", (*Set).readJSON}, {"each", (*Set).readJSONEach}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := c.read(&Set{origin: map[string]string{}}, "gips.json", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestReadJSONAllocs: reading a file of GIPs allocates what the objects
// need, not a copy of every object and key list per doubling of the
// lists (24 allocations per object before they were sized once, 12
// after).
func TestReadJSONAllocs(t *testing.T) {
	const n = 2000
	data := bigJSON(t, n, 10)
	allocs := testing.AllocsPerRun(3, func() {
		if err := (&Set{origin: map[string]string{}}).readJSON("gips.json", data); err != nil {
			t.Fatal(err)
		}
	})
	if per := allocs / n; per > 16 {
		t.Fatalf("%.1f allocations per object; want at most 16", per)
	}
}
