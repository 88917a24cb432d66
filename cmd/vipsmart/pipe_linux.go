package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// widenPipe asks the kernel for a buffer of size bytes (F_SETPIPE_SZ) when
// w is a pipe, and returns the pipe's buffer size after it (0 when w is no
// pipe). A pipe holds 64 KiB by default, so megabytes of output (the
// answer of an apply of 10,000 GIPs is 10 MiB with -o json) wake the
// reader, and then the writer, once per 64 KiB; on a busy host each
// wake-up waits for a CPU, and the output takes seconds. A refusal (size
// above /proc/sys/fs/pipe-max-size, 1 MiB by default, or the user's pipe
// pages used up) leaves the pipe as it was. The kernel takes a pipe's
// pages as data is written and frees them as it is read: a wider pipe
// costs memory only while its reader lags.
func widenPipe(w io.Writer, size int) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		return 0
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	got := 0
	_ = rc.Control(func(fd uintptr) {
		cur, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
		if err != nil {
			return
		}
		got = cur
		if cur < size {
			if n, err := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size); err == nil {
				got = n
			}
		}
	})
	return got
}
