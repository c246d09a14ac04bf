package cri

import (
	"bytes"
	"errors"
	"io"
	neturl "net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestExecSync: ExecSync returns the command's stdout, stderr and exit code; a command that fails to
// start is an exit code too (126/127 from the shell), not a call error.
func TestExecSync(t *testing.T) {
	c := connect(t)
	p := runPod(t, c, podConfig(t, "execsync"))
	id := runContainer(t, c, p, sleeper("target"))
	out, errOut, code := execSync(t, c, id, "sh", "-c", "echo out; echo err >&2; exit 3")
	if out != "out\n" || errOut != "err\n" || code != 3 {
		t.Errorf("ExecSync: stdout %q stderr %q exit %d, want out, err, 3", out, errOut, code)
	}
	out, _, code = execSync(t, c, id, "sh", "-c", "echo $HOME; pwd; id -u")
	if out != "/root\n/\n0\n" || code != 0 {
		t.Errorf("ExecSync environment: %q exit %d", out, code)
	}
	// Large output comes back whole.
	out, _, code = execSync(t, c, id, "sh", "-c", "printf '%100000s' | /bin/busybox tr ' ' y")
	if out != strings.Repeat("y", 100000) || code != 0 {
		t.Errorf("ExecSync of 100000 bytes: %d bytes, exit %d", len(out), code)
	}
	_, _, code = execSync(t, c, id, "sh", "-c", "/no/such/command")
	if code != 127 {
		t.Errorf("ExecSync of a missing command through sh: exit %d, want 127", code)
	}
}

// TestExecSyncTimeout: a command that outlives ExecSync's timeout is killed and the call fails with
// DeadlineExceeded (what the kubelet's exec probes look for); the container goes on.
func TestExecSyncTimeout(t *testing.T) {
	c := connect(t)
	p := runPod(t, c, podConfig(t, "exectimeout"))
	id := runContainer(t, c, p, sleeper("target"))
	start := time.Now()
	_, err := c.runtime.ExecSync(timeout(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "30"}, Timeout: 1})
	took := time.Since(start)
	wantCode(t, "ExecSync past its timeout", err, codes.DeadlineExceeded)
	if took < time.Second || took > 10*time.Second {
		t.Errorf("ExecSync with a 1s timeout returned after %s", took)
	}
	if out := execOK(t, c, id, "echo", "still here"); out != "still here\n" {
		t.Errorf("after the timeout: %q", out)
	}
}

