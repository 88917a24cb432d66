// Package netlink is the announcer that binds addresses on local interfaces
// and tells the segment with gratuitous ARP (IPv4) or unsolicited neighbour
// advertisements (IPv6): the way a VIP moves inside one L2 segment.
//
// It is declarative like every vipsmart.Announcer: Set is handed the full
// desired set; addresses of kind vip and gip-active are bound (/32 or /128,
// IPv6 with IFA_F_NODAD so that they are usable at once), addresses it bound
// that are no longer desired are removed, and gip-standby addresses are
// ignored (only BGP pre-announces a standby). Applying the same set twice
// changes nothing: Set lists the addresses (a read) and makes no change.
// Each Set compares with what the kernel holds, not with memory, so an
// address of ours that someone removed, or that went with its link, is bound
// again on the next Set (or Reconcile).
//
// # Which addresses are ours
//
// The announcer never touches an address it did not add. It marks every
// address it adds, in the kernel, so that the mark survives a crash of the
// daemon:
//
//   - Address protocol (IFA_PROTO, Linux 5.18 and later, both families) is
//     set to [AddrProto] (0x56, 'V'); `ip -d address` shows it as "proto 0x56"
//     and `ip address show proto 0x56` lists our addresses.
//   - IPv4 addresses also carry the label "<ifname>:vs" (IFA_LABEL), which
//     every kernel keeps; `ip address` shows it. A label must start with the
//     interface name and hold at most 15 bytes, so an interface name longer
//     than 12 bytes gets no label (the protocol mark still applies).
//
// An address on the host is ours if it carries either mark, or if this
// process added it during this run (kept in memory, for kernels that drop
// IFA_PROTO). An address of ours that is not desired is removed by the next
// Set, by Reconcile and by Close; so the first Set after a crash cleans what
// the crashed run left. The one gap: on a kernel older than 5.18 an IPv6
// address left by a crashed run carries no mark and is left in place (IPv6
// has no labels); remove it by hand. Run one netlink announcer per network
// namespace: two would take each other's addresses for their own.
//
// A desired address that is already on the interface without our mark (an
// operator put it there) counts as bound and is reported as announced, but
// it stays foreign: it is never removed, and no gratuitous ARP is sent for
// it.
//
// # Gratuitous ARP and unsolicited NA
//
// When Set newly binds an address (a takeover) it sends a burst of
// [Options].GARPCount announcements, [Options].GARPInterval apart: for IPv4
// an ARP request and an ARP reply, both with sender IP = target IP = the
// address, to the broadcast MAC; for IPv6 an unsolicited neighbour
// advertisement to ff02::1 with the override flag and the target link-layer
// address option, sent from the address itself. The first announcement is
// sent before Set returns, the rest in the background, so Set does not block
// for the burst; a burst stops when its address is withdrawn and Close waits
// for the bursts to end.
//
// The kernel sits behind the [OS] interface; [NewLinuxOS] is the real one
// (github.com/vishvananda/netlink, github.com/mdlayher/arp,
// github.com/mdlayher/ndp), and the unit tests use a recording fake.
package netlink
