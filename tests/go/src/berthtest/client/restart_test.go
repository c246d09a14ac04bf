package client

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// These scenarios need the driver (tests/go_client_test.ts): at "AWAIT kill-daemon" it SIGKILLs the
// daemon, at "AWAIT restart-daemon" it starts it again on the same folders, then answers "ok".

// isUnavailable accepts what a gRPC client reports when its server went away.
func isUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if s, ok := status.FromError(errdefs.ToGRPC(err)); ok && s.Code() == codes.Unavailable {
		return true
	}
	return errdefs.IsUnavailable(err) || status.Code(err) == codes.Unavailable
}

// TestDaemonKillEndsStreams: a task Wait and an event subscription opened before the daemon is
// SIGKILLed end at once with Unavailable; after a restart the same client finds the task RUNNING with
// the same pid, waits on it, kills it and reads its exit status.
func TestDaemonKillEndsStreams(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t)
	img := seedImage(ctx, t, c)
	_, task := newTask(ctx, t, c, "survivor", cio.NullIO, imageOpts("survivor", img, oci.WithProcessArgs("sleep", "1000"))...)
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := task.Pid()
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, eventErrs := c.Subscribe(ctx)
	go func() {
		for range events { // the client stops reporting errors while an event waits to be read
		}
	}()
	time.Sleep(200 * time.Millisecond) // let both streams reach the daemon

	// A shim started while those streams are open must not inherit the daemon's end of them.
	other := namespaces.WithNamespace(ctx, *namespace+"-other")
	oc := newClient(t)
	oimg := seedImage(other, t, oc)
	_, otask := newTask(other, t, oc, "other", cio.NullIO, imageOpts("other", oimg, oci.WithProcessArgs("sleep", "1000"))...)
	if err := otask.Start(other); err != nil {
		t.Fatal(err)
	}

	await(t, "kill-daemon")
	select {
	case s := <-exited:
		if _, _, err := s.Result(); !isUnavailable(err) {
			t.Fatalf("Wait after the daemon died: %v, want Unavailable", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Wait did not end within 3 s of the daemon's death")
	}
	select {
	case err := <-eventErrs:
		if !isUnavailable(err) {
			t.Fatalf("event stream after the daemon died: %v, want Unavailable", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the event stream did not end within 3 s of the daemon's death")
	}

	await(t, "restart-daemon")
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ok, err := c.IsServing(waitCtx); !ok {
		t.Fatalf("daemon not serving after restart: %v", err)
	}
	st, err := task.Status(ctx)
	if err != nil || st.Status != containerd.Running {
		t.Fatalf("status after restart: %+v %v", st, err)
	}
	ctn, err := c.LoadContainer(ctx, "survivor")
	if err != nil {
		t.Fatal(err)
	}
	again, err := ctn.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Pid() != pid {
		t.Fatalf("pid after restart %d, want %d", again.Pid(), pid)
	}
	exited, err = again.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, exited, 10*time.Second); code != 137 {
		t.Fatalf("exit %d, want 137", code)
	}
}

// TestExitWhileDaemonDown: a task that exits while the daemon is down reports its real exit status
// after the restart.
func TestExitWhileDaemonDown(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t)
	img := seedImage(ctx, t, c)
	_, task := newTask(ctx, t, c, "exits-alone", cio.NullIO, imageOpts("exits-alone", img,
		oci.WithProcessArgs("sh", "-c", `trap "exit 42" TERM; while :; do sleep 0.1; done`))...)
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the trap is set
	await(t, "kill-daemon")
	if err := syscall.Kill(int(task.Pid()), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	await(t, "restart-daemon")
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ok, err := c.IsServing(waitCtx); !ok {
		t.Fatalf("daemon not serving after restart: %v", err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, exited, 10*time.Second); code != 42 {
		t.Fatalf("exit %d, want 42", code)
	}
	st, err := task.Status(ctx)
	if err != nil || st.Status != containerd.Stopped || st.ExitStatus != 42 {
		t.Fatalf("status after restart: %+v %v", st, err)
	}
}