// streamURL checks the shape of a streaming URL: http://127.0.0.1:PORT/<kind>/<token>.
func streamURL(t testing.TB, kind, raw string) *neturl.URL {
	t.Helper()
	if !regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+/` + kind + `/[A-Za-z0-9_-]+$`).MatchString(raw) {
		t.Errorf("%s URL %q, want http://127.0.0.1:PORT/%s/TOKEN", kind, raw, kind)
	}
	u, err := neturl.Parse(raw)
	if err != nil {
		t.Fatalf("%s URL %q: %v", kind, raw, err)
	}
	return u
}

// stream runs one exec or attach session over SPDY, as kubectl and crictl do.
func stream(t testing.TB, u *neturl.URL, opts remotecommand.StreamOptions) error {
	t.Helper()
	executor, err := remotecommand.NewSPDYExecutor(&restclient.Config{
		TLSClientConfig: restclient.TLSClientConfig{Insecure: true},
	}, "POST", u)
	if err != nil {
		t.Fatalf("NewSPDYExecutor %s: %v", u, err)
	}
	return executor.Stream(opts)
}

func exitCode(err error) (int, bool) {
	var exit utilexec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitStatus(), true
	}
	return 0, false
}

// syncBuffer collects a stream's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestExecStreams: Exec returns a streaming URL; through it, a command's stdout and stderr arrive
// apart, its exit code arrives as the session's error, stdin reaches it, and the URL works once.
func TestExecStreams(t *testing.T) {
	c := connect(t)
	p := runPod(t, c, podConfig(t, "exec"))
	id := runContainer(t, c, p, sleeper("target"))
	ctx := timeout(t)

	resp, err := c.runtime.Exec(ctx, &runtime.ExecRequest{
		ContainerId: id, Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 5"}, Stdout: true, Stderr: true,
	})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	u := streamURL(t, "exec", resp.Url)
	t.Logf("exec URL: %s", resp.Url)
	var stdout, stderr syncBuffer
	err = stream(t, u, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	if code, ok := exitCode(err); !ok || code != 5 {
		t.Errorf("exec session error %v, want exit code 5", err)
	}
	if stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Errorf("exec stdout %q stderr %q", stdout.String(), stderr.String())
	}
	// The URL is single-use.
	if err := stream(t, u, remotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard}); err == nil {
		t.Errorf("a second session on the same exec URL succeeded")
	} else {
		t.Logf("second use of the exec URL: %v", err)
	}

	resp, err = c.runtime.Exec(ctx, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"cat"}, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatalf("Exec with stdin: %v", err)
	}
	var echoed syncBuffer
	err = stream(t, streamURL(t, "exec", resp.Url), remotecommand.StreamOptions{
		Stdin: strings.NewReader("ping\npong\n"), Stdout: &echoed,
	})
	if err != nil || echoed.String() != "ping\npong\n" {
		t.Errorf("exec of cat with stdin: %q, %v", echoed.String(), err)
	}
}

// sizeQueue hands terminal sizes to the SPDY executor, which sends each on the resize stream.
type sizeQueue chan *remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	size, ok := <-q
	if !ok {
		return nil
	}
	return size
}

// TestExecTTYResize: an exec with a TTY runs an interactive shell whose terminal takes the client's
// size and each later resize; the shell's exit code ends the session.
func TestExecTTYResize(t *testing.T) {
	c := connect(t)
	p := runPod(t, c, podConfig(t, "exectty"))
	id := runContainer(t, c, p, sleeper("target"))
	resp, err := c.runtime.Exec(timeout(t), &runtime.ExecRequest{
		ContainerId: id, Cmd: []string{"/bin/sh"}, Tty: true, Stdin: true, Stdout: true,
	})
	if err != nil {
		t.Fatalf("Exec with a TTY: %v", err)
	}
	u := streamURL(t, "exec", resp.Url)
	stdinR, stdinW := io.Pipe()
	var out syncBuffer
	sizes := make(sizeQueue, 1)
	sizes <- &remotecommand.TerminalSize{Width: 123, Height: 45}
	done := make(chan error, 1)
	go func() {
		done <- stream(t, u, remotecommand.StreamOptions{Stdin: stdinR, Stdout: &out, Tty: true, TerminalSizeQueue: sizes})
	}()
	t.Cleanup(func() { stdinW.Close() })

	// The resize travels on its own stream: ask until the terminal has the size.
	wantSize := func(size string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), size+"\r\n") {
			if time.Now().After(deadline) {
				t.Fatalf("the terminal never reported %q: %q", size, out.String())
			}
			if _, err := io.WriteString(stdinW, "/bin/busybox stty size\n"); err != nil {
				t.Fatalf("write to the exec's stdin: %v (output %q)", err, out.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	wantSize("45 123")
	sizes <- &remotecommand.TerminalSize{Width: 100, Height: 50}
	wantSize("50 100")
	if _, err := io.WriteString(stdinW, "/bin/busybox tty; exit 7\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if code, ok := exitCode(err); !ok || code != 7 {
			t.Errorf("TTY exec session error %v, want exit code 7", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the TTY exec session did not end: %q", out.String())
	}
	close(sizes)
	if !regexp.MustCompile(`/dev/pts/[0-9]+\r\n`).MatchString(out.String()) {
		t.Errorf("tty in the exec: %q, want a /dev/pts terminal", out.String())
	}
}

// TestAttach: Attach connects to a running container's stdio: what the client writes reaches the
// container's stdin, its stdout and stderr come back apart (and still reach the log), and closing stdin
// of a stdin_once container ends it.
func TestAttach(t *testing.T) {
	c := connect(t)
	p := runPod(t, c, podConfig(t, "attach"))
	cfg := containerConfig("reader", `echo ready; while read line; do echo "got $line"; echo "err $line" >&2; done; echo bye`)
	cfg.Stdin = true
	cfg.StdinOnce = true
	id := runContainer(t, c, p, cfg)
	waitLog(t, c, id, "ready")
	resp, err := c.runtime.Attach(timeout(t), &runtime.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	u := streamURL(t, "attach", resp.Url)
	stdinR, stdinW := io.Pipe()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- stream(t, u, remotecommand.StreamOptions{Stdin: stdinR, Stdout: &stdout, Stderr: &stderr})
	}()
	t.Cleanup(func() { stdinW.Close() })
	if _, err := io.WriteString(stdinW, "one\n"); err != nil {
		t.Fatal(err)
	}
	poll(t, "attached output", 15*time.Second, func() bool {
		return strings.Contains(stdout.String(), "got one\n") && strings.Contains(stderr.String(), "err one\n")
	})
	if _, err := io.WriteString(stdinW, "two\n"); err != nil {
		t.Fatal(err)
	}
	poll(t, "attached output", 15*time.Second, func() bool { return strings.Contains(stdout.String(), "got two\n") })
	stdinW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("attach session: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the attach session did not end after stdin closed: %q", stdout.String())
	}
	st := waitExited(t, c, id)
	if st.ExitCode != 0 {
		t.Errorf("exit code %d after stdin closed", st.ExitCode)
	}
	logOut, logErr := logStreams(t, st.LogPath)
	if logOut != "ready\ngot one\ngot two\nbye\n" || logErr != "err one\nerr two\n" {
		t.Errorf("log stdout %q stderr %q", logOut, logErr)
	}
	if !strings.HasSuffix(stdout.String(), "bye\n") {
		t.Errorf("attached stdout %q, want it to end with bye", stdout.String())
	}
}
