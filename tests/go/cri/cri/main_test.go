// Package cri drives a CRI runtime (Berth, or containerd's CRI plugin as the reference) the way the
// kubelet and crictl do: k8s.io/cri-api over gRPC, and client-go's SPDY remotecommand for the
// streaming calls. tests/cri_test.ts builds it inside Debian's containerd source tree (whose vendor/
// holds both) and runs each Go test on its own.
package cri

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var (
	endpoint = flag.String("endpoint", "", "the CRI runtime's unix socket")
)

func TestMain(m *testing.M) {
	flag.Parse()
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "-endpoint is required")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

type clients struct {
	runtime runtime.RuntimeServiceClient
	image   runtime.ImageServiceClient
}

func connect(t testing.TB) clients {
	t.Helper()
	conn, err := grpc.Dial("unix://"+*endpoint, grpc.WithInsecure())
	if err != nil {
		t.Fatalf("connect to %s: %v", *endpoint, err)
	}
	t.Cleanup(func() { conn.Close() })
	return clients{runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)}
}

func timeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestVersion: the runtime names itself and the CRI version it speaks.
func TestVersion(t *testing.T) {
	c := connect(t)
	v, err := c.runtime.Version(timeout(t), &runtime.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeApiVersion != "v1" || v.RuntimeName == "" {
		t.Fatalf("version %+v", v)
	}
}
