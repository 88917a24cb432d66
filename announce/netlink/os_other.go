//go:build !linux

package netlink

import (
	"errors"
	"net/netip"
)

var errNotLinux = errors.New("the netlink announcer needs Linux")

// LinuxOS is the real OS; off Linux every call fails.
type LinuxOS struct{}

var _ OS = (*LinuxOS)(nil)

// NewLinuxOS returns an OS whose calls fail off Linux.
func NewLinuxOS() *LinuxOS { return &LinuxOS{} }

// Addrs implements OS.
func (*LinuxOS) Addrs(string) ([]Addr, error) { return nil, errNotLinux }

// HasLink implements OS.
func (*LinuxOS) HasLink(string) (bool, error) { return false, errNotLinux }

// AddAddr implements OS.
func (*LinuxOS) AddAddr(Addr) error { return errNotLinux }

// DelAddr implements OS.
func (*LinuxOS) DelAddr(Addr) error { return errNotLinux }

// Announce implements OS.
func (*LinuxOS) Announce(string, netip.Addr) error { return errNotLinux }
