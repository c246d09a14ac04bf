package cri

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
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

// networkState is what the verbose Status says of the pod network: whether NetworkReady holds, and the
// plugin types of each network the runtime loaded (its loopback network first).
func networkState(t testing.TB, c clients) (bool, [][]string) {
	t.Helper()
	// Not timeout(t): this also runs in t.Cleanup.
	ctx, cancel := cleanupContext()
	defer cancel()
	resp, err := c.runtime.Status(ctx, &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	ready := false
	for _, cond := range resp.Status.GetConditions() {
		if cond.Type == runtime.NetworkReady {
			ready = cond.Status
		}
	}
	var cni struct {
		Networks []struct {
			Config struct {
				Plugins []struct {
					Network struct {
						Type string `json:"type"`
					} `json:"Network"`
				} `json:"Plugins"`
			} `json:"Config"`
		} `json:"Networks"`
	}
	if err := json.Unmarshal([]byte(resp.Info["cniconfig"]), &cni); err != nil {
		t.Fatalf("info[cniconfig]: %v: %q", err, resp.Info["cniconfig"])
	}
	var types [][]string
	for _, n := range cni.Networks {
		var list []string
		for _, p := range n.Config.Plugins {
			list = append(list, p.Network.Type)
		}
		types = append(types, list)
	}
	return ready, types
}

// waitNetwork polls the verbose Status until the runtime reports the pod network as want (the runtime
// may load a changed conf_dir a moment later: containerd watches the folder).
func waitNetwork(t testing.TB, c clients, what string, want func(ready bool, plugins [][]string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready, plugins := networkState(t, c)
		if want(ready, plugins) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: NetworkReady %v, networks' plugins %v, not within 30s", what, ready, plugins)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasPlugin(plugins [][]string, typ string) bool {
	for _, list := range plugins {
		for _, p := range list {
			if p == typ {
				return true
			}
		}
	}
	return false
}

// nsfsMounts lists the mount points of network (and other) namespaces held by bind mounts on the host.
func nsfsMounts(t testing.TB) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "nsfs" && len(fields) > 4 {
				out[fields[4]] = true
			}
		}
	}
	return out
}

// netnsInUse returns the inodes of the network namespaces that processes are in.
func netnsInUse() map[uint64]bool {
	out := map[uint64]bool{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if st, err := os.Stat(filepath.Join("/proc", p.Name(), "ns", "net")); err == nil {
			out[st.Sys().(*syscall.Stat_t).Ino] = true
		}
	}
	return out
}

