package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/etcd"
)

// storeReads is the operator API a follower node answers from the etcd
// store when the leader cannot be reached (docs/ha.md): the configuration
// as stored (VIPs, GIPs, members, events). What only the leader knows (VIP
// health, reachability of the other DCs, where each GIP is active) shows
// as unknown; changes are refused with EUNAVAILABLE.
type storeReads struct {
	st   *etcd.Store
	node *nodeRuntime
}

// recordView is the part of the federation record a follower shows.
type recordView struct {
	Self    vipsmart.DC     `json:"self"`
	Status  vipsmart.Status `json:"status"`
	FedID   string          `json:"fed_id"`
	Epoch   uint64          `json:"epoch"`
	Members []vipsmart.DC   `json:"members"`
}

func (s *storeReads) unavailable(what string) error {
	return &vipsmart.Error{Code: vipsmart.EUNAVAILABLE, Message: fmt.Sprintf("%s: node %s of DC %s cannot reach the DC's leader to pass the change on (it answers reads from the store meanwhile); retry in a few seconds", what, s.node.node, s.node.self.Name)}
}

func (s *storeReads) record(ctx context.Context) (recordView, []vipsmart.GIP, error) {
	rec, gips, err := s.st.LoadFederation(ctx)
	if err != nil {
		return recordView{}, nil, err
	}
	v := recordView{Self: s.node.self, Status: vipsmart.StatusStandalone}
	if rec != nil {
		if err := json.Unmarshal(rec, &v); err != nil {
			return recordView{}, nil, vipsmart.Errorf(vipsmart.EINTERNAL, "", "the federation record is corrupt: %v", err)
		}
	}
	return v, gips, nil
}

func (s *storeReads) Status(ctx context.Context) (vipsmart.StatusInfo, error) {
	v, gips, err := s.record(ctx)
	if err != nil {
		return vipsmart.StatusInfo{}, err
	}
	vips, err := s.st.ListVIPs(ctx)
	if err != nil {
		return vipsmart.StatusInfo{}, err
	}
	st := vipsmart.StatusInfo{Name: v.Self.Name, Address: v.Self.Address, Port: v.Self.Port, Identity: s.node.self.Identity, Status: v.Status, Epoch: v.Epoch, VIPs: len(vips), GIPs: len(gips), Announced: []vipsmart.Announced{}}
	if v.FedID != "" {
		st.Federation = &vipsmart.FederationInfo{ID: v.FedID, Epoch: v.Epoch, Members: v.Members}
	}
	return st, nil
}

func (s *storeReads) ListVIPs(ctx context.Context) ([]vipsmart.VIPInfo, error) {
	vs, err := s.st.ListVIPs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]vipsmart.VIPInfo, len(vs))
	for i, v := range vs {
		out[i] = vipsmart.VIPInfo{VIP: v, State: vipsmart.VIPUnknown}
	}
	storedHolders(ctx, s.st, out) // vipmove.go
	return out, nil
}

func (s *storeReads) GetVIP(ctx context.Context, name string) (vipsmart.VIPInfo, error) {
	v, err := s.st.GetVIP(ctx, name)
	if err != nil {
		return vipsmart.VIPInfo{}, err
	}
	out := []vipsmart.VIPInfo{{VIP: v, State: vipsmart.VIPUnknown}}
	storedHolders(ctx, s.st, out) // vipmove.go
	return out[0], nil
}

func (s *storeReads) ListDCs(ctx context.Context) ([]vipsmart.DCInfo, error) {
	v, _, err := s.record(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]vipsmart.DCInfo, 0, len(v.Members))
	for _, d := range v.Members {
		out = append(out, vipsmart.DCInfo{DC: d, Self: d.Name == v.Self.Name})
	}
	return out, nil
}

func (s *storeReads) ListGIPs(ctx context.Context) ([]vipsmart.GIPInfo, error) {
	_, gips, err := s.record(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]vipsmart.GIPInfo, len(gips))
	for i, g := range gips {
		out[i] = vipsmart.GIPInfo{GIP: g, Active: []string{}}
	}
	return out, nil
}

func (s *storeReads) GetGIP(ctx context.Context, name string) (vipsmart.GIPInfo, error) {
	gs, err := s.ListGIPs(ctx)
	if err != nil {
		return vipsmart.GIPInfo{}, err
	}
	for _, g := range gs {
		if g.Name == name {
			return g, nil
		}
	}
	return vipsmart.GIPInfo{}, vipsmart.Errorf(vipsmart.ENOTFOUND, "", "GIP %s does not exist", name)
}

func (s *storeReads) Events(ctx context.Context, after uint64, limit int) ([]vipsmart.Event, error) {
	return s.st.ListEvents(ctx, after, limit)
}

func (s *storeReads) AddVIP(context.Context, vipsmart.VIP) (vipsmart.VIP, error) {
	return vipsmart.VIP{}, s.unavailable("vip add")
}
func (s *storeReads) RemoveVIP(context.Context, string) error { return s.unavailable("vip remove") }
func (s *storeReads) AddDC(context.Context, vipsmart.DC, string) (vipsmart.StatusInfo, error) {
	return vipsmart.StatusInfo{}, s.unavailable("dc add")
}
func (s *storeReads) RemoveDC(context.Context, []string, bool) (vipsmart.StatusInfo, error) {
	return vipsmart.StatusInfo{}, s.unavailable("dc remove")
}
func (s *storeReads) Leave(context.Context) (vipsmart.StatusInfo, error) {
	return vipsmart.StatusInfo{}, s.unavailable("dc leave")
}
func (s *storeReads) AddGIP(context.Context, vipsmart.GIP) (vipsmart.GIPInfo, error) {
	return vipsmart.GIPInfo{}, s.unavailable("gip add")
}
func (s *storeReads) UpdateGIP(context.Context, vipsmart.GIP) (vipsmart.GIPInfo, error) {
	return vipsmart.GIPInfo{}, s.unavailable("gip update")
}
func (s *storeReads) RemoveGIP(context.Context, string) error { return s.unavailable("gip remove") }
