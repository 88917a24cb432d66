package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/vipsmart/vipsmart"
)

// BackupPath is the operator route that streams a consistent snapshot of
// the daemon's store.
const BackupPath = "/v1/backup"

// Snapshotter takes a consistent snapshot of a store (bolt.Store does).
type Snapshotter interface {
	Snapshot(ctx context.Context) (io.ReadCloser, int64, error)
}

// extraRoutes registers the operator routes of this file: the backup
// route when s.Backup is set. (The rebuild route is a peer route:
// peerRoutes.)
func (s *Server) extraRoutes(handle func(string, route)) {
	if s.Backup != nil {
		handle(BackupPath, route{"GET": s.backup})
	}
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	snap, size, err := s.Backup.Snapshot(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	defer snap.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=vipsmart-%s.db", time.Now().UTC().Format("20060102T150405Z")))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, snap); err != nil {
		s.Logger.Warn("backup: sending the snapshot failed", "err", err)
	}
}

// Backup streams a consistent snapshot of the daemon's store to w and
// returns its size. A short or failed transfer is an error.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if c.err != nil {
		return 0, c.err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(BackupPath, nil), nil)
	if err != nil {
		return 0, vipsmart.Errorf(vipsmart.EINVALID, "server", "bad server address %q: %v", c.Server, err)
	}
	if c.Token != "" && c.ep.URL != nil {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, c.connError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, decodeError(resp)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("receiving the backup from %s after %d bytes: %w", c.Server, n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("the backup from %s is cut short: %d of %d bytes", c.Server, n, resp.ContentLength)
	}
	return n, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP == nil {
		return http.DefaultClient
	}
	return c.HTTP
}

// connError is do's mapping of a failed request: a timeout, or the daemon
// not reachable.
func (c *Client) connError(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &vipsmart.Error{Code: vipsmart.ETIMEOUT, Message: fmt.Sprintf("vipsmart daemon at %s did not answer in time", c.Server), Err: err}
	}
	return c.unreachable(err)
}
