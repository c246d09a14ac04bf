package cri

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const unknownID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// inventory is what a failed call must not change: the runtime's pods, containers and images, and the
// network's address leases.
type inventory struct {
	pods, containers, images, leases []string
}

func takeInventory(t testing.TB, c clients) inventory {
	t.Helper()
	ctx := timeout(t)
	var inv inventory
	pods, err := c.runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		inv.pods = append(inv.pods, p.Id+"/"+p.State.String())
	}
	ctrs, err := c.runtime.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ctr := range ctrs.Containers {
		inv.containers = append(inv.containers, ctr.Id+"/"+ctr.State.String())
	}
	images, err := c.image.ListImages(ctx, &runtime.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range images.Images {
		inv.images = append(inv.images, img.Id)
	}
	entries, _ := os.ReadDir(filepath.Join(*ipamDir, *cniNetwork))
	for _, e := range entries {
		// host-local's own bookkeeping (made with the first lease, never removed) is no lease.
		if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
			inv.leases = append(inv.leases, e.Name())
		}
	}
	inv.pods, inv.containers, inv.images = sorted(inv.pods), sorted(inv.containers), sorted(inv.images)
	return inv
}

func sameInventory(t testing.TB, c clients, what string, before inventory) {
	t.Helper()
	if after := takeInventory(t, c); !reflect.DeepEqual(after, before) {
		t.Errorf("%s changed what the runtime holds:\nbefore %+v\nafter  %+v", what, before, after)
	}
}

// TestUnknownSandbox: calls naming a pod that does not exist fail with NotFound (removing one
// succeeds, as the kubelet expects) and change nothing.
func TestUnknownSandbox(t *testing.T) {
	c := connect(t)
	ctx := timeout(t)
	pull(t, c, *image)
	before := takeInventory(t, c)
	_, err := c.runtime.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: unknownID})
	wantCode(t, "PodSandboxStatus of an unknown pod", err, codes.NotFound)
	_, err = c.runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: unknownID})
	wantCode(t, "StopPodSandbox of an unknown pod", err, codes.NotFound)
	if _, err := c.runtime.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: unknownID}); err != nil {
		t.Errorf("RemovePodSandbox of an unknown pod: %v, want success", err)
	}
	_, err = c.runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{
		PodSandboxId: unknownID, Config: containerConfig("orphan", "true"), SandboxConfig: podConfig(t, "nowhere"),
	})
	wantCode(t, "CreateContainer in an unknown pod", err, codes.NotFound)
	_, err = c.runtime.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: unknownID, Port: []int32{80}})
	wantCode(t, "PortForward to an unknown pod", err, codes.NotFound)
	_, err = c.runtime.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: unknownID})
	wantCode(t, "ContainerStatus of an unknown container", err, codes.NotFound)
	_, err = c.runtime.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: unknownID})
	wantCode(t, "StartContainer of an unknown container", err, codes.NotFound)
	_, err = c.runtime.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: unknownID})
	wantCode(t, "StopContainer of an unknown container", err, codes.NotFound)
	if _, err := c.runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: unknownID}); err != nil {
		t.Errorf("RemoveContainer of an unknown container: %v, want success", err)
	}
	_, err = c.runtime.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: unknownID, Cmd: []string{"true"}})
	wantCode(t, "ExecSync in an unknown container", err, codes.NotFound)
	_, err = c.runtime.Exec(ctx, &runtime.ExecRequest{ContainerId: unknownID, Cmd: []string{"true"}, Stdout: true})
	wantCode(t, "Exec in an unknown container", err, codes.NotFound)
	_, err = c.runtime.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: unknownID})
	wantCode(t, "ContainerStats of an unknown container", err, codes.NotFound)
	list, err := c.runtime.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: unknownID}})
	if err != nil || len(list.Containers) != 0 {
		t.Errorf("ListContainers of an unknown pod: %v %v, want an empty list", list, err)
	}
	sameInventory(t, c, "calls on unknown ids", before)
}

