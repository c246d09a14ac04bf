// Package client runs the containerd 1.6 Go client (Debian's golang-github-containerd-containerd-dev)
// against a Berth daemon that tests/go_client_test.ts starts. Each scenario is one Go test; the Deno
// side runs them one by one with -test.run, so a failure names the behaviour that broke.
//
// The scenarios follow the behaviours containerd's own integration/client suite expects; the content
// and snapshot cases call containerd's published conformance suites directly.
package client

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/defaults"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/remotes/docker"
)

var (
	address     = flag.String("address", "", "the Berth daemon's socket")
	imageRef    = flag.String("image", "", "a busybox image on a plain-HTTP registry on 127.0.0.1")
	namespace   = flag.String("namespace", "testing", "the namespace the scenarios work in")
	snapshotter = flag.String("snapshotter", "overlayfs", "the snapshotter the namespace defaults to")
)

func TestMain(m *testing.M) {
	flag.Parse()
	if *address == "" || *imageRef == "" {
		fmt.Fprintln(os.Stderr, "-address and -image are required")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// newClient connects to the daemon; the test fails if it cannot.
func newClient(t testing.TB) *containerd.Client {
	t.Helper()
	c, err := containerd.New(*address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("connect to %s: %v", *address, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testContext is the scenario's namespace, cancelled when the test ends.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), *namespace))
	t.Cleanup(cancel)
	return ctx
}

// resolver reaches the test registry over plain HTTP.
func resolver() containerd.RemoteOpt {
	return containerd.WithResolver(docker.NewResolver(docker.ResolverOptions{PlainHTTP: true}))
}

// seedImage does what a fresh program does first: label the namespace (which creates it) and pull
// the image, unpacked.
func seedImage(ctx context.Context, t testing.TB, c *containerd.Client) containerd.Image {
	t.Helper()
	ns, _ := namespaces.Namespace(ctx)
	if err := c.NamespaceService().SetLabel(ctx, ns, defaults.DefaultSnapshotterNSLabel, *snapshotter); err != nil {
		t.Fatalf("label namespace %q: %v", ns, err)
	}
	img, err := c.Pull(ctx, *imageRef, containerd.WithPullUnpack, resolver())
	if err != nil {
		t.Fatalf("pull %s: %v", *imageRef, err)
	}
	return img
}

// await tells the Deno side that the scenario reached a point (a line "AWAIT <what>" on stdout) and
// blocks until it answers with a line on stdin, e.g. after it killed and restarted the daemon.
func await(t testing.TB, what string) {
	t.Helper()
	fmt.Printf("AWAIT %s\n", what)
	line, err := stdin.ReadString('\n')
	if err != nil {
		t.Fatalf("waiting for the test driver after %q: %v", what, err)
	}
	if answer := strings.TrimSpace(line); answer != "ok" {
		t.Fatalf("the test driver, after %q: %s", what, answer)
	}
}

var stdin = bufio.NewReader(os.Stdin)
