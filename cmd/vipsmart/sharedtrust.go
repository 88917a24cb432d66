package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/token"
)

// shareTokens makes the node of a DC on etcd keep the DC's API and join
// tokens in etcd (etcd.Tokens, shared by every node: docs/ha.md) instead
// of its data directory's file. The DC's first node to start with tokens
// in etcd imports the tokens of its own file; the files of later nodes are
// ignored (and said so in the log). It returns what stops the cache's
// refresh.
func shareTokens(ctx context.Context, log *slog.Logger, st *etcd.Store, ts *trustServe) (func(), error) {
	shared, err := st.OpenTokens(ctx, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("reading the DC's tokens from etcd: %w", err)
	}
	if f, ok := ts.tokens.(*token.File); ok {
		api, join := f.Export(time.Now())
		imported, n, err := shared.ImportFile(ctx, api, join)
		if err != nil {
			shared.Close()
			return nil, fmt.Errorf("importing the tokens of this node's data directory into etcd: %w", err)
		}
		switch {
		case imported && n > 0:
			log.Info("imported the tokens of this node's data directory into etcd: the DC's nodes share them from now on", "tokens", n, "file", token.FileName)
		case !imported && n == 0 && len(api)+len(join) > 0:
			log.Warn("this node's data directory holds tokens, but the DC's tokens are in etcd (another node imported its own first): they are ignored; make them again with vipsmart token create / dc join-token", "file", token.FileName, "api_tokens", len(api), "join_tokens", len(join))
		}
	}
	ts.tokens = shared
	return shared.Close, nil
}
