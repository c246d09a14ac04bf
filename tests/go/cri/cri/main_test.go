// Package cri drives a CRI runtime (Berth, or containerd's CRI plugin as the reference) the way the
// kubelet and crictl do: k8s.io/cri-api over gRPC, and client-go's SPDY remotecommand for the
// streaming calls. tests/cri_test.ts builds it inside Debian's containerd source tree (whose vendor/
// holds both) and runs each Go test on its own; containerd 1.6's CRI is the reference for every
// expected value.
//
// Every scenario removes what it made (pods, containers, their log folders) in t.Cleanup, so a failed
// scenario does not fail the next one; what a scenario made on the host (network namespaces, veths,
// addresses) is also written to the -record file, for the driver's check that nothing was left.
package cri

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var (
	endpoint     = flag.String("endpoint", "", "the CRI runtime's unix socket")
	image        = flag.String("image", "", "a busybox image whose Cmd is /bin/sh (the fixture \"single\")")
	httpdImage   = flag.String("httpd-image", "", "the fixture \"httpd\": busybox httpd on :8080 as nobody")
	pauseImage   = flag.String("pause-image", "", "the runtime's sandbox_image (the fixture \"pause\")")
	httpdIndex   = flag.String("httpd-index", "", "what the httpd fixture serves at /")
	volumesImage = flag.String("volumes-image", "", "the fixture \"volumes\": its config declares -volume-path a volume")
	volumePath   = flag.String("volume-path", "", "the volume the volumes fixture declares")
	volumeFiles  = flag.String("volume-files", "", "what the volumes fixture holds under -volume-path: JSON, relative path to content")
	workdir      = flag.String("workdir", "", "a folder the scenarios may write: pod log folders, mount sources")
	cgroupParent = flag.String("cgroup-parent", "", "the cgroup (cgroupfs path) the pods are put under")
	cniNetwork   = flag.String("cni-network", "", "the CNI network's name")
	cniBridge    = flag.String("cni-bridge", "", "the bridge of the CNI network")
	cniSubnet    = flag.String("cni-subnet", "", "the CNI network's subnet")
	cniConfDir   = flag.String("cni-conf-dir", "", "the runtime's CNI conf_dir (max_conf_num 1: its first file is the pod network)")
	ipamDir      = flag.String("ipam-dir", "", "host-local's dataDir")
	runtimeRoot  = flag.String("root", "", "the runtime's root folder")
	recordPath   = flag.String("record", "", "a file the scenarios append what they made on the host to")
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

// connect dials the runtime and waits until its CRI answers (containerd's CRI refuses calls while it
// recovers its state after a start).
func connect(t testing.TB) clients {
	t.Helper()
	conn, err := grpc.Dial("unix://"+*endpoint, grpc.WithInsecure())
	if err != nil {
		t.Fatalf("connect to %s: %v", *endpoint, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := clients{runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)}
	waitServing(t, c)
	return c
}

func waitServing(t testing.TB, c clients) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.runtime.Version(ctx, &runtime.VersionRequest{})
		cancel()
		if err == nil {
			return
		}
		// A daemon without a CRI plugin will not grow one: say so at once.
		if grpcCode(err) == codes.Unimplemented {
			t.Fatalf("the runtime at %s does not serve CRI: %v", *endpoint, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runtime at %s does not answer Version: %v", *endpoint, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func timeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// cleanupContext is for t.Cleanup functions, which may run after the test's own context expired.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// await tells the Deno driver that the scenario reached a point (a line "AWAIT <what>" on stdout) and
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

// record appends "<kind> <value>" to the -record file: the driver checks after the run that each is gone.
func record(t testing.TB, kind, value string) {
	t.Helper()
	if *recordPath == "" || value == "" {
		return
	}
	f, err := os.OpenFile(*recordPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("record %s %s: %v", kind, value, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", kind, value)
}

func randomID() string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func grpcCode(err error) codes.Code {
	return status.Code(err)
}

// wantCode fails unless err is a gRPC status with the code, and returns its message.
func wantCode(t testing.TB, what string, err error, code codes.Code) string {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want gRPC code %s", what, code)
	}
	s, _ := status.FromError(err)
	if s.Code() != code {
		t.Fatalf("%s: got code %s (%q), want %s", what, s.Code(), s.Message(), code)
	}
	t.Logf("%s: %s: %s", what, s.Code(), s.Message())
	return s.Message()
}

// --- images ---

// pull makes sure the image is present (pulled from the test registry when not) and returns its id.
func pull(t testing.TB, c clients, ref string) string {
	t.Helper()
	ctx := timeout(t)
	st, err := c.image.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("ImageStatus %s: %v", ref, err)
	}
	if st.Image != nil {
		return st.Image.Id
	}
	resp, err := c.image.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("PullImage %s: %v", ref, err)
	}
	return resp.ImageRef
}

// --- pods ---

// podConfig is a pod as the kubelet describes one: metadata, hostname, a log folder it made, DNS,
// labels, a cgroup parent of its own, and a PID namespace per container.
func podConfig(t testing.TB, name string) *runtime.PodSandboxConfig {
	t.Helper()
	uid := randomID()
	logDir := filepath.Join(*workdir, "pods", "berth-critest_"+name+"_"+uid)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(logDir) })
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{
			Name:      name,
			Uid:       uid,
			Namespace: "berth-critest",
			Attempt:   0,
		},
		Hostname:     name,
		LogDirectory: logDir,
		DnsConfig: &runtime.DNSConfig{
			// Written into resolv.conf only: nothing here ever resolves a name.
			Servers:  []string{"192.0.2.53"},
			Searches: []string{"berth-critest.svc.example"},
			Options:  []string{"ndots:2"},
		},
		Labels:      map[string]string{"app": name, "suite": "berth-critest", "run": uid},
		Annotations: map[string]string{"berth.test/pod": name},
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent: *cgroupParent + "/pod" + uid,
			SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
			},
		},
	}
}

