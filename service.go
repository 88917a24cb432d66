package vipsmart

import "context"

// Service is the operator API of one DC's daemon. The daemon implements it;
// httpapi.Client implements it over HTTP, so the CLI and the tests drive a
// daemon through the same interface. Reads answer from local state and
// never need another DC.
type Service interface {
	Status(ctx context.Context) (StatusInfo, error)

	ListVIPs(ctx context.Context) ([]VIPInfo, error)
	GetVIP(ctx context.Context, name string) (VIPInfo, error)
	AddVIP(ctx context.Context, v VIP) (VIP, error)
	RemoveVIP(ctx context.Context, name string) error

	ListDCs(ctx context.Context) ([]DCInfo, error)
	// AddDC adds candidate to the federation of the local DC (declaring
	// one if the local DC is standalone) following the seed's workflow.
	// token is a join token made on the candidate (TrustService); it
	// binds the candidate's key.
	AddDC(ctx context.Context, candidate DC, token string) (StatusInfo, error)
	// RemoveDC removes the named member; force removes members that
	// cannot be reached, several at once in one change (a plain removal
	// takes one name).
	RemoveDC(ctx context.Context, names []string, force bool) (StatusInfo, error)
	// Leave takes the local DC out of its federation.
	Leave(ctx context.Context) (StatusInfo, error)

	// ListGIPs returns every GIP with the DCs active for it now.
	ListGIPs(ctx context.Context) ([]GIPInfo, error)
	GetGIP(ctx context.Context, name string) (GIPInfo, error)
	// AddGIP creates a GIP on every member, or on none.
	AddGIP(ctx context.Context, g GIP) (GIPInfo, error)
	// UpdateGIP replaces the named GIP on every member, or on none.
	UpdateGIP(ctx context.Context, g GIP) (GIPInfo, error)
	// RemoveGIP deletes the named GIP on every member, or on none.
	RemoveGIP(ctx context.Context, name string) error

	// Events returns up to limit events with Seq > after, oldest first.
	Events(ctx context.Context, after uint64, limit int) ([]Event, error)
}
