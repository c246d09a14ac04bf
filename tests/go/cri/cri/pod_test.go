package cri

import (
	"net"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPodSandboxLifecycle: a pod runs with its hostname, DNS config, labels and annotations; its status
// says READY with an address on the CNI network, a network namespace and a creation time; stopping it
// ends its containers and takes its address; removing it forgets it (its containers too) and leaves
// the kubelet's log folder alone.
func TestPodSandboxLifecycle(t *testing.T) {
	c := connect(t)
	ctx := timeout(t)
	config := podConfig(t, "lifecycle")
	config.PortMappings = []*runtime.PortMapping{{
		Protocol: runtime.Protocol_TCP, ContainerPort: 8080, HostPort: freePort(t), HostIp: "127.0.0.1",
	}}
	_, subnet, err := net.ParseCIDR(*cniSubnet)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	p := runPod(t, c, config)
	after := time.Now()

	st := podStatus(t, c, p.id)
	if st.Id != p.id || !reflect.DeepEqual(st.Metadata, config.Metadata) {
		t.Errorf("status id %q metadata %+v, want %q %+v", st.Id, st.Metadata, p.id, config.Metadata)
	}
	if st.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Errorf("state %v, want SANDBOX_READY", st.State)
	}
	if created := time.Unix(0, st.CreatedAt); created.Before(before) || created.After(after) {
		t.Errorf("created_at %v, not between %v and %v", created, before, after)
	}
	ip := net.ParseIP(st.GetNetwork().GetIp())
	if ip == nil || !subnet.Contains(ip) {
		t.Errorf("pod address %q, want one in %s", st.GetNetwork().GetIp(), *cniSubnet)
	}
	if !reflect.DeepEqual(st.Labels, config.Labels) || !reflect.DeepEqual(st.Annotations, config.Annotations) {
		t.Errorf("labels %v annotations %v, want %v %v", st.Labels, st.Annotations, config.Labels, config.Annotations)
	}
	if pid := st.GetLinux().GetNamespaces().GetOptions().GetPid(); pid != runtime.NamespaceMode_CONTAINER {
		t.Errorf("pid namespace mode %v, want CONTAINER as configured", pid)
	}

	info := mustSandboxInfo(t, c, p.id)
	netns := info.netnsPath()
	if netns == "" || !exists(netns) {
		t.Errorf("network namespace %q (from the verbose info's runtime spec) does not exist", netns)
	}
	if info.Pid == 0 || info.Status != "running" || info.NetNSClosed {
		t.Errorf("verbose info: pid %d processStatus %q netNamespaceClosed %v", info.Pid, info.Status, info.NetNSClosed)
	}
	if info.RuntimeSpec.Hostname != "lifecycle" || info.Image != *pauseImage {
		t.Errorf("verbose info: hostname %q image %q, want lifecycle and %s", info.RuntimeSpec.Hostname, info.Image, *pauseImage)
	}
	if info.Config == nil || !reflect.DeepEqual(info.Config.PortMappings, config.PortMappings) ||
		!reflect.DeepEqual(info.Config.Metadata, config.Metadata) || info.Config.LogDirectory != config.LogDirectory {
		t.Errorf("verbose info config %+v, want the pod's config", info.Config)
	}
	if want := config.Linux.CgroupParent + "/" + p.id; info.RuntimeSpec.Linux.CgroupsPath != want {
		t.Errorf("sandbox cgroups path %q, want %q", info.RuntimeSpec.Linux.CgroupsPath, want)
	}

	// What a container of the pod sees: the pod's hostname and DNS config.
	ctr := runContainer(t, c, p, sleeper("app"))
	if got := execOK(t, c, ctr, "cat", "/etc/hostname"); got != "lifecycle\n" {
		t.Errorf("/etc/hostname %q", got)
	}
	if got := execOK(t, c, ctr, "cat", "/proc/sys/kernel/hostname"); got != "lifecycle\n" {
		t.Errorf("kernel hostname %q", got)
	}
	wantResolv := "search berth-critest.svc.example\nnameserver 192.0.2.53\noptions ndots:2\n"
	if got := execOK(t, c, ctr, "cat", "/etc/resolv.conf"); got != wantResolv {
		t.Errorf("/etc/resolv.conf %q, want %q", got, wantResolv)
	}

	// Short ids, as crictl prints them, name the pod.
	if short := podStatus(t, c, p.id[:12]); short.Id != p.id {
		t.Errorf("PodSandboxStatus by a 12-character prefix: id %q", short.Id)
	}

	if _, err := c.runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	st = podStatus(t, c, p.id)
	if st.State != runtime.PodSandboxState_SANDBOX_NOTREADY || st.GetNetwork().GetIp() != "" {
		t.Errorf("after StopPodSandbox: state %v ip %q, want SANDBOX_NOTREADY and no address", st.State, st.GetNetwork().GetIp())
	}
	if cs := containerStatus(t, c, ctr); cs.State != runtime.ContainerState_CONTAINER_EXITED {
		t.Errorf("container after StopPodSandbox: %v, want EXITED", cs.State)
	}
	if info := mustSandboxInfo(t, c, p.id); !info.NetNSClosed || exists(netns) {
		t.Errorf("after StopPodSandbox: netNamespaceClosed %v, %s exists %v", info.NetNSClosed, netns, exists(netns))
	}
	// The kubelet stops a pod again when it is unsure: not an error.
	if _, err := c.runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Errorf("StopPodSandbox a second time: %v", err)
	}

	if _, err := c.runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	_, err = c.runtime.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: p.id})
	wantCode(t, "PodSandboxStatus after RemovePodSandbox", err, codes.NotFound)
	_, err = c.runtime.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ctr})
	wantCode(t, "ContainerStatus of the removed pod's container", err, codes.NotFound)
	list, err := c.runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Items {
		if s.Id == p.id {
			t.Errorf("ListPodSandbox still lists the removed pod")
		}
	}
	// The log folder is the kubelet's: the runtime leaves it, and the container's log, alone.
	if !exists(filepath.Join(config.LogDirectory, "app", "0.log")) {
		t.Errorf("the container's log %s/app/0.log is gone after RemovePodSandbox", config.LogDirectory)
	}
	// Removing again is not an error.
	if _, err := c.runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Errorf("RemovePodSandbox a second time: %v", err)
	}
}

