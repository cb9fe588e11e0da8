// Command etcd runs the upstream etcd server at the version pinned in this
// module's go.mod. The local control plane uses it as its only datastore.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
