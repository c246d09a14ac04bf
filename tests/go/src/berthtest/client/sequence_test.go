package client

import (
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/oci"
)

// TestFirstContainer is what a new program does first: label a namespace nobody created, pull, create a
// container and a task, wait, start, kill, and read the exit status.
func TestFirstContainer(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t)
	img := seedImage(ctx, t, c)

	ctn, err := c.NewContainer(ctx, "first",
		containerd.WithNewSnapshot("first", img),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "100")))
	if err != nil {
		t.Fatal(err)
	}
	defer ctn.Delete(ctx, containerd.WithSnapshotCleanup)
	task, err := ctn.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	defer task.Delete(ctx)
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := task.Status(ctx)
	if err != nil || st.Status != containerd.Running {
		t.Fatalf("status after start: %v %v", st.Status, err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-exited:
		if code, _, err := s.Result(); err != nil || code != 137 {
			t.Fatalf("exit status %d (%v), want 137", code, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit status 10 s after SIGKILL")
	}
	st, err = task.Status(ctx)
	if err != nil || st.Status != containerd.Stopped || st.ExitStatus != 137 {
		t.Fatalf("status after exit: %+v %v", st, err)
	}
}
