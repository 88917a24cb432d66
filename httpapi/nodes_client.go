package httpapi

import (
	"context"

	"github.com/vipsmart/vipsmart"
)

// NodesPath lists the nodes of a DC run by several nodes (docs/ha.md).
const NodesPath = "/v1/nodes"

// ListNodes returns the nodes of the DC (GET /v1/nodes).
func (c *Client) ListNodes(ctx context.Context) ([]vipsmart.NodeInfo, error) {
	var ns []vipsmart.NodeInfo
	return ns, c.do(ctx, "GET", NodesPath, nil, nil, &ns)
}