// idleNetnsSince returns the namespace mounts not in before that no process is in, once 10 s passed
// without all of them going. A netns mounted meanwhile by another runtime on this machine soon holds its
// pod's process, or is gone; one a failed pod left never gets a process.
func idleNetnsSince(t testing.TB, before map[string]bool) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var idle []string
		inUse := netnsInUse()
		for m := range nsfsMounts(t) {
			if st, err := os.Stat(m); !before[m] && err == nil && !inUse[st.Sys().(*syscall.Stat_t).Ino] {
				idle = append(idle, m)
			}
		}
		if len(idle) == 0 || time.Now().After(deadline) {
			return idle
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func bridgePorts() []string {
	entries, _ := os.ReadDir(filepath.Join("/sys/class/net", *cniBridge, "brif"))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// failingNetwork writes, into the runtime's conf_dir, a conflist that sorts before the run's own (so
// with max_conf_num 1 it becomes the pod network): the run's network with a plugin appended that fails at
// ADD (tuning, told to set a sysctl no kernel has, in the pod's netns only), after the bridge and portmap
// made their veth, address lease and port-mapping rules. It returns the function that removes it again.
func failingNetwork(t testing.TB, c clients) (sysctl string, restore func()) {
	t.Helper()
	entries, err := os.ReadDir(*cniConfDir)
	if err != nil {
		t.Fatal(err)
	}
	var confs []string
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".conf", ".conflist", ".json":
			confs = append(confs, e.Name())
		}
	}
	confs = sorted(confs)
	name := "00-" + *cniNetwork + "-fails.conflist"
	if len(confs) == 0 || filepath.Ext(confs[0]) != ".conflist" || confs[0] <= name {
		t.Fatalf("conf_dir %s holds %v, want the run's conflist first, sorting after %s", *cniConfDir, confs, name)
	}
	raw, err := os.ReadFile(filepath.Join(*cniConfDir, confs[0]))
	if err != nil {
		t.Fatal(err)
	}
	var conflist map[string]interface{}
	if err := json.Unmarshal(raw, &conflist); err != nil {
		t.Fatalf("%s: %v", confs[0], err)
	}
	plugins, _ := conflist["plugins"].([]interface{})
	sysctl = "net.ipv4.conf.IFNAME.berth_critest_no_such_sysctl"
	conflist["plugins"] = append(plugins, map[string]interface{}{
		"type":   "tuning",
		"sysctl": map[string]string{sysctl: "1"},
	})
	data, err := json.MarshalIndent(conflist, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(*cniConfDir, name)
	// Renamed into place: a runtime watching the folder never reads half a file.
	if err := os.WriteFile(path+".tmp", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore = func() {
		if restored {
			return
		}
		restored = true
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			t.Errorf("restore the CNI config: %v", err)
		}
		waitNetwork(t, c, "after the failing network config is removed", func(ready bool, plugins [][]string) bool {
			return ready && !hasPlugin(plugins, "tuning")
		})
	}
	t.Cleanup(restore)
	return sysctl, restore
}

// TestCniPluginFails: when a plugin of the pod network fails at ADD, after the plugins before it made
// their veth, address lease and port-mapping rules, RunPodSandbox fails naming the pod and the plugin,
// and leaves nothing: no pod, no netns mount, no veth on the bridge, no lease, no iptables rule, no
// cached CNI result. Once the config is fixed, the network is ready and pods run again.
func TestCniPluginFails(t *testing.T) {
	c := connect(t)
	// RunPodSandbox pulls the sandbox image when missing: done first, so the inventory holds.
	pull(t, c, *pauseImage)
	sysctl, restore := failingNetwork(t, c)
	waitNetwork(t, c, "after the failing network config is written", func(ready bool, plugins [][]string) bool {
		return ready && hasPlugin(plugins, "tuning")
	})
	before := takeInventory(t, c)
	netnsBefore := nsfsMounts(t)
	portsBefore := bridgePorts()

	config := podConfig(t, "cnifails")
	config.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 8080, HostPort: freePort(t), HostIp: "127.0.0.1"}}
	resp, err := c.runtime.RunPodSandbox(timeout(t), &runtime.RunPodSandboxRequest{Config: config})
	if err == nil {
		t.Cleanup(func() { removePod(t, c, resp.PodSandboxId) })
	}
	msg := wantCode(t, "RunPodSandbox on a network whose plugin fails", err, codes.Unknown)
	id := regexp.MustCompile(`[0-9a-f]{64}`).FindString(msg)
	if id == "" {
		t.Errorf("the error %q does not name the pod sandbox", msg)
	}
	record(t, "sandbox", id)
	if !strings.Contains(msg, "tuning") || !strings.Contains(msg, strings.ReplaceAll(strings.Replace(sysctl, "IFNAME", "eth0", 1), ".", "/")) {
		t.Errorf("the error %q does not say the tuning plugin failed on its sysctl", msg)
	}

	sameInventory(t, c, "a failed pod network setup", before)
	if ports := bridgePorts(); !reflect.DeepEqual(ports, portsBefore) {
		t.Errorf("the ports of bridge %s: %v, before the failed setup %v", *cniBridge, ports, portsBefore)
	}
	if id != "" {
		if rules := iptablesLines(t, id); len(rules) != 0 {
			t.Errorf("iptables rules of the failed pod left: %v", rules)
		}
		results, _ := filepath.Glob("/var/lib/cni/results/*" + id + "*")
		if len(results) != 0 {
			t.Errorf("CNI results of the failed pod cached: %v", results)
		}
	}
	for _, m := range idleNetnsSince(t, netnsBefore) {
		record(t, "netns", m)
		t.Errorf("network namespace %s, mounted during the failed RunPodSandbox, is left with no process in it", m)
	}

	restore()
	p := runPod(t, c, podConfig(t, "cnifixed"))
	_, subnet, _ := net.ParseCIDR(*cniSubnet)
	if ip := podStatus(t, c, p.id).GetNetwork().GetIp(); !subnet.Contains(net.ParseIP(ip)) {
		t.Errorf("a pod once the network config is fixed: address %q, want one on %s", ip, *cniSubnet)
	}
}
