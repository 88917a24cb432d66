package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"testing"

	"github.com/vipsmart/vipsmart"
)

func TestAcceptsGzip(t *testing.T) {
	for v, want := range map[string]bool{
		"":                       false,
		"gzip":                   true,
		"GZip":                   true,
		"x-gzip":                 true,
		"deflate, gzip;q=1.0":    true,
		"br;q=1, gzip;q=0.5":     true,
		"gzip;q=0":               false,
		"gzip; q=0.000":          false,
		"gzip;q=bad":             false,
		"identity":               false,
		"*":                      false,
		"gzipx":                  false,
		"deflate":                false,
		" gzip ; level=1 ; q=1 ": true,
	} {
		h := http.Header{}
		if v != "" {
			h.Set("Accept-Encoding", v)
		}
		if got := acceptsGzip(h); got != want {
			t.Errorf("Accept-Encoding %q: acceptsGzip = %v, want %v", v, got, want)
		}
	}
}

// bigApplyResult is the answer of an apply of n GIPs placed in 10 DCs.
func bigApplyResult(n int) vipsmart.ApplyResult {
	res := vipsmart.ApplyResult{ResourceVersion: "1-0123456789abcdef", Changes: make([]vipsmart.ObjectChange, n), Added: n, Applied: true, OpID: "op-1", Epoch: 2, NewVersion: "2-0123456789abcdef"}
	for i := range res.Changes {
		g := vipsmart.GIP{Name: fmt.Sprintf("g%05d", i), Address: netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), Mode: vipsmart.ModeFailover, Preempt: true, Partition: "available"}
		for j := range 10 {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: fmt.Sprintf("dc-%d", j+1), Priority: 200 - j})
		}
		res.Changes[i] = vipsmart.ObjectChange{Kind: vipsmart.KindGIP, Name: g.Name, Action: vipsmart.ActionAdd, GIP: &g}
	}
	return res
}

// cannedApply answers every apply with res.
type cannedApply struct {
	vipsmart.Service
	res vipsmart.ApplyResult
}

func (s cannedApply) Apply(context.Context, vipsmart.ApplyRequest) (vipsmart.ApplyResult, error) {
	return s.res, nil
}

// TestApplyAnswerGzip: a large apply answer goes gzip-compressed to a
// client that accepts it (the CLI's Go client does, and reads the same
// result), as is to one that does not; a small answer is never
// compressed.
func TestApplyAnswerGzip(t *testing.T) {
	big, small := bigApplyResult(2000), bigApplyResult(3)
	for _, c := range []struct {
		name   string
		res    vipsmart.ApplyResult
		accept string
		gz     bool
	}{
		{"big-gzip", big, "gzip", true},
		{"big-identity", big, "", false},
		{"big-refused", big, "gzip;q=0, identity", false},
		{"small-gzip", small, "gzip", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			sock := socketServer(t, (&Server{Service: cannedApply{res: c.res}}).Handler())
			want, _ := c.res.AppendJSON(nil, true)
			want = append(want, '\n')
			req, _ := http.NewRequest("POST", "http://vipsmart"+ApplyPath, bytes.NewReader([]byte(`{"vips":[],"gips":[],"dry_run":true}`)))
			req.Header.Set("Content-Type", "application/json")
			if c.accept != "" {
				req.Header.Set("Accept-Encoding", c.accept)
			}
			tr := &http.Transport{DisableCompression: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ContentLength != int64(len(raw)) {
				t.Fatalf("status %d, Content-Length %d for %d bytes", resp.StatusCode, resp.ContentLength, len(raw))
			}
			body := raw
			if got := resp.Header.Get("Content-Encoding"); (got == "gzip") != c.gz {
				t.Fatalf("Content-Encoding %q; want gzip: %v", got, c.gz)
			}
			if c.gz {
				if len(raw)*10 > len(want) {
					t.Fatalf("%d bytes compressed to %d", len(want), len(raw))
				}
				zr, err := gzip.NewReader(bytes.NewReader(raw))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(body, want) {
				t.Fatalf("answer of %d bytes differs from the %d of AppendJSON", len(body), len(want))
			}
			// The vipsmart client (Go's transport: gzip asked for and
			// undone) reads the same result.
			got, err := NewClient(sock).Apply(context.Background(), vipsmart.ApplyRequest{DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.res) {
				t.Fatal("the client read another result")
			}
		})
	}
}

// BenchmarkApplyAnswer: the daemon's answer to an apply of 10,000 GIPs in
// 10 DCs written (JSON, then JSON compressed), and read back by the
// client's decoder (after gunzip for the second).
func BenchmarkApplyAnswer(b *testing.B) {
	res := bigApplyResult(10000)
	req := httptest.NewRequest("POST", ApplyPath, nil)
	for _, accept := range []string{"", "gzip"} {
		name := "json"
		if accept != "" {
			name = "gzip"
			req.Header.Set("Accept-Encoding", accept)
		}
		var sent []byte
		b.Run(name+"/write", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				j, _ := res.AppendJSON(nil, true)
				rec := httptest.NewRecorder()
				writeAnswer(rec, req, append(j, '\n'))
				sent = rec.Body.Bytes()
			}
			b.ReportMetric(float64(len(sent)), "bytes-sent")
		})
		b.Run(name+"/read", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp := &http.Response{Header: http.Header{}, ContentLength: int64(len(sent)), Body: io.NopCloser(bytes.NewReader(sent))}
				if accept != "" {
					resp.Header.Set("Content-Encoding", "gzip")
				}
				data, err := readAnswer(resp)
				if err != nil {
					b.Fatal(err)
				}
				var out vipsmart.ApplyResult
				if !(&applyResultOut{&out}).decodeFast(data) {
					b.Fatal("not read fast")
				}
			}
		})
	}
}

