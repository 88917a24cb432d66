package httpapi

import (
	"net/http"

	"github.com/vipsmart/vipsmart"
)

// GIPRequest is the body of POST /v1/gips and PUT /v1/gips/{name}. Mode
// defaults to failover and Preempt to true.
type GIPRequest struct {
	Name       string               `json:"name"`
	Address    string               `json:"address"`
	Mode       vipsmart.GIPMode     `json:"mode,omitempty"`
	Preempt    *bool                `json:"preempt,omitempty"`
	Placements []vipsmart.Placement `json:"placements"`
	// Partition is available (default) or consistent (docs/gips.md).
	Partition vipsmart.PartitionPolicy `json:"partition,omitempty"`
}

const gipFields = `"name", "address", "mode", "preempt", "partition" and "placements" (each with "dc", "priority" and "vip")`

// gip validates a request into a GIP.
func (req GIPRequest) gip() (vipsmart.GIP, error) {
	g := vipsmart.GIP{Name: req.Name, Mode: req.Mode, Preempt: true, Placements: req.Placements, Partition: req.Partition}
	if req.Preempt != nil {
		g.Preempt = *req.Preempt
	}
	if err := vipsmart.ValidateName("name", req.Name); err != nil {
		return g, err
	}
	a, err := vipsmart.ParseHostAddr("address", req.Address)
	if err != nil {
		return g, err
	}
	g.Address = a
	if g.Placements == nil {
		g.Placements = []vipsmart.Placement{}
	}
	return g, g.Validate()
}

func (s *Server) gipRoutes(handle func(string, route)) {
	handle("/v1/gips", route{"GET": s.listGIPs, "POST": s.addGIP})
	handle("/v1/gips/{name}", route{"GET": s.getGIP, "PUT": s.updateGIP, "DELETE": s.removeGIP})
}

func (s *Server) listGIPs(w http.ResponseWriter, r *http.Request) {
	gs, err := s.Service.ListGIPs(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if gs == nil {
		gs = []vipsmart.GIPInfo{}
	}
	writeJSON(w, http.StatusOK, gs)
}

func (s *Server) getGIP(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	g, err := s.Service.GetGIP(r.Context(), name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) addGIP(w http.ResponseWriter, r *http.Request) {
	var req GIPRequest
	if st, err := decode(w, r, MaxOperatorBody, &req, gipFields); err != nil {
		writeJSONError(w, st, err)
		return
	}
	g, err := req.gip()
	if err != nil {
		writeError(w, err)
		return
	}
	out, err := s.Service.AddGIP(r.Context(), g)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) updateGIP(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	var req GIPRequest
	if st, err := decode(w, r, MaxOperatorBody, &req, gipFields); err != nil {
		writeJSONError(w, st, err)
		return
	}
	if req.Name == "" {
		req.Name = name
	}
	if req.Name != name {
		writeError(w, vipsmart.Errorf(vipsmart.EINVALID, "name", "body name %q differs from the name %q in the path: a GIP cannot be renamed (remove it and add it anew)", req.Name, name))
		return
	}
	g, err := req.gip()
	if err != nil {
		writeError(w, err)
		return
	}
	out, err := s.Service.UpdateGIP(r.Context(), g)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) removeGIP(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	if err := s.Service.RemoveGIP(r.Context(), name); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
