package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipsmart/vipsmart"
)

// ListVIPs returns every VIP, sorted by name (bytewise, as etcd orders
// keys). It returns an empty, non-nil slice when there are none.
func (s *Store) ListVIPs(ctx context.Context) ([]vipsmart.VIP, error) {
	vips := []vipsmart.VIP{}
	err := s.do(ctx, "list VIPs", func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, s.k.vips(), clientv3.WithPrefix())
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			var v vipsmart.VIP
			if err := json.Unmarshal(kv.Value, &v); err != nil {
				return fmt.Errorf("decode VIP %s: %w", strings.TrimPrefix(string(kv.Key), s.k.vips()), err)
			}
			vips = append(vips, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vips, nil
}

// GetVIP returns the named VIP or an ENOTFOUND error.
func (s *Store) GetVIP(ctx context.Context, name string) (vipsmart.VIP, error) {
	var v vipsmart.VIP
	err := s.do(ctx, "get VIP "+name, func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, s.k.vip(name))
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return vipNotFound(name)
		}
		if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
			return fmt.Errorf("decode VIP %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return vipsmart.VIP{}, err
	}
	return v, nil
}

func vipNotFound(name string) error {
	return vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "VIP %s does not exist", name)
}

// CreateVIP adds v in one transaction that commits only if neither its
// name nor its address is taken. It fails with ECONFLICT, changing
// nothing, when another VIP has the same name or the same address, and
// with EINVALID when v has no name or no valid address.
func (s *Store) CreateVIP(ctx context.Context, v vipsmart.VIP) error {
	op := "create VIP " + v.Name
	if v.Name == "" {
		return s.do(ctx, op, func(context.Context) error {
			return vipsmart.Errorf(vipsmart.EINVALID, "name", "VIP name is empty")
		})
	}
	if !v.Address.IsValid() {
		return s.do(ctx, op, func(context.Context) error {
			return vipsmart.Errorf(vipsmart.EINVALID, "address", "VIP %s has no address", v.Name)
		})
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	nameKey, addrKey := s.k.vip(v.Name), s.k.vipAddr(v.Address.String())
	return s.do(ctx, op, func(ctx context.Context) error {
		resp, err := s.txn(ctx,
			[]clientv3.Cmp{
				clientv3.Compare(clientv3.CreateRevision(nameKey), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(addrKey), "=", 0),
			},
			[]clientv3.Op{clientv3.OpPut(nameKey, string(data)), clientv3.OpPut(addrKey, v.Name)},
			[]clientv3.Op{clientv3.OpGet(nameKey), clientv3.OpGet(addrKey)},
		)
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
		if len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "name", "VIP name %s is already in use", v.Name)
		}
		owner := ""
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			owner = string(kvs[0].Value)
		}
		return vipsmart.Errorf(vipsmart.ECONFLICT, "address", "address %s is already used by VIP %s", v.Address, owner)
	})
}

// DeleteVIP removes the named VIP and frees its address, or fails with
// ENOTFOUND. It reads the VIP and its index entry, then deletes both in a
// transaction that commits only if neither changed meanwhile (retrying
// otherwise).
func (s *Store) DeleteVIP(ctx context.Context, name string) error {
	nameKey := s.k.vip(name)
	return s.do(ctx, "delete VIP "+name, func(ctx context.Context) error {
		for {
			resp, err := s.cli.Get(ctx, nameKey)
			if err != nil {
				return err
			}
			if len(resp.Kvs) == 0 {
				return vipNotFound(name)
			}
			var v vipsmart.VIP
			if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
				return fmt.Errorf("decode VIP %s: %w", name, err)
			}
			addrKey := s.k.vipAddr(v.Address.String())
			ar, err := s.cli.Get(ctx, addrKey)
			if err != nil {
				return err
			}
			cmps := []clientv3.Cmp{
				clientv3.Compare(clientv3.ModRevision(nameKey), "=", resp.Kvs[0].ModRevision),
				clientv3.Compare(clientv3.ModRevision(addrKey), "=", modRev(ar)),
			}
			ops := []clientv3.Op{clientv3.OpDelete(nameKey)}
			// Free the address only if the index points at this VIP.
			if len(ar.Kvs) > 0 && string(ar.Kvs[0].Value) == name {
				ops = append(ops, clientv3.OpDelete(addrKey))
			}
			tr, err := s.txn(ctx, cmps, ops, nil)
			if err != nil {
				return err
			}
			if tr.Succeeded {
				return nil
			}
			// Changed meanwhile: read again.
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	})
}

// modRev is the mod revision of the one key a Get asked for, 0 if absent.
func modRev(r *clientv3.GetResponse) int64 {
	if len(r.Kvs) == 0 {
		return 0
	}
	return r.Kvs[0].ModRevision
}
