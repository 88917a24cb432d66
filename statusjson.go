package vipsmart

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"time"
)

// AppendStatusJSON appends the bytes json.Marshal(st) gives to b (HTML
// escaped, as the operator API's answers are). The list of announcements
// (10,000 and more on a DC of a large federation: `vipsmart status` and
// anything polling it pay for them) is written by hand; the few small
// fields with encodings of their own (deadline, time left, federation,
// BGP peers) by encoding/json. statusjson_test.go compares the bytes with
// the library's on random values.
func AppendStatusJSON(b []byte, st *StatusInfo) ([]byte, error) {
	b = append(b, `{"name":`...)
	b = AppendJSONString(b, st.Name, true)
	b = append(b, `,"address":`...)
	b = appendAddrJSON(b, st.Address)
	b = append(b, `,"port":`...)
	b = strconv.AppendUint(b, uint64(st.Port), 10)
	b = append(b, `,"identity":`...)
	b = AppendJSONString(b, st.Identity, true)
	b = append(b, `,"status":`...)
	b = AppendJSONString(b, string(st.Status), true)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendUint(b, st.Epoch, 10)
	if st.OpID != "" {
		b = append(b, `,"op_id":`...)
		b = AppendJSONString(b, st.OpID, true)
	}
	var err error
	if st.Deadline != nil {
		b = append(b, `,"deadline":`...)
		if b, err = appendMarshal(b, st.Deadline); err != nil {
			return nil, err
		}
	}
	if st.TimeLeft != nil {
		b = append(b, `,"time_left":`...)
		if b, err = appendMarshal(b, st.TimeLeft); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"federation":`...)
	if b, err = appendMarshal(b, st.Federation); err != nil {
		return nil, err
	}
	b = append(b, `,"vips":`...)
	b = strconv.AppendInt(b, int64(st.VIPs), 10)
	b = append(b, `,"gips":`...)
	b = strconv.AppendInt(b, int64(st.GIPs), 10)
	b = append(b, `,"announced":`...)
	if st.Announced == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		var since sinceCache
		for i := range st.Announced {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendAnnouncedJSON(b, &st.Announced[i], &since); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	if len(st.BGPPeers) > 0 {
		b = append(b, `,"bgp_peers":`...)
		if b, err = appendMarshal(b, st.BGPPeers); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// StatusJSONSizeHint is about the length of st's JSON.
func StatusJSONSizeHint(st *StatusInfo) int {
	return 1024 + 256*len(st.Federation.membersOrNil()) + 160*len(st.Announced) + 512*len(st.BGPPeers)
}

func (f *FederationInfo) membersOrNil() []DC {
	if f == nil {
		return nil
	}
	return f.Members
}

// sinceCache holds the text of the last time written: the announcements
// of one change share their Since.
type sinceCache struct {
	t    time.Time
	text []byte
	ok   bool
}

func appendAnnouncedJSON(b []byte, a *Announced, since *sinceCache) ([]byte, error) {
	b = append(b, `{"address":`...)
	b = appendAddrJSON(b, a.Addr)
	b = append(b, `,"kind":`...)
	b = AppendJSONString(b, string(a.Kind), true)
	b = append(b, `,"name":`...)
	b = AppendJSONString(b, a.Name, true)
	if a.Interface != "" {
		b = append(b, `,"interface":`...)
		b = AppendJSONString(b, a.Interface, true)
	}
	b = append(b, `,"via":`...)
	b = AppendJSONString(b, a.Via, true)
	b = append(b, `,"since":"`...)
	// time.Time's MarshalJSON is its AppendText quoted (and fails as it
	// does, for a year outside 0-9999); its text needs no escaping.
	// (Equal times in different locations are written differently: the
	// cache is used for the identical value only.)
	if !since.ok || a.Since != since.t {
		text, err := a.Since.AppendText(since.text[:0])
		if err != nil {
			return nil, err
		}
		since.t, since.text, since.ok = a.Since, text, true
	}
	b = append(b, since.text...)
	b = append(b, `","state":`...)
	b = AppendJSONString(b, string(a.State), true)
	if a.Reason != "" {
		b = append(b, `,"reason":`...)
		b = AppendJSONString(b, a.Reason, true)
	}
	return append(b, '}'), nil
}

// appendAddrJSON appends a's JSON: its MarshalText as a string ("" for
// the zero Addr).
func appendAddrJSON(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, `""`...)
	}
	var tmp [64]byte
	return appendJSONBytes(b, a.AppendTo(tmp[:0]), true)
}

// appendMarshal appends json.Marshal(v): for the small values with
// encodings of their own.
func appendMarshal(b []byte, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}
