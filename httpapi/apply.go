package httpapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/vipsmart/vipsmart"
)

// ApplyPath is the operator route of vipsmart apply and diff.
const ApplyPath = "/v1/apply"

// MaxApplyBody bounds the body of POST /v1/apply, which carries whole
// declarative files (10,000 GIPs placed in 10 DCs are about 4 MiB);
// ApplyLimits reads one such body at a time.
const MaxApplyBody = 32 << 20

// DefaultApplyLimits are the limits of POST /v1/apply (its own counters,
// beside the operator and peer limits).
var DefaultApplyLimits = Limits{
	MaxBody: MaxApplyBody, LargeBody: 64 << 10, MaxLarge: 1, MaxLargePerSource: 1,
	MaxInFlight: 16, MaxPerSource: 8, ReadTimeout: 60e9, Wait: 30e9,
}

// ApplyBody is the body of POST /v1/apply: the objects as
// POST /v1/vips and POST /v1/gips take them, and the options.
type ApplyBody struct {
	VIPs            []VIPRequest `json:"vips"`
	GIPs            []GIPRequest `json:"gips"`
	Prune           bool         `json:"prune,omitempty"`
	DryRun          bool         `json:"dry_run,omitempty"`
	ResourceVersion string       `json:"resource_version,omitempty"`
}

const applyFields = `"vips" (each as POST /v1/vips takes it), "gips" (each as POST /v1/gips takes it), "prune", "dry_run" and "resource_version"`

// request validates the body into an ApplyRequest; errors name the object
// (vips[i].address).
func (b ApplyBody) request() (vipsmart.ApplyRequest, error) {
	req := vipsmart.ApplyRequest{Prune: b.Prune, DryRun: b.DryRun, ResourceVersion: b.ResourceVersion, VIPs: make([]vipsmart.VIP, 0, len(b.VIPs)), GIPs: make([]vipsmart.GIP, 0, len(b.GIPs))}
	for i, vr := range b.VIPs {
		where := fmt.Sprintf("vips[%d]", i)
		v := vipsmart.VIP{Name: vr.Name, Interface: vr.Interface, Check: vr.Check, Nodes: vr.Nodes, Preempt: vr.Preempt}
		if err := vipsmart.ValidateName("name", vr.Name); err != nil {
			return req, within(where, err)
		}
		a, err := vipsmart.ParseHostAddr("address", vr.Address)
		if err != nil {
			return req, within(where, err)
		}
		v.Address = a
		req.VIPs = append(req.VIPs, v)
	}
	for i, gr := range b.GIPs {
		if err := placementNames(gr.Placements); err != nil {
			return req, within(fmt.Sprintf("gips[%d]", i), err) // jsontext.go
		}
		g, err := gr.gip()
		if err != nil {
			return req, within(fmt.Sprintf("gips[%d]", i), err)
		}
		req.GIPs = append(req.GIPs, g)
	}
	return req, req.Validate()
}

func within(where string, err error) error {
	if e, ok := err.(*vipsmart.Error); ok {
		c := *e
		c.Field = where + "." + c.Field
		if e.Field == "" {
			c.Field = where
		}
		c.Message = where + ": " + c.Message
		return &c
	}
	return err
}

func (s *Server) applyRoutes(handle func(string, route)) {
	as, ok := s.Service.(vipsmart.ApplyService)
	if !ok {
		return
	}
	handle(ApplyPath, route{"POST": func(w http.ResponseWriter, r *http.Request) {
		var body ApplyBody
		if st, err := decode(w, r, MaxApplyBody, &body, applyFields); err != nil {
			writeJSONError(w, st, err)
			return
		}
		req, err := body.request()
		if err != nil {
			writeError(w, err)
			return
		}
		res, err := as.Apply(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		// The bytes writeJSON would write, without its reflection (the
		// answer of 10,000 GIP changes is megabytes).
		b, err := res.AppendJSON(nil, true)
		if err != nil {
			writeError(w, err)
			return
		}
		b = append(b, '\n')
		writeAnswer(w, r, b) // gzipanswer.go
	}})
}

var _ vipsmart.ApplyService = (*Client)(nil)

// ApplyBodyOf is the body of req as POST /v1/apply takes it.
func ApplyBodyOf(req vipsmart.ApplyRequest) ApplyBody {
	b := ApplyBody{Prune: req.Prune, DryRun: req.DryRun, ResourceVersion: req.ResourceVersion, VIPs: make([]VIPRequest, 0, len(req.VIPs)), GIPs: make([]GIPRequest, 0, len(req.GIPs))}
	for _, v := range req.VIPs {
		vr := VIPRequest{Name: v.Name, Interface: v.Interface, Check: v.Check, Nodes: v.Nodes, Preempt: v.Preempt}
		if v.Address.IsValid() {
			vr.Address = v.Address.String()
		}
		b.VIPs = append(b.VIPs, vr)
	}
	for _, g := range req.GIPs {
		b.GIPs = append(b.GIPs, gipRequest(g))
	}
	return b
}

// Apply implements vipsmart.ApplyService.
func (c *Client) Apply(ctx context.Context, req vipsmart.ApplyRequest) (vipsmart.ApplyResult, error) {
	var res vipsmart.ApplyResult
	body := ApplyBodyOf(req)
	b, err := body.appendJSON(make([]byte, 0, 256+len(body.GIPs)*(128+40*placementsOf(body.GIPs))))
	if err != nil {
		return res, fmt.Errorf("encoding request: %w", err)
	}
	if len(b) > MaxApplyBody {
		// The daemon would read 32 MiB of it and refuse it: say so
		// before sending, with what to do.
		return res, vipsmart.Errorf(vipsmart.EINVALID, "", "the objects make a request of %.1f MiB, more than the %d MiB POST /v1/apply takes: apply the files in parts", float64(len(b))/(1<<20), MaxApplyBody>>20)
	}
	return res, c.do(ctx, "POST", ApplyPath, nil, encodedBody(b), &applyResultOut{&res})
}

// placementsOf is the number of placements of the first GIP (a size
// estimate).
func placementsOf(gs []GIPRequest) int {
	if len(gs) == 0 {
		return 0
	}
	return len(gs[0].Placements)
}