// TestListPodSandboxFilters: ListPodSandbox filters by id (whole or a unique prefix), by state and by
// label selector (every label must match).
func TestListPodSandboxFilters(t *testing.T) {
	c := connect(t)
	ctx := timeout(t)
	a := runPod(t, c, podConfig(t, "filter-a"))
	bConfig := podConfig(t, "filter-b")
	bConfig.Labels["tier"] = "back"
	b := runPod(t, c, bConfig)
	if _, err := c.runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: b.id}); err != nil {
		t.Fatal(err)
	}

	list := func(f *runtime.PodSandboxFilter) []string {
		t.Helper()
		resp, err := c.runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatalf("ListPodSandbox %+v: %v", f, err)
		}
		var ids []string
		for _, s := range resp.Items {
			// Only this scenario's pods: others may exist.
			if s.Id == a.id || s.Id == b.id {
				ids = append(ids, s.Id)
			}
		}
		return sorted(ids)
	}
	both := sorted([]string{a.id, b.id})
	cases := []struct {
		name   string
		filter *runtime.PodSandboxFilter
		want   []string
	}{
		{"no filter", nil, both},
		{"id", &runtime.PodSandboxFilter{Id: a.id}, []string{a.id}},
		{"id prefix", &runtime.PodSandboxFilter{Id: b.id[:12]}, []string{b.id}},
		{"ready", &runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}}, []string{a.id}},
		{"not ready", &runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_NOTREADY}}, []string{b.id}},
		{"label", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"suite": "berth-critest", "tier": "back"}}, []string{b.id}},
		{"label app", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "filter-a"}}, []string{a.id}},
		{"label no match", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"tier": "front"}}, nil},
		{"id and state disagree", &runtime.PodSandboxFilter{Id: a.id, State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_NOTREADY}}, nil},
	}
	for _, tc := range cases {
		if got := list(tc.filter); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}

	// Each listed pod carries what the kubelet matches pods by.
	resp, err := c.runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{Id: a.id}})
	if err != nil || len(resp.Items) != 1 {
		t.Fatalf("ListPodSandbox by id: %v %v", resp, err)
	}
	item := resp.Items[0]
	if item.Metadata.GetName() != "filter-a" || item.Labels["app"] != "filter-a" ||
		item.Annotations["berth.test/pod"] != "filter-a" || item.CreatedAt == 0 {
		t.Errorf("listed pod %+v", item)
	}
}