type pod struct {
	id     string
	config *runtime.PodSandboxConfig
}

// runPod runs the sandbox and, at cleanup, stops and removes it as the kubelet does.
func runPod(t testing.TB, c clients, config *runtime.PodSandboxConfig) pod {
	t.Helper()
	resp, err := c.runtime.RunPodSandbox(timeout(t), &runtime.RunPodSandboxRequest{Config: config})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", config.Metadata.Name, err)
	}
	id := resp.PodSandboxId
	record(t, "sandbox", id)
	t.Cleanup(func() { removePod(t, c, id) })
	if info, err := sandboxInfoOf(c, id); err == nil {
		record(t, "netns", info.netnsPath())
		recordCgroup(t, info.Pid)
	}
	if st, err := c.runtime.PodSandboxStatus(timeout(t), &runtime.PodSandboxStatusRequest{PodSandboxId: id}); err == nil {
		record(t, "ip", st.Status.GetNetwork().GetIp())
	}
	return pod{id: id, config: config}
}

func removePod(t testing.TB, c clients, id string) {
	t.Helper()
	ctx, cancel := cleanupContext()
	defer cancel()
	if _, err := c.runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil &&
		grpcCode(err) != codes.NotFound {
		t.Errorf("cleanup: StopPodSandbox %s: %v", id, err)
	}
	if _, err := c.runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil &&
		grpcCode(err) != codes.NotFound {
		t.Errorf("cleanup: RemovePodSandbox %s: %v", id, err)
	}
}

// sandboxInfo is the part of PodSandboxStatus's verbose "info" (what `crictl inspectp` shows) the
// scenarios read: the sandbox's pid and runtime spec, whose network namespace path is the pod's netns.
type sandboxInfo struct {
	Pid         uint32 `json:"pid"`
	Status      string `json:"processStatus"`
	NetNSClosed bool   `json:"netNamespaceClosed"`
	Image       string `json:"image"`
	// The pod's config as the runtime keeps it (the CRI message's own JSON names).
	Config      *runtime.PodSandboxConfig `json:"config"`
	RuntimeSpec struct {
		Hostname string `json:"hostname"`
		Linux    struct {
			CgroupsPath string `json:"cgroupsPath"`
			Namespaces  []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

func (i sandboxInfo) netnsPath() string {
	for _, ns := range i.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			return ns.Path
		}
	}
	return ""
}

func sandboxInfoOf(c clients, id string) (sandboxInfo, error) {
	var info sandboxInfo
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.runtime.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return info, err
	}
	raw, ok := resp.Info["info"]
	if !ok {
		return info, fmt.Errorf("PodSandboxStatus %s verbose: no \"info\" key in %v", id, keys(resp.Info))
	}
	if err := json.Unmarshal([]byte(raw), &info); err != nil {
		return info, fmt.Errorf("PodSandboxStatus %s verbose info: %v: %s", id, err, raw)
	}
	return info, nil
}

