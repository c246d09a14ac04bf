package cri

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/transport/spdy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The port-forward protocol, as kubectl's client-go speaks it: one SPDY connection per URL, and per
// forwarded connection an "error" and a "data" stream, tied by requestID and naming the port.
const portForwardProtocol = "portforward.k8s.io"

// forward opens one forwarded connection to port through the URL, sends request, and returns all it
// reads back until the pod side closes, and what the error stream said.
func forward(t testing.TB, rawURL string, port int32, request string) (reply, streamErr string) {
	t.Helper()
	u := streamURL(t, "portforward", rawURL)
	transport, upgrader, err := spdy.RoundTripperFor(&restclient.Config{})
	if err != nil {
		t.Fatal(err)
	}
	conn, protocol, err := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", u).Dial(portForwardProtocol)
	if err != nil {
		t.Fatalf("port-forward dial %s: %v", u, err)
	}
	defer conn.Close()
	if protocol != portForwardProtocol {
		t.Errorf("negotiated protocol %q, want %q", protocol, portForwardProtocol)
	}
	headers := http.Header{}
	headers.Set("streamType", "error")
	headers.Set("port", strconv.Itoa(int(port)))
	headers.Set("requestID", "0")
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		t.Fatalf("port-forward error stream: %v", err)
	}
	// The client never writes on the error stream.
	errStream.Close()
	errc := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(errStream)
		errc <- string(b)
	}()
	headers.Set("streamType", "data")
	data, err := conn.CreateStream(headers)
	if err != nil {
		t.Fatalf("port-forward data stream: %v", err)
	}
	// The write side stays open: the runtime ends the forward about a second after either side closes.
	if _, err := io.WriteString(data, request); err != nil {
		t.Fatalf("port-forward write: %v", err)
	}
	replyc := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(data)
		replyc <- string(b)
	}()
	select {
	case reply = <-replyc:
	case <-time.After(20 * time.Second):
		t.Fatalf("port-forward to %d: no end of reply", port)
	}
	select {
	case streamErr = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatalf("port-forward to %d: the error stream did not end", port)
	}
	return reply, streamErr
}

// waitHTTP waits until the httpd in container id answers on 127.0.0.1:8080 inside its pod.
func waitHTTP(t testing.TB, c clients, id string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, errOut, code := execSync(t, c, id, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/")
		if code == 0 && out == *httpdIndex {
			return
		}
		if time.Now().After(deadline) {
			st := containerStatus(t, c, id)
			stdout, stderr := logStreams(t, st.LogPath)
			t.Fatalf("httpd does not answer in its pod: wget exit %d %q %q; container %v exit %d, log %q %q",
				code, out, errOut, st.State, st.ExitCode, stdout, stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// httpdPod runs a pod with the httpd fixture in it.
func httpdPod(t testing.TB, c clients, name string, mappings ...*runtime.PortMapping) (pod, string) {
	t.Helper()
	config := podConfig(t, name)
	config.PortMappings = mappings
	p := runPod(t, c, config)
	cfg := containerConfig("httpd", "")
	cfg.Image = &runtime.ImageSpec{Image: *httpdImage}
	cfg.Command, cfg.Args = nil, nil
	id := runContainer(t, c, p, cfg)
	waitHTTP(t, c, id)
	return p, id
}

// TestPortForward: PortForward returns a streaming URL through which a client reaches a port on the
// pod's own loopback (here busybox httpd, running as nobody); a closed port is reported on the error
// stream.
func TestPortForward(t *testing.T) {
	c := connect(t)
	p, _ := httpdPod(t, c, "portforward")
	for i := 0; i < 2; i++ {
		resp, err := c.runtime.PortForward(timeout(t), &runtime.PortForwardRequest{PodSandboxId: p.id, Port: []int32{8080}})
		if err != nil {
			t.Fatalf("PortForward: %v", err)
		}
		reply, streamErr := forward(t, resp.Url, 8080, "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
		// busybox httpd answers an HTTP/1.0 request as HTTP/1.1, and closes.
		if !strings.HasPrefix(reply, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(reply, "\r\n\r\n"+*httpdIndex) {
			t.Errorf("forwarded reply %d: %q", i, reply)
		}
		if streamErr != "" {
			t.Errorf("forward %d: error stream %q", i, streamErr)
		}
	}
	resp, err := c.runtime.PortForward(timeout(t), &runtime.PortForwardRequest{PodSandboxId: p.id, Port: []int32{8081}})
	if err != nil {
		t.Fatalf("PortForward: %v", err)
	}
	reply, streamErr := forward(t, resp.Url, 8081, "GET / HTTP/1.0\r\n\r\n")
	t.Logf("forward to a closed port: reply %q, error stream %q", reply, streamErr)
	if reply != "" || !strings.Contains(streamErr, "8081") {
		t.Errorf("forward to a closed port: reply %q, error stream %q, want the error to name the port", reply, streamErr)
	}
}
