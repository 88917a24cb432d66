package httpapi

import (
	"net/netip"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/internal/jsonfast"
)

// The federation's messages (heartbeats, locks, commits and their
// answers: hundreds a second on a DC of ten) read without reflection when
// they can. encoding/json spent about 60 µs of CPU on each on a loaded
// 2-core host (its reflection, and the growth of the handler goroutine's
// stack it causes), as much as a tenth of a member's CPU (BENCHMARKS.md,
// issue 9, msg9).
//
// Invariant (as for the apply body, applyfast.go): decodeMessageFast
// either reports false, leaving m as it was, or has read exactly the
// Message encoding/json (unknown fields refused) reads from the same
// bytes. It reads only the subset of jsonfast (plain ASCII strings without
// escapes, plain integers, each key once and spelt exactly), and leaves
// to encoding/json what is rare or large: a message's state, its doubts, a
// change's batch, null anywhere. The message is then validated as any
// other (federation.Message.Validate, by the receiver): this only changes
// how fast a message is read, never what is accepted.
// TestMessageFastIsTheLibrarys and FuzzPeerMessage compare the two.

// messageJSON is a federation message as decode reads it: the same
// struct (encoding/json reads it field for field as a federation.Message),
// with decodeFast (fastDecoder).
type messageJSON federation.Message

func (m *messageJSON) decodeFast(data []byte) bool {
	return decodeMessageFast(data, (*federation.Message)(m))
}

// decodeMessageFast reads data into m (see above); false: nothing read.
func decodeMessageFast(data []byte, m *federation.Message) bool {
	var out federation.Message
	r := jsonfast.New(data)
	var seen jsonfast.Fields
	r.Object(func(k []byte) {
		switch string(k) {
		case "type":
			seen.Once(r, 0)
			out.Type = federation.MsgType(r.String())
		case "from":
			seen.Once(r, 1)
			readDC(r, &out.From)
		case "to":
			seen.Once(r, 2)
			readDC(r, &out.To)
		case "fed_id":
			seen.Once(r, 3)
			out.FedID = r.String()
		case "epoch":
			seen.Once(r, 4)
			out.Epoch = r.Uint64()
		case "op_id":
			seen.Once(r, 5)
			out.OpID = r.String()
		case "status":
			seen.Once(r, 6)
			out.Status = vipsmart.Status(r.String())
		case "to_epoch":
			seen.Once(r, 7)
			out.ToEpoch = r.Uint64()
		case "change":
			seen.Once(r, 8)
			out.Change = new(federation.Change)
			readMsgChange(r, out.Change)
		case "last":
			seen.Once(r, 9)
			out.Last = readDecision(r)
		case "founding":
			seen.Once(r, 10)
			out.Founding = readDecision(r)
		case "sender_epoch":
			seen.Once(r, 11)
			out.SenderEpoch = r.Uint64()
		case "sender_fed":
			seen.Once(r, 12)
			out.SenderFed = r.String()
		case "report":
			seen.Once(r, 13)
			out.Report = readReport(r)
		case "quorum":
			seen.Once(r, 14)
			out.Quorum = readQuorum(r)
		case "seq":
			seen.Once(r, 15)
			out.Seq = r.Uint64()
		case "running":
			seen.Once(r, 16)
			out.Running = r.Bool()
		case "committed":
			seen.Once(r, 17)
			out.Committed = r.Uint64()
		case "known_seq":
			seen.Once(r, 18)
			out.KnownSeq = r.Uint64()
		case "token":
			seen.Once(r, 19)
			out.Token = r.String()
		case "members":
			seen.Once(r, 20)
			out.Members = readDCs(r)
		case "ok":
			seen.Once(r, 21)
			out.OK = r.Bool()
		case "code":
			seen.Once(r, 22)
			out.Code = vipsmart.ErrorCode(r.String())
		case "reason":
			seen.Once(r, 23)
			out.Reason = r.String()
		default: // state, doubts, or not a field: encoding/json decides
			r.Fail()
		}
	})
	if !r.End() {
		return false
	}
	*m = out
	return true
}

func readDC(r *jsonfast.Reader, d *vipsmart.DC) {
	var seen jsonfast.Fields
	r.Object(func(k []byte) {
		switch string(k) {
		case "name":
			seen.Once(r, 0)
			d.Name = r.String()
		case "address":
			seen.Once(r, 1)
			d.Address = readAddr(r)
		case "port":
			seen.Once(r, 2)
			d.Port = readUint16(r)
		case "identity":
			seen.Once(r, 3)
			d.Identity = r.String()
		case "witness":
			seen.Once(r, 4)
			d.Witness = r.Bool()
		case "nodes":
			seen.Once(r, 5)
			d.Nodes = readAddrPorts(r)
		default:
			r.Fail()
		}
	})
}

func readDCs(r *jsonfast.Reader) []vipsmart.DC {
	ds := make([]vipsmart.DC, 0, 12)
	r.Array(func() {
		ds = append(ds, vipsmart.DC{})
		readDC(r, &ds[len(ds)-1])
	})
	return ds
}

