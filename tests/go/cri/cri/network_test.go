package cri

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPodsReachEachOther: two pods on the CNI bridge get distinct addresses on the subnet and one
// reaches the other's server by address.
func TestPodsReachEachOther(t *testing.T) {
	c := connect(t)
	server, _ := httpdPod(t, c, "server")
	client := runPod(t, c, podConfig(t, "client"))
	clientCtr := runContainer(t, c, client, sleeper("client"))
	serverIP := podStatus(t, c, server.id).GetNetwork().GetIp()
	clientIP := podStatus(t, c, client.id).GetNetwork().GetIp()
	_, subnet, _ := net.ParseCIDR(*cniSubnet)
	if serverIP == clientIP || !subnet.Contains(net.ParseIP(serverIP)) || !subnet.Contains(net.ParseIP(clientIP)) {
		t.Fatalf("pod addresses %q and %q, want two on %s", serverIP, clientIP, *cniSubnet)
	}
	// The pod's own view: eth0 carries the address the runtime reported.
	if out := execOK(t, c, clientCtr, "/bin/busybox", "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, " "+clientIP+"/") {
		t.Errorf("the client pod's eth0: %q, want %s", out, clientIP)
	}
	out := execOK(t, c, clientCtr, "/bin/busybox", "wget", "-q", "-O", "-", "http://"+serverIP+":8080/")
	if out != *httpdIndex {
		t.Errorf("the client pod fetched %q from %s, want the server's page", out, serverIP)
	}
}

// freePort finds a TCP port no one listens on at 127.0.0.1.
func freePort(t testing.TB) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func hostGet(port int32) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestHostPort: a pod's port mapping on 127.0.0.1 answers on the host; once the pod stops, it does not.
func TestHostPort(t *testing.T) {
	c := connect(t)
	port := freePort(t)
	p, _ := httpdPod(t, c, "hostport", &runtime.PortMapping{
		Protocol: runtime.Protocol_TCP, ContainerPort: 8080, HostPort: port, HostIp: "127.0.0.1",
	})
	body, err := hostGet(port)
	if err != nil || body != *httpdIndex {
		t.Fatalf("GET 127.0.0.1:%d on the host: %q %v", port, body, err)
	}
	if _, err := c.runtime.StopPodSandbox(timeout(t), &runtime.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatal(err)
	}
	if body, err := hostGet(port); err == nil {
		t.Errorf("GET 127.0.0.1:%d after StopPodSandbox still answered %q", port, body)
	}
}

// iptablesLines returns the host's iptables rules (all tables) that mention any of the words.
func iptablesLines(t testing.TB, words ...string) []string {
	t.Helper()
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	var hits []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, w := range words {
			if w == "" {
				continue
			}
			if regexp.MustCompile(`(^|[^0-9A-Za-z.])` + regexp.QuoteMeta(w) + `([^0-9A-Za-z]|$)`).MatchString(line) {
				hits = append(hits, line)
				break
			}
		}
	}
	return hits
}

// TestNetworkTeardown: while a pod runs, the host has its netns mount, its veth on the bridge, its
// address lease and its port-mapping rules; StopPodSandbox takes every one away, and any cached CNI
// result (and RemovePodSandbox leaves it so).
func TestNetworkTeardown(t *testing.T) {
	c := connect(t)
	port := freePort(t)
	config := podConfig(t, "teardown")
	config.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 8080, HostPort: port, HostIp: "127.0.0.1"}}
	p := runPod(t, c, config)
	ctr := runContainer(t, c, p, sleeper("app"))
	ip := podStatus(t, c, p.id).GetNetwork().GetIp()
	netns := mustSandboxInfo(t, c, p.id).netnsPath()
	veth := hostVeth(t, c, ctr)
	lease := filepath.Join(*ipamDir, *cniNetwork, ip)
	cache := filepath.Join("/var/lib/cni/results", *cniNetwork+"-"+p.id+"-eth0")

	if !exists(netns) || !isMountPoint(t, netns) {
		t.Errorf("the pod's netns %q is not a mount point", netns)
	}
	if master, err := os.Readlink("/sys/class/net/" + veth + "/master"); err != nil || filepath.Base(master) != *cniBridge {
		t.Errorf("veth %s is not on bridge %s: %q %v", veth, *cniBridge, master, err)
	}
	if b, err := os.ReadFile(lease); err != nil || !strings.HasPrefix(string(b), p.id) {
		t.Errorf("host-local lease %s: %q %v, want the pod's id", lease, b, err)
	}
	if rules := iptablesLines(t, ip, p.id); len(rules) == 0 {
		t.Errorf("no iptables rule for the pod's port mapping (%s, %s)", ip, p.id)
	}
	// Where the CNI result is cached is the runtime's business (containerd uses libcni's
	// /var/lib/cni/results); only that none is left there after the pod is checked below.

	if _, err := c.runtime.StopPodSandbox(timeout(t), &runtime.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatal(err)
	}
	gone := func(when string) {
		t.Helper()
		if exists(netns) || isMountPoint(t, netns) {
			t.Errorf("%s: netns %s is still there", when, netns)
		}
		if exists("/sys/class/net/" + veth) {
			t.Errorf("%s: veth %s is still there", when, veth)
		}
		if exists(lease) {
			t.Errorf("%s: the address lease %s is still there", when, lease)
		}
		if rules := iptablesLines(t, ip, p.id); len(rules) != 0 {
			t.Errorf("%s: iptables rules left: %v", when, rules)
		}
		if exists(cache) {
			t.Errorf("%s: the CNI result cache %s is still there", when, cache)
		}
	}
	gone("after StopPodSandbox")
	if _, err := c.runtime.RemovePodSandbox(timeout(t), &runtime.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatal(err)
	}
	gone("after RemovePodSandbox")
}

// isMountPoint reports whether path is a mount point in this process's mount namespace.
func isMountPoint(t testing.TB, path string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	// mountinfo names the resolved path: /var/run/netns/x is /run/netns/x there.
	resolved := path
	if dir, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		resolved = filepath.Join(dir, filepath.Base(path))
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && (fields[4] == path || fields[4] == resolved) {
			return true
		}
	}
	return false
}
