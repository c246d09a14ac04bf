package cri

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestContainerLifecycle: a container made from a command, args, env, a working folder and two host
// mounts (one read-only) is CREATED with its log path and image, then runs, exits 0 with reason
// Completed and start/finish times, wrote through its writable mount, and logged what it printed.
func TestContainerLifecycle(t *testing.T) {
	c := connect(t)
	p := runPod(t, c, podConfig(t, "containers"))

	data := filepath.Join(*workdir, "mounts", p.config.Metadata.Uid, "data")
	config := filepath.Join(*workdir, "mounts", p.config.Metadata.Uid, "config")
	for _, dir := range []string{data, config} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join(*workdir, "mounts", p.config.Metadata.Uid)) })
	if err := os.WriteFile(filepath.Join(data, "in.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := containerConfig("worker", `echo "$GREETING from $(pwd) as $(id -u)"; cat /data/in.txt
echo written > /data/out.txt
if touch /config/x 2>/dev/null; then echo config writable; else echo config read-only; fi
echo to stderr >&2`)
	cfg.WorkingDir = "/srv/app"
	cfg.Envs = []*runtime.KeyValue{{Key: "GREETING", Value: "hello"}, {Key: "EMPTY", Value: ""}}
	cfg.Mounts = []*runtime.Mount{
		{ContainerPath: "/data", HostPath: data},
		{ContainerPath: "/config", HostPath: config, Readonly: true},
	}
	cfg.Annotations = map[string]string{"berth.test/container": "worker"}
	before := time.Now()
	id := createContainer(t, c, p, cfg)

	st := containerStatus(t, c, id)
	if st.State != runtime.ContainerState_CONTAINER_CREATED || st.CreatedAt < before.UnixNano() ||
		st.StartedAt != 0 || st.FinishedAt != 0 {
		t.Errorf("after CreateContainer: state %v created %d started %d finished %d", st.State, st.CreatedAt, st.StartedAt, st.FinishedAt)
	}
	if st.Id != id || !reflect.DeepEqual(st.Metadata, cfg.Metadata) || !reflect.DeepEqual(st.Labels, cfg.Labels) ||
		!reflect.DeepEqual(st.Annotations, cfg.Annotations) {
		t.Errorf("status %+v does not echo the config", st)
	}
	wantLog := filepath.Join(p.config.LogDirectory, "worker", "0.log")
	if st.LogPath != wantLog {
		t.Errorf("log path %q, want %q", st.LogPath, wantLog)
	}
	// The image as the kubelet shows it: its first tag, and its repo digest as the reference.
	wantRef := repository(*image) + "@" + *imageDigest
	if st.GetImage().GetImage() != *image || st.ImageRef != wantRef {
		t.Errorf("image %q ref %q, want %q %q", st.GetImage().GetImage(), st.ImageRef, *image, wantRef)
	}
	if len(st.Mounts) != 2 || st.Mounts[0].ContainerPath != "/data" || st.Mounts[1].HostPath != config || !st.Mounts[1].Readonly {
		t.Errorf("mounts %v", st.Mounts)
	}

	startContainer(t, c, id)
	st = waitExited(t, c, id)
	if st.ExitCode != 0 || st.Reason != "Completed" || st.Message != "" {
		t.Errorf("exit code %d reason %q message %q, want 0 Completed", st.ExitCode, st.Reason, st.Message)
	}
	if st.StartedAt < st.CreatedAt || st.FinishedAt < st.StartedAt || time.Unix(0, st.FinishedAt).After(time.Now()) {
		t.Errorf("created %d started %d finished %d out of order", st.CreatedAt, st.StartedAt, st.FinishedAt)
	}
	if out, err := os.ReadFile(filepath.Join(data, "out.txt")); err != nil || string(out) != "written\n" {
		t.Errorf("the container's write through /data: %q %v", out, err)
	}
	if exists(filepath.Join(config, "x")) {
		t.Errorf("the container wrote through a read-only mount")
	}
	stdout, stderr := logStreams(t, wantLog)
	if want := "hello from /srv/app as 0\nfrom the host\nconfig read-only\n"; stdout != want {
		t.Errorf("stdout in the log %q, want %q", stdout, want)
	}
	if stderr != "to stderr\n" {
		t.Errorf("stderr in the log %q", stderr)
	}
	// A started container cannot start again.
	_, err := c.runtime.StartContainer(timeout(t), &runtime.StartContainerRequest{ContainerId: id})
	wantCode(t, "StartContainer on an exited container", err, codes.Unknown)
}

// TestContainerExitCode: a non-zero exit is reason Error with the exit code.
func TestContainerExitCode(t *testing.T) {
	c := connect(t)
	p := runPod(t, c, podConfig(t, "exitcode"))
	id := runContainer(t, c, p, containerConfig("fails", "echo failing; exit 3"))
	st := waitExited(t, c, id)
	if st.ExitCode != 3 || st.Reason != "Error" {
		t.Errorf("exit code %d reason %q, want 3 Error", st.ExitCode, st.Reason)
	}
}

// TestListContainersFilters: ListContainers filters by id (or a unique prefix), state, pod (or its
// prefix) and label selector, and lists each with its pod, image and state.
func TestListContainersFilters(t *testing.T) {
	c := connect(t)
	ctx := timeout(t)
	p1 := runPod(t, c, podConfig(t, "list-one"))
	p2 := runPod(t, c, podConfig(t, "list-two"))
	webCfg := sleeper("web")
	webCfg.Labels["tier"] = "front"
	web := runContainer(t, c, p1, webCfg)
	idle := createContainer(t, c, p1, containerConfig("idle", "true"))
	done := runContainer(t, c, p2, containerConfig("done", "true"))
	waitExited(t, c, done)
	mine := map[string]bool{web: true, idle: true, done: true}

	list := func(f *runtime.ContainerFilter) []string {
		t.Helper()
		resp, err := c.runtime.ListContainers(ctx, &runtime.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatalf("ListContainers %+v: %v", f, err)
		}
		var ids []string
		for _, ctr := range resp.Containers {
			if mine[ctr.Id] {
				ids = append(ids, ctr.Id)
			}
		}
		return sorted(ids)
	}
	state := func(s runtime.ContainerState) *runtime.ContainerStateValue {
		return &runtime.ContainerStateValue{State: s}
	}
	cases := []struct {
		name   string
		filter *runtime.ContainerFilter
		want   []string
	}{
		{"no filter", nil, sorted([]string{web, idle, done})},
		{"id", &runtime.ContainerFilter{Id: web}, []string{web}},
		{"id prefix", &runtime.ContainerFilter{Id: idle[:12]}, []string{idle}},
		{"running", &runtime.ContainerFilter{State: state(runtime.ContainerState_CONTAINER_RUNNING)}, []string{web}},
		{"created", &runtime.ContainerFilter{State: state(runtime.ContainerState_CONTAINER_CREATED)}, []string{idle}},
		{"exited", &runtime.ContainerFilter{State: state(runtime.ContainerState_CONTAINER_EXITED)}, []string{done}},
		{"pod", &runtime.ContainerFilter{PodSandboxId: p1.id}, sorted([]string{web, idle})},
		{"pod prefix", &runtime.ContainerFilter{PodSandboxId: p2.id[:12]}, []string{done}},
		{"label", &runtime.ContainerFilter{LabelSelector: map[string]string{"tier": "front"}}, []string{web}},
		{"pod and state", &runtime.ContainerFilter{PodSandboxId: p1.id, State: state(runtime.ContainerState_CONTAINER_CREATED)}, []string{idle}},
		{"pod and label disagree", &runtime.ContainerFilter{PodSandboxId: p2.id, LabelSelector: map[string]string{"tier": "front"}}, nil},
	}
	for _, tc := range cases {
		if got := list(tc.filter); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}

	resp, err := c.runtime.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{Id: web}})
	if err != nil || len(resp.Containers) != 1 {
		t.Fatalf("ListContainers by id: %v %v", resp, err)
	}
	item := resp.Containers[0]
	// A listed container names its image as configured, and the image's id as its reference.
	if item.PodSandboxId != p1.id || item.Metadata.GetName() != "web" || item.State != runtime.ContainerState_CONTAINER_RUNNING ||
		item.GetImage().GetImage() != *image || item.ImageRef != *imageID || item.CreatedAt == 0 || item.Labels["tier"] != "front" {
		t.Errorf("listed container %+v", item)
	}
}

// TestStopContainerGraceful: StopContainer sends SIGTERM; a container that ends on it stops at once,
// well inside the timeout, with its own exit code.
func TestStopContainerGraceful(t *testing.T) {
	c := connect(t)
	p := runPod(t, c, podConfig(t, "graceful"))
	id := runContainer(t, c, p, containerConfig("graceful",
		`trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 1 & wait $!; done`))
	waitLog(t, c, id, "ready")
	start := time.Now()
	if _, err := c.runtime.StopContainer(timeout(t), &runtime.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("StopContainer of a container that ends on SIGTERM took %s", took)
	}
	st := containerStatus(t, c, id)
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 || st.Reason != "Completed" {
		t.Errorf("after StopContainer: %v exit %d reason %q", st.State, st.ExitCode, st.Reason)
	}
	if stdout, _ := logStreams(t, st.LogPath); !strings.Contains(stdout, "got TERM\n") {
		t.Errorf("the container's log %q does not show it got SIGTERM", stdout)
	}
	// Stopping a stopped container is not an error.
	if _, err := c.runtime.StopContainer(timeout(t), &runtime.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
		t.Errorf("StopContainer a second time: %v", err)
	}
}

// TestStopContainerKillsAfterTimeout: a container that ignores SIGTERM is killed (SIGKILL) once the
// timeout is over: exit code 137, reason Error.
func TestStopContainerKillsAfterTimeout(t *testing.T) {
	c := connect(t)
	p := runPod(t, c, podConfig(t, "stubborn"))
	id := runContainer(t, c, p, containerConfig("stubborn",
		`trap 'echo ignoring TERM' TERM; echo ready; while true; do sleep 1 & wait $!; done`))
	waitLog(t, c, id, "ready")
	start := time.Now()
	if _, err := c.runtime.StopContainer(timeout(t), &runtime.StopContainerRequest{ContainerId: id, Timeout: 2}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	took := time.Since(start)
	if took < 2*time.Second || took > 8*time.Second {
		t.Errorf("StopContainer with timeout 2s took %s", took)
	}
	st := containerStatus(t, c, id)
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 || st.Reason != "Error" {
		t.Errorf("after StopContainer: %v exit %d reason %q, want EXITED 137 Error", st.State, st.ExitCode, st.Reason)
	}
	if stdout, _ := logStreams(t, st.LogPath); !strings.Contains(stdout, "ignoring TERM\n") {
		t.Errorf("the container's log %q does not show it got SIGTERM first", stdout)
	}
}

// TestRemoveContainer: removing a running container kills it and forgets it; its log stays (it is the
// kubelet's); removing an unknown container is not an error.
func TestRemoveContainer(t *testing.T) {
	c := connect(t)
	ctx := timeout(t)
	p := runPod(t, c, podConfig(t, "remove"))
	id := runContainer(t, c, p, sleeper("doomed"))
	logPath := containerStatus(t, c, id).LogPath
	if _, err := c.runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("RemoveContainer of a running container: %v", err)
	}
	_, err := c.runtime.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
	wantCode(t, "ContainerStatus after RemoveContainer", err, codes.NotFound)
	resp, err := c.runtime.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: p.id}})
	if err != nil || len(resp.Containers) != 0 {
		t.Errorf("ListContainers of the pod after RemoveContainer: %v %v", resp, err)
	}
	if !exists(logPath) {
		t.Errorf("the log %s is gone after RemoveContainer", logPath)
	}
	if _, err := c.runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Errorf("RemoveContainer a second time: %v", err)
	}
	// The pod goes on: another container runs in it.
	other := runContainer(t, c, p, sleeper("survivor"))
	if st := containerStatus(t, c, other); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("a new container after RemoveContainer: %v", st.State)
	}
}

// cgroupValue reads a cgroup v1 file (or its v2 counterpart) inside the container, as the workload sees it.
func cgroupValue(t *testing.T, c clients, id, v1, v2 string) string {
	t.Helper()
	return strings.TrimSpace(execOK(t, c, id, "sh", "-c", "cat /sys/fs/cgroup/"+v1+" 2>/dev/null || cat /sys/fs/cgroup/"+v2))
}

// TestUpdateContainerResources: new memory and CPU limits reach the running container's cgroup and its
// status.
func TestUpdateContainerResources(t *testing.T) {
	c := connect(t)
	p := runPod(t, c, podConfig(t, "resources"))
	cfg := sleeper("limited")
	cfg.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512}
	id := runContainer(t, c, p, cfg)
	if got := cgroupValue(t, c, id, "memory/memory.limit_in_bytes", "memory.max"); got != "67108864" {
		t.Errorf("memory limit at start %q, want 67108864", got)
	}
	if got := cgroupValue(t, c, id, "cpu/cpu.shares", "cpu.weight"); got != "512" {
		t.Errorf("cpu shares at start %q, want 512", got)
	}
	update := &runtime.LinuxContainerResources{MemoryLimitInBytes: 96 << 20, CpuShares: 256, CpuPeriod: 100000, CpuQuota: 50000}
	if _, err := c.runtime.UpdateContainerResources(timeout(t), &runtime.UpdateContainerResourcesRequest{ContainerId: id, Linux: update}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	if got := cgroupValue(t, c, id, "memory/memory.limit_in_bytes", "memory.max"); got != "100663296" {
		t.Errorf("memory limit after the update %q, want 100663296", got)
	}
	if got := cgroupValue(t, c, id, "cpu/cpu.shares", "cpu.weight"); got != "256" {
		t.Errorf("cpu shares after the update %q, want 256", got)
	}
	if got := cgroupValue(t, c, id, "cpu/cpu.cfs_quota_us", "cpu.max"); got != "50000" && got != "50000 100000" {
		t.Errorf("cpu quota after the update %q, want 50000", got)
	}
	res := containerStatus(t, c, id).GetResources().GetLinux()
	if res.GetMemoryLimitInBytes() != 96<<20 || res.GetCpuShares() != 256 || res.GetCpuQuota() != 50000 || res.GetCpuPeriod() != 100000 {
		t.Errorf("status resources after the update: %+v", res)
	}
}

// TestContainerStats: ContainerStats and ListContainerStats report CPU, memory and the writable layer
// of a running container, with its attributes; ListContainerStats filters by pod and label.
func TestContainerStats(t *testing.T) {
	c := connect(t)
	ctx := timeout(t)
	p := runPod(t, c, podConfig(t, "stats"))
	cfg := containerConfig("busy", `dd if=/dev/zero of=/tmp/fill bs=1024 count=512 2>/dev/null; while true; do sleep 1 & wait $!; done`)
	cfg.Labels["stats"] = "yes"
	id := runContainer(t, c, p, cfg)
	quiet := runContainer(t, c, p, sleeper("quiet"))
	execOK(t, c, id, "true")

	resp, err := c.runtime.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStats: %v", err)
	}
	s := resp.Stats
	t.Logf("stats: %+v", s)
	if s.GetAttributes().GetId() != id || !reflect.DeepEqual(s.GetAttributes().GetMetadata(), cfg.Metadata) ||
		s.GetAttributes().GetLabels()["stats"] != "yes" {
		t.Errorf("attributes %+v", s.GetAttributes())
	}
	if s.GetCpu().GetTimestamp() == 0 || s.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 {
		t.Errorf("cpu %+v, want a timestamp and some usage", s.GetCpu())
	}
	if s.GetMemory().GetTimestamp() == 0 || s.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("memory %+v, want a timestamp and a working set", s.GetMemory())
	}
	wl := s.GetWritableLayer()
	if wl.GetFsId().GetMountpoint() != *runtimeRoot+"/io.containerd.snapshotter.v1.overlayfs" || wl.GetUsedBytes() == nil {
		t.Errorf("writable layer %+v", wl)
	}

	byPod, err := c.runtime.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{Filter: &runtime.ContainerStatsFilter{PodSandboxId: p.id}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, st := range byPod.Stats {
		ids = append(ids, st.GetAttributes().GetId())
	}
	if !reflect.DeepEqual(sorted(ids), sorted([]string{id, quiet})) {
		t.Errorf("ListContainerStats of the pod: %v, want %v", ids, []string{id, quiet})
	}
	byLabel, err := c.runtime.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{Filter: &runtime.ContainerStatsFilter{
		PodSandboxId: p.id, LabelSelector: map[string]string{"stats": "yes"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(byLabel.Stats) != 1 || byLabel.Stats[0].GetAttributes().GetId() != id {
		t.Errorf("ListContainerStats by label: %v", byLabel.Stats)
	}
	byID, err := c.runtime.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{Filter: &runtime.ContainerStatsFilter{Id: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	if len(byID.Stats) != 1 || byID.Stats[0].GetAttributes().GetId() != quiet {
		t.Errorf("ListContainerStats by id: %v", byID.Stats)
	}
}

// specMount is a mount of a container's runtime spec, as the verbose ContainerStatus shows it.
type specMount struct {
	Destination string `json:"destination"`
	Source      string `json:"source"`
}

// specMountsAt returns the mounts of the container's runtime spec over path.
func specMountsAt(t testing.TB, c clients, id, path string) []specMount {
	t.Helper()
	resp, err := c.runtime.ContainerStatus(timeout(t), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("ContainerStatus %s verbose: %v", id, err)
	}
	var info struct {
		RuntimeSpec struct {
			Mounts []specMount `json:"mounts"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		t.Fatalf("ContainerStatus %s verbose info: %v: %q", id, err, resp.Info["info"])
	}
	var out []specMount
	for _, m := range info.RuntimeSpec.Mounts {
		if filepath.Clean(m.Destination) == filepath.Clean(path) {
			out = append(out, m)
		}
	}
	return out
}

