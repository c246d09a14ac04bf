package client

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/content"
	contentsuite "github.com/containerd/containerd/content/testsuite"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/snapshots"
	snapshotsuite "github.com/containerd/containerd/snapshots/testsuite"
)

// TestContentStore runs containerd's content store conformance suite over the Content service: writers,
// resume after a dropped stream, truncate, commit errors, locked refs, labels, status timestamps. Every
// case works in a namespace of its own that does not exist until the case writes into it.
func TestContentStore(t *testing.T) {
	contentsuite.ContentSuite(t, "BerthContent", func(ctx context.Context, root string) (context.Context, content.Store, func() error, error) {
		c, err := containerd.New(*address)
		if err != nil {
			return nil, nil, nil, err
		}
		var count uint64
		cs := c.ContentStore()
		name := contentsuite.Name(ctx)
		ctx = contentsuite.SetContextWrapper(ctx, func(ctx context.Context) (context.Context, func(context.Context) error, error) {
			n := atomic.AddUint64(&count, 1)
			ctx = namespaces.WithNamespace(ctx, fmt.Sprintf("%s-n%d", name, n))
			return c.WithLease(ctx)
		})
		cleanup := func() error {
			defer c.Close()
			for i := uint64(1); i <= count; i++ {
				ctx := namespaces.WithNamespace(ctx, fmt.Sprintf("%s-n%d", name, i))
				statuses, err := cs.ListStatuses(ctx)
				if err != nil {
					return err
				}
				for _, st := range statuses {
					if err := cs.Abort(ctx, st.Ref); err != nil && !errdefs.IsNotFound(err) {
						return fmt.Errorf("abort %s: %w", st.Ref, err)
					}
				}
				err = cs.Walk(ctx, func(info content.Info) error {
					if err := cs.Delete(ctx, info.Digest); err != nil && !errdefs.IsNotFound(err) {
						return err
					}
					return nil
				})
				if err != nil {
					return err
				}
				if err := c.NamespaceService().Delete(ctx, fmt.Sprintf("%s-n%d", name, i)); err != nil && !errdefs.IsNotFound(err) {
					return fmt.Errorf("delete namespace: %w", err)
				}
			}
			return nil
		}
		return ctx, cs, cleanup, nil
	})
}

// TestSnapshotter runs containerd's snapshotter conformance suite over the Snapshots service; the
// client mounts what the service returns, as containerd's own tests do.
func TestSnapshotter(t *testing.T) {
	snapshotsuite.SnapshotterSuite(t, "BerthSnapshotter", func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		c, err := containerd.New(*address)
		if err != nil {
			return nil, nil, err
		}
		return c.SnapshotService(*snapshotter), c.Close, nil
	})
}