// TestContainerInStoppedSandbox: a stopped pod takes no new container, and a container created
// before the pod stopped cannot start; neither leaves anything.
func TestContainerInStoppedSandbox(t *testing.T) {
	c := connect(t)
	ctx := timeout(t)
	p := runPod(t, c, podConfig(t, "stopped"))
	early := createContainer(t, c, p, containerConfig("early", "true"))
	if _, err := c.runtime.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatal(err)
	}
	before := takeInventory(t, c)
	_, err := c.runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{
		PodSandboxId: p.id, Config: containerConfig("late", "true"), SandboxConfig: p.config,
	})
	wantCode(t, "CreateContainer in a stopped pod", err, codes.NotFound)
	_, err = c.runtime.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: early})
	wantCode(t, "StartContainer in a stopped pod", err, codes.Unknown)
	// The kubelet sees why: the container exited without running, as StartError with exit code 128.
	st := containerStatus(t, c, early)
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 128 || st.Reason != "StartError" ||
		!strings.Contains(st.Message, "is not running") {
		t.Errorf("the container after the failed start: %v exit %d reason %q message %q, want EXITED 128 StartError",
			st.State, st.ExitCode, st.Reason, st.Message)
	}
	after := takeInventory(t, c)
	before.containers, after.containers = nil, nil
	if !reflect.DeepEqual(after, before) {
		t.Errorf("the failed calls changed the runtime:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestBadImageReference: pulls of a malformed reference, of a repository the registry does not have,
// and a container of an image that is not pulled fail with clear codes and change nothing.
func TestBadImageReference(t *testing.T) {
	c := connect(t)
	ctx := timeout(t)
	p := runPod(t, c, podConfig(t, "badimage"))
	before := takeInventory(t, c)
	_, err := c.image.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "Not A Valid/Reference!"}})
	wantCode(t, "PullImage of a malformed reference", err, codes.Unknown)
	missing := repository(*image) + "-missing:v1"
	_, err = c.image.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: missing}})
	wantCode(t, "PullImage of a repository the registry lacks", err, codes.NotFound)
	st, err := c.image.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: missing}})
	if err != nil || st.Image != nil {
		t.Errorf("ImageStatus of an image never pulled: %v %v, want no image and no error", st, err)
	}
	cfg := containerConfig("noimage", "true")
	cfg.Image = &runtime.ImageSpec{Image: missing}
	_, err = c.runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.config})
	wantCode(t, "CreateContainer of an image not pulled", err, codes.NotFound)
	sameInventory(t, c, "bad image references", before)
}

// TestNameConflicts: a second pod with the same metadata, or a second container with the same name and
// attempt in a pod, is refused while the first exists; nothing is left of the refused one.
func TestNameConflicts(t *testing.T) {
	c := connect(t)
	ctx := timeout(t)
	config := podConfig(t, "named")
	p := runPod(t, c, config)
	createContainer(t, c, p, containerConfig("twin", "true"))
	before := takeInventory(t, c)
	resp, err := c.runtime.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: config})
	if err == nil {
		t.Cleanup(func() { removePod(t, c, resp.PodSandboxId) })
	}
	wantCode(t, "RunPodSandbox with the metadata of a running pod", err, codes.Unknown)
	twin, err := c.runtime.CreateContainer(ctx, &runtime.CreateContainerRequest{
		PodSandboxId: p.id, Config: containerConfig("twin", "true"), SandboxConfig: p.config,
	})
	if err == nil {
		t.Cleanup(func() { c.runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: twin.ContainerId}) })
	}
	wantCode(t, "CreateContainer with the name of an existing container", err, codes.Unknown)
	sameInventory(t, c, "name conflicts", before)
}

// TestUnknownRuntimeHandler: a pod asking for a runtime handler that is not configured is refused before
// any network is set up.
func TestUnknownRuntimeHandler(t *testing.T) {
	c := connect(t)
	before := takeInventory(t, c)
	resp, err := c.runtime.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{
		Config: podConfig(t, "nohandler"), RuntimeHandler: "no-such-handler",
	})
	if err == nil {
		t.Cleanup(func() { removePod(t, c, resp.PodSandboxId) })
	}
	wantCode(t, "RunPodSandbox with an unknown runtime handler", err, codes.Unknown)
	sameInventory(t, c, "an unknown runtime handler", before)
}
