package client

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/runtime/v2/runc/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// newTask creates a container running args from the seed image and its task (not started), removing
// both when the test ends.
// Cleanups run before testContext cancels ctx (last registered, first run).
func newTask(ctx context.Context, t *testing.T, c *containerd.Client, id string, io cio.Creator, opts ...containerd.NewContainerOpts) (containerd.Container, containerd.Task) {
	t.Helper()
	ctn, err := c.NewContainer(ctx, id, opts...)
	if err != nil {
		t.Fatalf("create container %s: %v", id, err)
	}
	t.Cleanup(func() { ctn.Delete(ctx, containerd.WithSnapshotCleanup) })
	task, err := ctn.NewTask(ctx, io)
	if err != nil {
		t.Fatalf("create task %s: %v", id, err)
	}
	t.Cleanup(func() { task.Delete(ctx, containerd.WithProcessKill) })
	return ctn, task
}

func imageOpts(id string, img containerd.Image, spec ...oci.SpecOpts) []containerd.NewContainerOpts {
	return []containerd.NewContainerOpts{
		containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(img)}, spec...)...),
	}
}

func waitExit(t *testing.T, ch <-chan containerd.ExitStatus, within time.Duration) uint32 {
	t.Helper()
	select {
	case s := <-ch:
		code, _, err := s.Result()
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		return code
	case <-time.After(within):
		t.Fatalf("no exit status within %v", within)
	}
	return 0
}

// TestExecTerminalLargeOutput: an exec with a terminal in a container whose own process has none, as
// the Go client's Exec with cio.WithTerminal asks for; every byte of a large output arrives.
func TestExecTerminalLargeOutput(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t)
	img := seedImage(ctx, t, c)
	ctn, task := newTask(ctx, t, c, "exec-tty", cio.NullIO, imageOpts("exec-tty", img, oci.WithProcessArgs("sleep", "1000"))...)
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	spec, err := ctn.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		pspec := *spec.Process
		pspec.Args = []string{"seq", "1", "100000"}
		var stdout bytes.Buffer
		p, err := task.Exec(ctx, fmt.Sprintf("big%d", i), &pspec, cio.NewCreator(cio.WithStreams(nil, &stdout, nil), cio.WithTerminal))
		if err != nil {
			t.Fatalf("exec %d: %v", i, err)
		}
		exited, err := p.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatalf("start exec %d: %v", i, err)
		}
		if code := waitExit(t, exited, 30*time.Second); code != 0 {
			t.Fatalf("exec %d exited %d", i, code)
		}
		p.IO().Wait()
		if _, err := p.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		lines := strings.Fields(stdout.String())
		if len(lines) != 100000 || lines[len(lines)-1] != "100000" {
			t.Fatalf("exec %d: got %d lines through the terminal, last %q; want 100000", i, len(lines), last(lines))
		}
	}
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// TestKillAfterRuncStateRemoved: a container whose runc state was removed behind the shim's back answers
// Kill with NotFound, and its Wait ends.
func TestKillAfterRuncStateRemoved(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t)
	img := seedImage(ctx, t, c)
	root := t.TempDir()
	opts := append(imageOpts("runc-gone", img, oci.WithProcessArgs("sleep", "1000")),
		containerd.WithRuntime("io.containerd.runc.v2", &options.Options{Root: root}))
	_, task := newTask(ctx, t, c, "runc-gone", cio.NullIO, opts...)
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("runc", "--root", filepath.Join(root, *namespace), "delete", "--force", "runc-gone").CombinedOutput()
	if err != nil {
		t.Fatalf("runc delete: %v: %s", err, out)
	}
	err = task.Kill(ctx, syscall.SIGKILL)
	if !errdefs.IsNotFound(err) {
		t.Fatalf("kill after runc delete: got %v, want NotFound", err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not end after the container was deleted by runc")
	}
}