// TestImageVolumes: a volume the image declares is a folder of the container's own under its root
// (containerd's `<root>/io.containerd.grpc.v1.cri/containers/<id>/volumes/`), filled with what the image
// has at that path: the container reads the image's files there and writes to it, its writes reach
// neither the image nor another container of it, the folder goes with the container, and a CRI mount at
// the same path takes the volume's place.
func TestImageVolumes(t *testing.T) {
	c := connect(t)
	var files map[string]string
	if err := json.Unmarshal([]byte(*volumeFiles), &files); err != nil || len(files) == 0 {
		t.Fatalf("-volume-files %q: %v, want the image's files under -volume-path", *volumeFiles, err)
	}
	vol := *volumePath
	p := runPod(t, c, podConfig(t, "volumes"))
	config := func(name string) *runtime.ContainerConfig {
		cfg := sleeper(name)
		cfg.Image = &runtime.ImageSpec{Image: *volumesImage}
		return cfg
	}
	// The one mount over the volume's path, from the container's spec.
	source := func(id string) string {
		t.Helper()
		mounts := specMountsAt(t, c, id, vol)
		if len(mounts) != 1 {
			t.Fatalf("container %s has mounts %+v at %s, want one", id, mounts, vol)
		}
		return mounts[0].Source
	}
	seesImageFiles := func(id string) {
		t.Helper()
		for name, content := range files {
			if got := execOK(t, c, id, "cat", filepath.Join(vol, name)); got != content {
				t.Errorf("%s in container %s: %q, want the image's %q", filepath.Join(vol, name), id, got, content)
			}
		}
		if out := execOK(t, c, id, "ls", "-A", vol); strings.Contains(out, "written.txt") {
			t.Errorf("container %s sees another container's write in %s: %q", id, vol, out)
		}
	}

	first := runContainer(t, c, p, config("first"))
	seesImageFiles(first)
	if mountinfo := execOK(t, c, first, "cat", "/proc/self/mountinfo"); !mountedAt(mountinfo, vol) {
		t.Errorf("%s is not a mount in the container:\n%s", vol, mountinfo)
	}
	// The kubelet's mounts only: an image volume is the runtime's.
	if st := containerStatus(t, c, first); len(st.Mounts) != 0 {
		t.Errorf("the status of a container without CRI mounts lists %v", st.Mounts)
	}
	volumes := filepath.Join(*runtimeRoot, "io.containerd.grpc.v1.cri", "containers", first, "volumes")
	firstSource := source(first)
	if filepath.Dir(firstSource) != volumes {
		t.Errorf("the volume of container %s is %s, want a folder in %s", first, firstSource, volumes)
	}
	script := `echo written > "$1/written.txt"; for f in "$@"; do echo changed > "$f"; done`
	args := []string{"sh", "-c", script, "sh", vol}
	for name := range files {
		args = append(args, filepath.Join(vol, name))
	}
	execOK(t, c, first, args...)
	if got := execOK(t, c, first, "cat", filepath.Join(vol, "written.txt")); got != "written\n" {
		t.Errorf("container %s reads back %q from its volume", first, got)
	}
	if b, err := os.ReadFile(filepath.Join(firstSource, "written.txt")); err != nil || string(b) != "written\n" {
		t.Errorf("the container's write in the volume folder on the host: %q %v", b, err)
	}

	// Another container of the image starts from the image's files, in a volume of its own.
	second := runContainer(t, c, p, config("second"))
	seesImageFiles(second)
	if s := source(second); s == firstSource || !strings.HasPrefix(s, filepath.Join(*runtimeRoot, "io.containerd.grpc.v1.cri", "containers", second, "volumes")+"/") {
		t.Errorf("the volume of the second container is %s (the first's: %s)", s, firstSource)
	}

	// A CRI mount at the volume's path wins: no volume is made, the host folder is seen there.
	hostDir := filepath.Join(*workdir, "mounts", p.config.Metadata.Uid, "volume")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join(*workdir, "mounts", p.config.Metadata.Uid)) })
	if err := os.WriteFile(filepath.Join(hostDir, "host.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config("mounted")
	cfg.Mounts = []*runtime.Mount{{ContainerPath: vol, HostPath: hostDir}}
	mounted := runContainer(t, c, p, cfg)
	if out := execOK(t, c, mounted, "ls", "-A", vol); out != "host.txt\n" {
		t.Errorf("%s in a container with a CRI mount there holds %q, want only the host folder's host.txt", vol, out)
	}
	if s := source(mounted); s != hostDir {
		t.Errorf("the mount at %s of the container with a CRI mount there is from %s, want %s", vol, s, hostDir)
	}
	if entries, _ := os.ReadDir(filepath.Join(*runtimeRoot, "io.containerd.grpc.v1.cri", "containers", mounted, "volumes")); len(entries) != 0 {
		t.Errorf("a volume folder was made for a path a CRI mount covers: %v", entries)
	}

	// The volume goes with its container.
	if _, err := c.runtime.RemoveContainer(timeout(t), &runtime.RemoveContainerRequest{ContainerId: first}); err != nil {
		t.Fatalf("RemoveContainer %s: %v", first, err)
	}
	if exists(firstSource) {
		t.Errorf("the volume folder %s is still there after RemoveContainer", firstSource)
	}
}

// mountedAt reports whether a mountinfo text has a mount point at path.
func mountedAt(mountinfo, path string) bool {
	for _, line := range strings.Split(mountinfo, "\n") {
		if fields := strings.Fields(line); len(fields) > 4 && fields[4] == path {
			return true
		}
	}
	return false
}
