package httpapi

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// gzipFrom is the size from which an answer is sent gzip-compressed to a
// client that accepts it: the answer of an apply of 10,000 GIP changes is
// 4.5 MiB of JSON, about 120 KiB compressed. Over the local socket (208
// KiB of send buffer) the JSON took some 20 alternate wake-ups of the
// daemon and the CLI, each waiting for a CPU on a host whose DCs are busy
// with the commit; compressed, it is written in one go.
const gzipFrom = 256 << 10

// acceptsGzip reports whether the request's Accept-Encoding names gzip
// (or x-gzip) with a quality above zero (RFC 9110, 12.5.3). Go's
// http.Client sends "gzip" and decompresses the answer itself, so every
// vipsmart CLI, old or new, gets it; curl does only with --compressed.
func acceptsGzip(h http.Header) bool {
	for _, v := range h.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.TrimSpace(coding)
			if !strings.EqualFold(coding, "gzip") && !strings.EqualFold(coding, "x-gzip") {
				continue
			}
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil {
						f = 0
					}
					q = f
				}
			}
			if q > 0 {
				return true
			}
		}
	}
	return false
}

// writeAnswer writes the JSON answer b with status 200: gzip-compressed
// (fastest level) when it is at least gzipFrom bytes and r accepts gzip,
// as is otherwise; with its Content-Length either way.
func writeAnswer(w http.ResponseWriter, r *http.Request, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if len(b) >= gzipFrom {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header) {
			var z bytes.Buffer
			z.Grow(len(b)/16 + 4096)
			zw, err := gzip.NewWriterLevel(&z, gzip.BestSpeed)
			if err == nil {
				_, err = zw.Write(b)
			}
			if err == nil {
				err = zw.Close()
			}
			if err == nil {
				b = z.Bytes()
				h.Set("Content-Encoding", "gzip")
			}
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// readAnswer reads the whole body of resp into one buffer sized from its
// Content-Length, and undoes a gzip Content-Encoding (which the client
// asked for, so Go's transport leaves it) into one buffer sized from the
// gzip trailer: never more than deflate can expand (1,032 times) nor 1
// GiB, whatever the trailer says; beyond, the buffer grows as it reads.
// A corrupt stream (checksum, length) is an error.
func readAnswer(resp *http.Response) ([]byte, error) {
	buf := &bytes.Buffer{}
	if resp.ContentLength > 0 && resp.ContentLength < 1<<30 {
		buf.Grow(int(resp.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if !strings.EqualFold(strings.TrimSpace(resp.Header.Get("Content-Encoding")), "gzip") {
		return buf.Bytes(), nil
	}
	z := buf.Bytes()
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, fmt.Errorf("gzip answer: %w", err)
	}
	out := &bytes.Buffer{}
	if len(z) >= 18 { // header and trailer
		if n := int64(binary.LittleEndian.Uint32(z[len(z)-4:])); n < 1<<30 && n <= int64(len(z))*1032 {
			out.Grow(int(n) + bytes.MinRead)
		}
	}
	if _, err := out.ReadFrom(zr); err != nil {
		return nil, fmt.Errorf("gzip answer: %w", err)
	}
	return out.Bytes(), nil
}
