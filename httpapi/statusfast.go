package httpapi

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/internal/jsonfast"
)

// statusOut is where Client.Status decodes the answer: without reflection
// when jsonfast reads it (a DC's status lists an announcement per GIP:
// 10,000 of them are 1.5 MB that encoding/json takes tens of milliseconds
// to read), by encoding/json otherwise, into the same value
// (TestStatusFastIsTheLibrarys, FuzzStatusAnswer). The small fields with
// encodings of their own (deadline, time left, federation, BGP peers) are
// read by encoding/json in both cases.
type statusOut struct{ st *vipsmart.StatusInfo }

// UnmarshalJSON is the way of encoding/json, when decodeFast cannot.
func (o *statusOut) UnmarshalJSON(data []byte) error { return json.Unmarshal(data, o.st) }

func (o *statusOut) decodeFast(data []byte) bool {
	var out vipsmart.StatusInfo
	r := jsonfast.New(data)
	var seen jsonfast.Fields
	names := map[string]string{}
	var since lastSince
	// library reads one small value as encoding/json does.
	library := func(v any) {
		if raw := r.Raw(); r.OK() && json.Unmarshal(raw, v) != nil {
			r.Fail()
		}
	}
	r.Object(func(k []byte) {
		switch string(k) {
		case "name":
			seen.Once(r, 0)
			out.Name = r.String()
		case "address":
			seen.Once(r, 1)
			out.Address = readAddr(r)
		case "port":
			seen.Once(r, 2)
			// Uint64, not Int: encoding/json refuses -0 for a uint16.
			p := r.Uint64()
			if p > 65535 {
				r.Fail()
			}
			out.Port = uint16(p)
		case "identity":
			seen.Once(r, 3)
			out.Identity = r.String()
		case "status":
			seen.Once(r, 4)
			out.Status = vipsmart.Status(r.String())
		case "epoch":
			seen.Once(r, 5)
			out.Epoch = r.Uint64()
		case "op_id":
			seen.Once(r, 6)
			out.OpID = r.String()
		case "deadline":
			seen.Once(r, 7)
			library(&out.Deadline)
		case "time_left":
			seen.Once(r, 8)
			library(&out.TimeLeft)
		case "federation":
			seen.Once(r, 9)
			library(&out.Federation)
		case "vips":
			seen.Once(r, 10)
			out.VIPs = r.Int()
		case "gips":
			seen.Once(r, 11)
			out.GIPs = r.Int()
		case "announced":
			seen.Once(r, 12)
			if r.Null() {
				out.Announced = nil
				return
			}
			// Sized at once (no doubling of a 1.5 MB slice): each
			// announcement has a "via" key, and the count of that text
			// is at least the count of announcements.
			out.Announced = make([]vipsmart.Announced, 0, bytes.Count(data[r.Pos():], []byte(`"via":`)))
			r.Array(func() {
				out.Announced = append(out.Announced, vipsmart.Announced{})
				readAnnounced(r, names, &since, &out.Announced[len(out.Announced)-1])
			})
		case "bgp_peers":
			seen.Once(r, 13)
			library(&out.BGPPeers)
		default:
			r.Fail()
		}
	})
	if !r.End() {
		return false
	}
	*o.st = out
	return true
}

// lastSince is the last time an announcement gave, as text and read.
type lastSince struct {
	text string
	t    time.Time
	ok   bool
}

// readAnnounced reads one announcement as encoding/json reads it from its
// field tags.
func readAnnounced(r *jsonfast.Reader, names map[string]string, since *lastSince, a *vipsmart.Announced) {
	var seen jsonfast.Fields
	r.Object(func(k []byte) {
		switch string(k) {
		case "address":
			seen.Once(r, 0)
			a.Addr = readAddr(r)
		case "kind":
			seen.Once(r, 1)
			a.Kind = vipsmart.AnnounceKind(r.Interned(names))
		case "name":
			seen.Once(r, 2)
			a.Name = r.String()
		case "interface":
			seen.Once(r, 3)
			a.Interface = r.Interned(names)
		case "via":
			seen.Once(r, 4)
			a.Via = r.Interned(names)
		case "since":
			seen.Once(r, 5)
			// time.Time's UnmarshalJSON parses a string's bytes as its
			// UnmarshalText does (a plain string: no escapes).
			// The announcements of one change share their time: the
			// last one read is kept.
			s := r.Interned(names)
			if !r.OK() {
				return
			}
			if !since.ok || s != since.text {
				since.ok, since.text = false, s
				if since.t.UnmarshalText([]byte(s)) != nil {
					r.Fail()
					return
				}
				since.ok = true
			}
			a.Since = since.t
		case "state":
			seen.Once(r, 6)
			a.State = vipsmart.AnnounceState(r.Interned(names))
		case "reason":
			seen.Once(r, 7)
			a.Reason = r.Interned(names)
		default:
			r.Fail()
		}
	})
}