// readAddr reads an address as netip.Addr.UnmarshalText does ("" is the
// zero Addr); anything it refuses fails r.
func readAddr(r *jsonfast.Reader) netip.Addr {
	s := r.String()
	if !r.OK() || s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		r.Fail()
	}
	return a
}

func readAddrPorts(r *jsonfast.Reader) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, 2)
	r.Array(func() {
		s := r.String()
		var ap netip.AddrPort
		if r.OK() && s != "" {
			var err error
			if ap, err = netip.ParseAddrPort(s); err != nil {
				r.Fail()
			}
		}
		out = append(out, ap)
	})
	return out
}

// readUint16 reads a plain integer that fits a uint16 (encoding/json
// refuses one that overflows).
func readUint16(r *jsonfast.Reader) uint16 {
	n := r.Uint64()
	if n > 1<<16-1 {
		r.Fail()
	}
	return uint16(n)
}

func readStrings(r *jsonfast.Reader) []string {
	out := make([]string, 0, 4)
	r.Array(func() { out = append(out, r.String()) })
	return out
}

func readMsgChange(r *jsonfast.Reader, c *federation.Change) {
	var seen jsonfast.Fields
	r.Object(func(k []byte) {
		switch string(k) {
		case "kind":
			seen.Once(r, 0)
			c.Kind = federation.ProposalKind(r.String())
		case "dc":
			seen.Once(r, 1)
			c.DC = new(vipsmart.DC)
			readDC(r, c.DC)
		case "name":
			seen.Once(r, 2)
			c.Name = r.String()
		case "force":
			seen.Once(r, 3)
			c.Force = r.Bool()
		case "names":
			seen.Once(r, 4)
			c.Names = readStrings(r)
		case "gip":
			seen.Once(r, 5)
			var scratch []vipsmart.Placement
			g := readGIP(r, &scratch, map[string]string{}) // applyresultfast.go
			c.GIP = &g
		case "founder":
			seen.Once(r, 6)
			c.Founder = new(vipsmart.DC)
			readDC(r, c.Founder)
		case "new_fed_id":
			seen.Once(r, 7)
			c.NewFedID = r.String()
		case "by":
			seen.Once(r, 8)
			c.By = r.String()
		default: // batch (vipsmart apply), or not a field
			r.Fail()
		}
	})
}

func readDecision(r *jsonfast.Reader) *federation.Decision {
	d := new(federation.Decision)
	var seen jsonfast.Fields
	r.Object(func(k []byte) {
		switch string(k) {
		case "fed_id":
			seen.Once(r, 0)
			d.FedID = r.String()
		case "from_epoch":
			seen.Once(r, 1)
			d.FromEpoch = r.Uint64()
		case "to_epoch":
			seen.Once(r, 2)
			d.ToEpoch = r.Uint64()
		case "op_id":
			seen.Once(r, 3)
			d.OpID = r.String()
		case "coordinator":
			seen.Once(r, 4)
			d.Coordinator = r.String()
		case "change":
			seen.Once(r, 5)
			readMsgChange(r, &d.Change)
		case "tomb":
			seen.Once(r, 6)
			d.Tomb = r.Bool()
		case "members":
			seen.Once(r, 7)
			d.Members = readDCs(r)
		case "seq":
			seen.Once(r, 8)
			d.Seq = r.Uint64()
		default:
			r.Fail()
		}
	})
	return d
}

func readReport(r *jsonfast.Reader) *federation.Report {
	rep := new(federation.Report)
	var seen jsonfast.Fields
	r.Object(func(k []byte) {
		switch string(k) {
		case "vips_down":
			seen.Once(r, 0)
			rep.VIPsDown = readStrings(r)
		case "holding":
			seen.Once(r, 1)
			rep.Holding = readStrings(r)
		case "vips_unknown":
			seen.Once(r, 2)
			rep.VIPsUnknown = readStrings(r)
		default:
			r.Fail()
		}
	})
	return rep
}

func readQuorum(r *jsonfast.Reader) *federation.QuorumBeat {
	q := new(federation.QuorumBeat)
	var seen jsonfast.Fields
	r.Object(func(k []byte) {
		switch string(k) {
		case "boot":
			seen.Once(r, 0)
			q.Boot = r.Int64()
		case "stamp":
			seen.Once(r, 1)
			q.Stamp = r.Int64()
		case "echo_boot":
			seen.Once(r, 2)
			q.EchoBoot = r.Int64()
		case "echo":
			seen.Once(r, 3)
			q.Echo = r.Int64()
		case "supports":
			seen.Once(r, 4)
			q.Supports = r.Bool()
		case "lost":
			seen.Once(r, 5)
			q.Lost = readStrings(r)
		case "claims":
			seen.Once(r, 6)
			q.Claims = readStrings(r)
		default:
			r.Fail()
		}
	})
	return q
}
