// A remote content store for tests/content_proxy_test.ts: containerd's own local content store served
// by its services/content/contentserver on a unix socket, as containerd's docs/PLUGINS.md shows for
// content proxy plugins.
//
// Usage: contentservice <socket> <root>
package main

import (
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/containerd/content/local"
	"github.com/containerd/containerd/services/content/contentserver"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: contentservice <socket> <root>")
		os.Exit(2)
	}
	store, err := local.NewStore(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rpc := grpc.NewServer()
	contentapi.RegisterContentServer(rpc, contentserver.New(store))
	os.Remove(os.Args[1])
	l, err := net.Listen("unix", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	if err := rpc.Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
