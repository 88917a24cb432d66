// Command etcd is the etcd server at the version pinned in this module's
// go.mod, built from the Go module proxy for vipsmart's tests and CI (see
// docs/ha.md, "etcd: which server and why"). It is etcd's own main
// (etcdmain), unchanged: every flag of the etcd release works.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
