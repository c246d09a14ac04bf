package cri

import (
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestNothingLeft runs after the scenarios: each removed what it made, so the runtime holds no pod
// and no container. Whatever it finds is removed (and fails the test), so that the daemon can stop
// clean.
func TestNothingLeft(t *testing.T) {
	c := connect(t)
	ctx := timeout(t)
	ctrs, err := c.runtime.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ctr := range ctrs.Containers {
		t.Errorf("container left: %s %s (pod %s) %v", ctr.Id, ctr.Metadata.GetName(), ctr.PodSandboxId, ctr.State)
		if _, err := c.runtime.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: ctr.Id}); err != nil {
			t.Errorf("RemoveContainer %s: %v", ctr.Id, err)
		}
	}
	pods, err := c.runtime.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		t.Errorf("pod left: %s %s %v", p.Id, p.Metadata.GetName(), p.State)
		removePod(t, c, p.Id)
	}
}