func mustSandboxInfo(t testing.TB, c clients, id string) sandboxInfo {
	t.Helper()
	info, err := sandboxInfoOf(c, id)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func podStatus(t testing.TB, c clients, id string) *runtime.PodSandboxStatus {
	t.Helper()
	resp, err := c.runtime.PodSandboxStatus(timeout(t), &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: %v", id, err)
	}
	return resp.Status
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// --- containers ---

// containerConfig runs `sh -c script` from the busybox fixture, logging to <name>/0.log under the
// pod's log folder as the kubelet names logs.
func containerConfig(name, script string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name, Attempt: 0},
		Image:    &runtime.ImageSpec{Image: *image},
		Command:  []string{"/bin/sh", "-c"},
		Args:     []string{script},
		Labels:   map[string]string{"container": name},
		LogPath:  name + "/0.log",
		Linux:    &runtime.LinuxContainerConfig{},
	}
}

func createContainer(t testing.TB, c clients, p pod, config *runtime.ContainerConfig) string {
	t.Helper()
	pull(t, c, config.Image.Image)
	resp, err := c.runtime.CreateContainer(timeout(t), &runtime.CreateContainerRequest{
		PodSandboxId:  p.id,
		Config:        config,
		SandboxConfig: p.config,
	})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", config.Metadata.Name, err)
	}
	id := resp.ContainerId
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if _, err := c.runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil &&
			grpcCode(err) != codes.NotFound {
			t.Errorf("cleanup: RemoveContainer %s: %v", id, err)
		}
	})
	return id
}

func startContainer(t testing.TB, c clients, id string) {
	t.Helper()
	if _, err := c.runtime.StartContainer(timeout(t), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer %s: %v", id, err)
	}
}

// runContainer creates and starts a container in the pod.
func runContainer(t testing.TB, c clients, p pod, config *runtime.ContainerConfig) string {
	t.Helper()
	id := createContainer(t, c, p, config)
	startContainer(t, c, id)
	// The container's pid is in the verbose status (what `crictl inspect` shows).
	if resp, err := c.runtime.ContainerStatus(timeout(t), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true}); err == nil {
		var info struct {
			Pid uint32 `json:"pid"`
		}
		if json.Unmarshal([]byte(resp.Info["info"]), &info) == nil {
			recordCgroup(t, info.Pid)
		}
	}
	return id
}

// recordCgroup records the cgroup a pod's or container's process is in (relative to the hierarchy's
// root; its memory controller's, or the unified one's), for the driver's check that the runtime
// removed it.
func recordCgroup(t testing.TB, pid uint32) {
	t.Helper()
	if pid == 0 {
		return
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return
	}
	var unified string
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "memory" {
			if parts[2] != "/" {
				record(t, "cgroup", parts[2])
			}
			return
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
		}
	}
	if unified != "" && unified != "/" {
		record(t, "cgroup", unified)
	}
}

func containerStatus(t testing.TB, c clients, id string) *runtime.ContainerStatus {
	t.Helper()
	resp, err := c.runtime.ContainerStatus(timeout(t), &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.Status
}

// waitExited polls ContainerStatus until the container exited.
func waitExited(t testing.TB, c clients, id string) *runtime.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := containerStatus(t, c, id)
		if st.State == runtime.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not exit within 30s: %v", id, st.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// execSync runs a command in a container and fails the test if the call itself fails.
func execSync(t testing.TB, c clients, id string, cmd ...string) (stdout, stderr string, code int32) {
	t.Helper()
	resp, err := c.runtime.ExecSync(timeout(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 20})
	if err != nil {
		t.Fatalf("ExecSync %v in %s: %v", cmd, id, err)
	}
	return string(resp.Stdout), string(resp.Stderr), resp.ExitCode
}

// execOK runs a command that must exit 0 and returns its stdout.
func execOK(t testing.TB, c clients, id string, cmd ...string) string {
	t.Helper()
	out, errOut, code := execSync(t, c, id, cmd...)
	if code != 0 {
		t.Fatalf("ExecSync %v in %s: exit %d, stdout %q, stderr %q", cmd, id, code, out, errOut)
	}
	return out
}

// sleeper is a container that runs until it is stopped, and ends at once on SIGTERM.
func sleeper(name string) *runtime.ContainerConfig {
	return containerConfig(name, `trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done`)
}

// hostVeth is the host end of the pod's eth0: the interface whose index the container's eth0 names as
// its peer (iflink).
func hostVeth(t testing.TB, c clients, containerID string) string {
	t.Helper()
	out := strings.TrimSpace(execOK(t, c, containerID, "cat", "/sys/class/net/eth0/iflink"))
	index, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("eth0's iflink in %s: %q", containerID, out)
	}
	iface, err := net.InterfaceByIndex(index)
	if err != nil {
		t.Fatalf("no host interface %d (eth0's peer in %s): %v", index, containerID, err)
	}
	record(t, "veth", iface.Name)
	return iface.Name
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func poll(t testing.TB, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
