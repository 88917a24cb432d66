package main

import (
	"io"

	"github.com/vipsmart/vipsmart"
)

// printApplyResult writes res as printJSON would (indented, <, > and &
// as they are), from its hand-written encoding: the answer of an apply of
// 10,000 GIPs is megabytes, which the library's reflection and indenting
// took most of a second of CPU to write. applyjson_test.go compares the
// bytes with printJSON's.
func printApplyResult(w io.Writer, res *vipsmart.ApplyResult) error {
	compact, err := res.AppendJSON(nil, false)
	if err != nil {
		return err
	}
	return indentCompact(w, compact)
}

// bigOutput is the size of output from which the CLI widens a pipe it
// writes to (to as much, if the kernel allows).
const bigOutput = 1 << 20

// indentCompact writes src, compact JSON as encoding/json writes it (no
// space outside strings), indented as json.Indent(dst, src, "", "  ")
// would, and a newline (as an Encoder ends a value), 64 KiB at a time
// (or as much as the pipe w is holds, see widenPipe).
func indentCompact(w io.Writer, src []byte) error {
	chunk := 64 << 10
	if len(src) > bigOutput {
		// Megabytes for a pipe (a CI job's log, jq): a wider pipe
		// wakes its reader 16 times less often (pipe_linux.go).
		if n := widenPipe(w, bigOutput); n > chunk {
			chunk = n
		}
	}
	dst := make([]byte, 0, chunk+16<<10)
	depth := 0
	newline := func() {
		dst = append(dst, '\n')
		for range depth {
			dst = append(dst, ' ', ' ')
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case '"':
			// A string, copied whole: its end is the next quote not
			// escaped by a backslash.
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			dst = append(dst, src[i:min(j+1, len(src))]...)
			i = j
		case '{', '[':
			if i+1 < len(src) && (src[i+1] == '}' || src[i+1] == ']') {
				dst = append(dst, c, src[i+1])
				i++
				continue
			}
			dst = append(dst, c)
			depth++
			newline()
		case '}', ']':
			depth--
			newline()
			dst = append(dst, c)
		case ',':
			dst = append(dst, c)
			newline()
		case ':':
			dst = append(dst, ':', ' ')
		default:
			dst = append(dst, c)
		}
		if len(dst) >= chunk {
			if _, err := w.Write(dst); err != nil {
				return err
			}
			dst = dst[:0]
		}
	}
	_, err := w.Write(append(dst, '\n'))
	return err
}
