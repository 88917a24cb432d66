package httpapi

import (
	"net"
	"os/user"
	"strconv"
	"syscall"
)

// peerUser names the user of the process at the other end of a unix
// socket connection: "uid 1000 (alice)".
func peerUser(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return "an unknown user"
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "an unknown user"
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return "an unknown user"
	}
	uid := strconv.FormatUint(uint64(cred.Uid), 10)
	name := "uid " + uid
	if u, err := user.LookupId(uid); err == nil {
		name += " (" + u.Username + ")"
	}
	return name + " pid " + strconv.Itoa(int(cred.Pid))
}
