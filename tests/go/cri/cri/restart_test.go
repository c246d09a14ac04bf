package cri

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRestartRecovery: with two pods running, the daemon is killed (SIGKILL) and started again on the
// same folders. The pods and containers are listed as before (same ids, states, addresses), exec still
// reaches the containers, a container still logs, and a later StopPodSandbox still tears the network
// down.
func TestRestartRecovery(t *testing.T) {
	c := connect(t)
	type running struct {
		pod   pod
		ctr   string
		ip    string
		netns string
		veth  string
	}
	var all []running
	for _, name := range []string{"restart-a", "restart-b"} {
		p := runPod(t, c, podConfig(t, name))
		ctr := runContainer(t, c, p, containerConfig("ticker", `trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1 & wait $!; done`))
		all = append(all, running{
			pod: p, ctr: ctr,
			ip:    podStatus(t, c, p.id).GetNetwork().GetIp(),
			netns: mustSandboxInfo(t, c, p.id).netnsPath(),
			veth:  hostVeth(t, c, ctr),
		})
	}
	podsBefore := takeInventory(t, c)

	await(t, "restart-daemon")
	c = connect(t)

	if after := takeInventory(t, c); !reflect.DeepEqual(after.pods, podsBefore.pods) || !reflect.DeepEqual(after.containers, podsBefore.containers) {
		t.Errorf("after the restart:\npods %v\ncontainers %v\nbefore:\npods %v\ncontainers %v", after.pods, after.containers, podsBefore.pods, podsBefore.containers)
	}
	for _, r := range all {
		st := podStatus(t, c, r.pod.id)
		if st.State != runtime.PodSandboxState_SANDBOX_READY || st.GetNetwork().GetIp() != r.ip {
			t.Errorf("pod %s after the restart: %v ip %q, want READY %q", r.pod.config.Metadata.Name, st.State, st.GetNetwork().GetIp(), r.ip)
		}
		if info := mustSandboxInfo(t, c, r.pod.id); info.netnsPath() != r.netns || info.Status != "running" {
			t.Errorf("pod %s after the restart: netns %q status %q", r.pod.config.Metadata.Name, info.netnsPath(), info.Status)
		}
		if cs := containerStatus(t, c, r.ctr); cs.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container in %s after the restart: %v", r.pod.config.Metadata.Name, cs.State)
		}
		if out := execOK(t, c, r.ctr, "cat", "/etc/hostname"); out != r.pod.config.Metadata.Name+"\n" {
			t.Errorf("exec after the restart: %q", out)
		}
	}
	// The log keeps growing: the runtime took the container's output back.
	logPath := filepath.Join(all[0].pod.config.LogDirectory, "ticker", "0.log")
	n := len(readLog(t, logPath))
	poll(t, "the container's log grows after the restart", 10*time.Second, func() bool { return len(readLog(t, logPath)) > n+1 })

	// The network of a recovered pod is torn down as any other's.
	r := all[0]
	if _, err := c.runtime.StopPodSandbox(timeout(t), &runtime.StopPodSandboxRequest{PodSandboxId: r.pod.id}); err != nil {
		t.Fatalf("StopPodSandbox after the restart: %v", err)
	}
	if exists(r.netns) || exists("/sys/class/net/"+r.veth) || exists(filepath.Join(*ipamDir, *cniNetwork, r.ip)) {
		t.Errorf("after StopPodSandbox of a recovered pod: netns %v veth %v lease %v", exists(r.netns), exists("/sys/class/net/"+r.veth),
			exists(filepath.Join(*ipamDir, *cniNetwork, r.ip)))
	}
	if rules := iptablesLines(t, r.ip, r.pod.id); len(rules) != 0 {
		t.Errorf("iptables rules left after StopPodSandbox of a recovered pod: %v", rules)
	}
	if cs := containerStatus(t, c, r.ctr); cs.State != runtime.ContainerState_CONTAINER_EXITED {
		t.Errorf("the recovered container after StopPodSandbox: %v", cs.State)
	}
}
