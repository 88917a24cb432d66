package httpapi

import (
	"encoding/json"
	"reflect"
	"testing"
)

// checkFastRead checks one fast reader against encoding/json on data: fast
// reads into a zero T and reports whether it read; a refused read must
// leave the value zero; a read must give what lib (encoding/json, as the
// route reads it) gives, and lib must accept it. It reports whether the
// fast read succeeded.
func checkFastRead[T any](t *testing.T, data []byte, fast func(*T) bool, lib func([]byte) (T, bool)) bool {
	t.Helper()
	var got T
	if !fast(&got) {
		var zero T
		if !reflect.DeepEqual(got, zero) {
			t.Fatalf("%s: a failed fast read changed the value: %#v", data, got)
		}
		return false
	}
	want, ok := lib(data)
	if !ok {
		t.Fatalf("%s: read fast, refused by encoding/json", data)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\nfast    %#v\nlibrary %#v", data, got, want)
	}
	return true
}

// libraryUnmarshal reads data with json.Unmarshal, as the client reads
// answers.
func libraryUnmarshal[T any](data []byte) (T, bool) {
	var v T
	err := json.Unmarshal(data, &v)
	return v, err == nil
}

// benchFastRead runs two sub-benchmarks on data: "library" (lib, the
// encoding/json read) and "fast" (fast into a zero T, which must read it).
func benchFastRead[T any](b *testing.B, data []byte, fast func(*T) bool, lib func([]byte) (T, bool)) {
	b.Run("library", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := lib(data); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var out T
			if !fast(&out) {
				b.Fatal("not read fast")
			}
		}
	})
}