// TestReadAnswerGzip: a compressed answer is read whole whatever its
// trailer claims (a trailer that lies about the size is refused by the
// gzip checks, not trusted for the buffer), and a corrupt one is an error.
func TestReadAnswerGzip(t *testing.T) {
	want := bytes.Repeat([]byte(`{"name":"g00001","address":"10.0.0.1"},`), 20000)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(want)
	zw.Close()
	read := func(b []byte) ([]byte, error) {
		resp := &http.Response{Header: http.Header{"Content-Encoding": {"gzip"}}, ContentLength: int64(len(b)), Body: io.NopCloser(bytes.NewReader(b))}
		return readAnswer(resp)
	}
	if got, err := read(z.Bytes()); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, %v; want %d", len(got), err, len(want))
	}
	for name, mangle := range map[string]func([]byte){
		"size 4 GiB - 1": func(b []byte) { copy(b[len(b)-4:], []byte{0xff, 0xff, 0xff, 0xff}) },
		"size 0":         func(b []byte) { copy(b[len(b)-4:], []byte{0, 0, 0, 0}) },
		"checksum":       func(b []byte) { b[len(b)-8] ^= 1 },
		"truncated":      func(b []byte) {},
	} {
		b := bytes.Clone(z.Bytes())
		mangle(b)
		if name == "truncated" {
			b = b[:len(b)/2]
		}
		if _, err := read(b); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
	// Not compressed: as it came.
	resp := &http.Response{Header: http.Header{}, ContentLength: int64(len(want)), Body: io.NopCloser(bytes.NewReader(want))}
	if got, err := readAnswer(resp); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("identity: %d bytes, %v", len(got), err)
	}
}

// FuzzReadAnswer: whatever a daemon sends as a gzip answer, readAnswer
// gives exactly what the library's gzip reader gives, or an error where
// it errs (its size hint from the trailer changes nothing).
func FuzzReadAnswer(f *testing.F) {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte(`{"resource_version":"1-0123456789abcdef","changes":[]}`))
	zw.Close()
	f.Add(z.Bytes())
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 3, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte(`{"plain":"json"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		resp := &http.Response{Header: http.Header{"Content-Encoding": {"gzip"}}, ContentLength: int64(len(data)), Body: io.NopCloser(bytes.NewReader(data))}
		got, err := readAnswer(resp)
		var want []byte
		zr, werr := gzip.NewReader(bytes.NewReader(data))
		if werr == nil {
			want, werr = io.ReadAll(zr)
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("readAnswer error %v, library %v", err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("readAnswer read %d bytes, the library %d", len(got), len(want))
		}
	})
}