// TestUserNamespace runs a container with remapped uids and gids, on a writable and a read-only rootfs.
func TestUserNamespace(t *testing.T) {
	for _, readonly := range []bool{false, true} {
		name := map[bool]string{false: "writable", true: "readonly"}[readonly]
		t.Run(name, func(t *testing.T) {
			c := newClient(t)
			ctx := testContext(t)
			img := seedImage(ctx, t, c)
			id := "userns-" + name
			snap := containerd.WithRemappedSnapshot(id, img, 1000, 2000)
			if readonly {
				snap = containerd.WithRemappedSnapshotView(id, img, 1000, 2000)
			}
			ctn, err := c.NewContainer(ctx, id, snap, containerd.WithNewSpec(oci.WithImageConfig(img),
				oci.WithProcessArgs("sh", "-c", "exit 7"),
				oci.WithUserNamespace(
					[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 10000}},
					[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 2000, Size: 10000}})))
			if err != nil {
				t.Fatal(err)
			}
			defer ctn.Delete(ctx, containerd.WithSnapshotCleanup)
			task, err := ctn.NewTask(ctx, cio.NewCreator(cio.WithStdio), func(_ context.Context, _ *containerd.Client, r *containerd.TaskInfo) error {
				r.Options = &options.Options{IoUid: 1000, IoGid: 2000}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			defer task.Delete(ctx, containerd.WithProcessKill)
			exited, err := task.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := task.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if code := waitExit(t, exited, 20*time.Second); code != 7 {
				t.Fatalf("exit %d, want 7", code)
			}
			st, err := task.Delete(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.ExitCode() != 7 {
				t.Fatalf("delete reports exit %d, want 7", st.ExitCode())
			}
		})
	}
}

// TestRuntimeByPath runs a container through a shim binary named by its absolute path.
func TestRuntimeByPath(t *testing.T) {
	const shim = "/usr/bin/containerd-shim-runc-v2"
	if _, err := os.Stat(shim); err != nil {
		t.Skip("no " + shim)
	}
	c := newClient(t)
	ctx := testContext(t)
	img := seedImage(ctx, t, c)
	opts := append(imageOpts("by-path", img, oci.WithProcessArgs("sh", "-c", "exit 5")), containerd.WithRuntime(shim, nil))
	_, task := newTask(ctx, t, c, "by-path", cio.NullIO, opts...)
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, exited, 20*time.Second); code != 5 {
		t.Fatalf("exit %d, want 5", code)
	}
}

// TestOutputStreamsLive: a container's stdout reaches the client as it is written, not when it exits.
func TestOutputStreamsLive(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t)
	img := seedImage(ctx, t, c)
	r, w := io.Pipe()
	_, task := newTask(ctx, t, c, "live", cio.NewCreator(cio.WithStreams(nil, w, io.Discard)),
		imageOpts("live", img, oci.WithProcessArgs("sh", "-c", "echo one; sleep 5; echo two"))...)
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || line != "one\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the first line arrived %v after start; the container wrote it at once", took)
	}
	go io.Copy(io.Discard, r)
	waitExit(t, exited, 20*time.Second)
}

// TestLogURIFile: stdout and stderr go live to a file given as a file:// log URI.
func TestLogURIFile(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t)
	img := seedImage(ctx, t, c)
	path := filepath.Join(t.TempDir(), "sub", "ctr.log")
	_, task := newTask(ctx, t, c, "log-file", cio.LogFile(path),
		imageOpts("log-file", img, oci.WithProcessArgs("sh", "-c", "echo out; echo err >&2; sleep 5; echo done"))...)
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), "out\n") && strings.Contains(string(b), "err\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log file holds %q 2 s after start; want the first lines while the container runs", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitExit(t, exited, 20*time.Second)
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "done\n") {
		t.Fatalf("log file after exit: %q", b)
	}
}

// TestLogURIBinary: a logging binary gets the container's stdout and stderr on fds 3 and 4, signals it
// is ready by closing fd 5, and sees CONTAINER_ID and CONTAINER_NAMESPACE, as containerd's shim does it.
// The background readers must not keep fd 5: containerd's shim waits for its end of file.
func TestLogURIBinary(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t)
	img := seedImage(ctx, t, c)
	dir := t.TempDir()
	logger := filepath.Join(dir, "logger.sh")
	script := "#!/bin/sh\nout=\"$2\"\necho \"$CONTAINER_NAMESPACE/$CONTAINER_ID\" > \"$out.id\"\n" +
		"cat <&3 5>&- > \"$out.stdout\" &\ncat <&4 5>&- > \"$out.stderr\" &\nexec 5>&-\nwait\n"
	if err := os.WriteFile(logger, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ctr")
	// The shim passes the URI's query as arguments: "out" then its value.
	_, task := newTask(ctx, t, c, "log-bin", cio.BinaryIO(logger, map[string]string{"out": out}),
		imageOpts("log-bin", img, oci.WithProcessArgs("sh", "-c", "echo to-out; echo to-err >&2"))...)
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitExit(t, exited, 20*time.Second)
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{".id": *namespace + "/log-bin\n", ".stdout": "to-out\n", ".stderr": "to-err\n"}
	deadline := time.Now().Add(5 * time.Second)
	for suffix, w := range want {
		for {
			b, _ := os.ReadFile(out + suffix)
			if string(b) == w {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s holds %q, want %q", out+suffix, b, w)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
