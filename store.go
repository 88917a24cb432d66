package vipsmart

import (
	"context"
	"time"
)

// Store persists the state of one DC. Every method is atomic and durable:
// once it returns nil the change survives a crash of the process (kill -9)
// or of the machine. Implementations: bolt (the embedded default); every
// implementation must pass storetest.Run unchanged.
type Store interface {
	// ListVIPs returns every VIP, sorted by name.
	ListVIPs(ctx context.Context) ([]VIP, error)
	// GetVIP returns the named VIP or an ENOTFOUND error.
	GetVIP(ctx context.Context, name string) (VIP, error)
	// CreateVIP adds v. It fails with ECONFLICT, changing nothing, when
	// another VIP has the same name or the same address.
	CreateVIP(ctx context.Context, v VIP) error
	// DeleteVIP removes the named VIP or fails with ENOTFOUND.
	DeleteVIP(ctx context.Context, name string) error

	// LoadFederation returns the federation record last saved (nil if
	// none) and every GIP, sorted by name.
	LoadFederation(ctx context.Context) (record []byte, gips []GIP, err error)
	// SaveFederation stores u in one transaction.
	SaveFederation(ctx context.Context, u FederationUpdate) error

	// AppendEvents stores events, giving each the next sequence number
	// (from 1, never reused) and returning them so numbered. The store
	// keeps at most its configured number of events, dropping the oldest.
	AppendEvents(ctx context.Context, events []Event) ([]Event, error)
	// ListEvents returns up to limit events with Seq > after, oldest first.
	ListEvents(ctx context.Context, after uint64, limit int) ([]Event, error)

	// Close releases the store. Calls after Close fail.
	Close() error
}

// FederationUpdate is one atomic change of the federation state: the new
// record (opaque to the store; the federation package encodes it) and the
// GIP changes. With ReplaceGIPs the stored GIPs become exactly PutGIPs;
// otherwise PutGIPs are written (by name) and DeleteGIPs removed.
type FederationUpdate struct {
	Record      []byte
	ReplaceGIPs bool
	PutGIPs     []GIP
	DeleteGIPs  []string
}

// Event is one entry of a DC's event log.
type Event struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	DC      string    `json:"dc"`
	Kind    string    `json:"kind"`
	OpID    string    `json:"op_id,omitempty"`
	Message string    `json:"message"`
	// Level is info (the default, left out), warn or error: announcer
	// failures are warn or error.
	Level string `json:"level,omitempty"`
}

// The kinds of events.
const (
	EventStatus     = "status"     // the DC's status changed
	EventFederation = "federation" // a federation operation started, committed or failed
	EventHealth     = "health"     // a DC or VIP changed health
	EventGIP        = "gip"        // a GIP became active or inactive here
	EventVIP        = "vip"        // a VIP was added or removed
	EventConfig     = "config"     // the configuration was reloaded (SIGHUP)
	EventAnnounce   = "announce"   // an announcer failed or recovered, a BGP session or BFD went down or up
	EventSecurity   = "security"   // a peer or client was refused; a token or key changed
)
