package httpapi

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/internal/jsonfast"
)

// fastDecoder is a body decode reads without reflection when it can:
// decodeFast reports false, leaving the value as it was, for any input
// it does not read exactly as encoding/json would (decode then reads it
// with encoding/json, whose messages say what is wrong).
type fastDecoder interface {
	decodeFast(data []byte) bool
}

// decodeFast reads the body of POST /v1/apply: its GIPs (10,000 of them
// are megabytes) by jsonfast, its VIPs (few, with checks) by
// encoding/json. TestApplyBodyFastIsTheLibrarys and FuzzApplyBody
// compare it with encoding/json.
func (b *ApplyBody) decodeFast(data []byte) bool {
	var out ApplyBody
	r := jsonfast.New(data)
	var seen jsonfast.Fields
	r.Object(func(k []byte) {
		switch string(k) {
		case "vips":
			seen.Once(r, 0)
			raw := r.Raw()
			if r.OK() && (!decodeStrict(raw, &out.VIPs) || hasDuplicateKey(raw)) {
				r.Fail()
			}
		case "gips":
			seen.Once(r, 1)
			if r.Null() {
				out.GIPs = nil
				return
			}
			// Room for the GIPs at once (an estimate, bounded: the body is
			// not trusted).
			out.GIPs = make([]GIPRequest, 0, min(bytes.Count(data, []byte(`"address"`)), 1<<15))
			var scratch []vipsmart.Placement
			names := map[string]string{}
			r.Array(func() {
				out.GIPs = append(out.GIPs, readGIPRequest(r, &scratch, names))
			})
		case "prune":
			seen.Once(r, 2)
			out.Prune = r.Bool()
		case "dry_run":
			seen.Once(r, 3)
			out.DryRun = r.Bool()
		case "resource_version":
			seen.Once(r, 4)
			out.ResourceVersion = r.String()
		default:
			r.Fail()
		}
	})
	if !r.End() {
		return false
	}
	*b = out
	return true
}

// decodeStrict decodes raw, one whole value, as decode would (unknown
// fields refused).
func decodeStrict(raw []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil && dec.InputOffset() == int64(len(raw))
}

func readGIPRequest(r *jsonfast.Reader, scratch *[]vipsmart.Placement, names map[string]string) GIPRequest {
	var g GIPRequest
	var seen jsonfast.Fields
	r.Object(func(k []byte) {
		switch string(k) {
		case "name":
			seen.Once(r, 0)
			g.Name = r.String()
		case "address":
			seen.Once(r, 1)
			g.Address = r.String()
		case "mode":
			seen.Once(r, 2)
			g.Mode = vipsmart.GIPMode(r.Interned(names))
		case "preempt":
			seen.Once(r, 3)
			if r.Null() {
				g.Preempt = nil
				return
			}
			p := r.Bool()
			g.Preempt = &p
		case "placements":
			seen.Once(r, 4)
			g.Placements = readPlacements(r, scratch, names)
		case "partition":
			seen.Once(r, 5)
			g.Partition = vipsmart.PartitionPolicy(r.Interned(names))
		default:
			r.Fail()
		}
	})
	return g
}

// readPlacements reads a list of placements (null: nil; []: empty, not
// nil), gathered in *scratch and copied out with one allocation; names
// interns the DCs' and VIPs' names.
func readPlacements(r *jsonfast.Reader, scratch *[]vipsmart.Placement, names map[string]string) []vipsmart.Placement {
	if r.Null() {
		return nil
	}
	ps := (*scratch)[:0]
	r.Array(func() {
		var p vipsmart.Placement
		var seen jsonfast.Fields
		r.Object(func(k []byte) {
			switch string(k) {
			case "dc":
				seen.Once(r, 0)
				p.DC = r.Interned(names)
			case "priority":
				seen.Once(r, 1)
				p.Priority = r.Int()
			case "vip":
				seen.Once(r, 2)
				p.VIP = r.Interned(names)
			default:
				r.Fail()
			}
		})
		ps = append(ps, p)
	})
	*scratch = ps
	return append(make([]vipsmart.Placement, 0, len(ps)), ps...)
}

// encodedBody is a request body encoded already (Client.doOnce sends it
// as it is).
type encodedBody []byte

// appendJSON appends the bytes json.Marshal(b) gives, its GIPs written by
// hand (TestApplyBodyJSONIsTheLibrarys).
func (b *ApplyBody) appendJSON(dst []byte) ([]byte, error) {
	vips, err := json.Marshal(b.VIPs)
	if err != nil {
		return nil, err
	}
	dst = append(dst, `{"vips":`...)
	dst = append(dst, vips...)
	dst = append(dst, `,"gips":`...)
	if b.GIPs == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i := range b.GIPs {
			g := &b.GIPs[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = vipsmart.AppendJSONString(dst, g.Name, true)
			dst = append(dst, `,"address":`...)
			dst = vipsmart.AppendJSONString(dst, g.Address, true)
			if g.Mode != "" {
				dst = append(dst, `,"mode":`...)
				dst = vipsmart.AppendJSONString(dst, string(g.Mode), true)
			}
			if g.Preempt != nil {
				dst = append(dst, `,"preempt":`...)
				dst = strconv.AppendBool(dst, *g.Preempt)
			}
			dst = append(dst, `,"placements":`...)
			if g.Placements == nil {
				dst = append(dst, "null"...)
			} else {
				dst = append(dst, '[')
				for j, p := range g.Placements {
					if j > 0 {
						dst = append(dst, ',')
					}
					dst = append(dst, `{"dc":`...)
					dst = vipsmart.AppendJSONString(dst, p.DC, true)
					dst = append(dst, `,"priority":`...)
					dst = strconv.AppendInt(dst, int64(p.Priority), 10)
					if p.VIP != "" {
						dst = append(dst, `,"vip":`...)
						dst = vipsmart.AppendJSONString(dst, p.VIP, true)
					}
					dst = append(dst, '}')
				}
				dst = append(dst, ']')
			}
			if g.Partition != "" {
				dst = append(dst, `,"partition":`...)
				dst = vipsmart.AppendJSONString(dst, string(g.Partition), true)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if b.Prune {
		dst = append(dst, `,"prune":true`...)
	}
	if b.DryRun {
		dst = append(dst, `,"dry_run":true`...)
	}
	if b.ResourceVersion != "" {
		dst = append(dst, `,"resource_version":`...)
		dst = vipsmart.AppendJSONString(dst, b.ResourceVersion, true)
	}
	return append(dst, '}'), nil
}
