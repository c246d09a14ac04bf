package cri

import (
	"encoding/json"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestVersion: the runtime names itself and the CRI version it speaks, as `crictl version` shows.
func TestVersion(t *testing.T) {
	c := connect(t)
	v, err := c.runtime.Version(timeout(t), &runtime.VersionRequest{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("version: %+v", v)
	// "0.1.0" is the version of the kubelet's runtime API the CRI plugins all report.
	if v.Version != "0.1.0" || v.RuntimeApiVersion != "v1" || v.RuntimeName == "" || v.RuntimeVersion == "" {
		t.Fatalf("version %+v", v)
	}
}

// TestStatus: the kubelet's readiness check. The runtime is ready, and so is the network once the CNI
// config is loaded; the verbose form carries the CNI config it loaded and its own config.
func TestStatus(t *testing.T) {
	c := connect(t)
	resp, err := c.runtime.Status(timeout(t), &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	conditions := map[string]*runtime.RuntimeCondition{}
	for _, cond := range resp.Status.GetConditions() {
		conditions[cond.Type] = cond
		t.Logf("condition %s=%v reason=%q message=%q", cond.Type, cond.Status, cond.Reason, cond.Message)
	}
	for _, want := range []string{runtime.RuntimeReady, runtime.NetworkReady} {
		cond := conditions[want]
		if cond == nil || !cond.Status {
			t.Errorf("condition %s: %+v, want status true", want, cond)
		}
	}
	if len(conditions) != 2 {
		t.Errorf("%d conditions, want exactly RuntimeReady and NetworkReady", len(conditions))
	}
	for k, v := range resp.Info {
		if len(v) > 300 {
			v = v[:300] + "…"
		}
		t.Logf("verbose info[%s] = %s", k, v)
	}

	// What `crictl info` prints: the CNI config the runtime uses, and the runtime's CRI config.
	var cni struct {
		PluginDirs []string `json:"PluginDirs"`
		Networks   []struct {
			Config struct {
				Name    string `json:"Name"`
				Plugins []struct {
					Network struct {
						Type string `json:"type"`
					} `json:"Network"`
				} `json:"Plugins"`
			} `json:"Config"`
			IFName string `json:"IFName"`
		} `json:"Networks"`
	}
	if err := json.Unmarshal([]byte(resp.Info["cniconfig"]), &cni); err != nil {
		t.Fatalf("info[cniconfig]: %v: %q", err, resp.Info["cniconfig"])
	}
	var names []string
	for _, n := range cni.Networks {
		names = append(names, n.Config.Name+"/"+n.IFName)
	}
	// containerd always puts its loopback network first, then the conflist (eth0).
	if len(names) != 2 || names[0] != "cni-loopback/lo" || names[1] != *cniNetwork+"/eth0" {
		t.Errorf("cniconfig networks %v, want [cni-loopback/lo %s/eth0]", names, *cniNetwork)
	}
	if len(cni.PluginDirs) != 1 || cni.PluginDirs[0] != "/usr/lib/cni" {
		t.Errorf("cniconfig PluginDirs %v, want [/usr/lib/cni]", cni.PluginDirs)
	}
	var config struct {
		SandboxImage string `json:"sandboxImage"`
		CniConfig    struct {
			NetworkPluginBinDir  string `json:"binDir"`
			NetworkPluginConfDir string `json:"confDir"`
		} `json:"cni"`
		StreamServerAddress string `json:"streamServerAddress"`
		Registry            struct {
			Mirrors map[string]struct {
				Endpoints []string `json:"endpoint"`
			} `json:"mirrors"`
		} `json:"registry"`
	}
	if err := json.Unmarshal([]byte(resp.Info["config"]), &config); err != nil {
		t.Fatalf("info[config]: %v: %q", err, resp.Info["config"])
	}
	if config.SandboxImage != *pauseImage {
		t.Errorf("config sandboxImage %q, want %q", config.SandboxImage, *pauseImage)
	}
	if config.CniConfig.NetworkPluginBinDir != "/usr/lib/cni" {
		t.Errorf("config cni binDir %q", config.CniConfig.NetworkPluginBinDir)
	}
	if config.StreamServerAddress != "127.0.0.1" {
		t.Errorf("config streamServerAddress %q", config.StreamServerAddress)
	}
	if status := resp.Info["lastCNILoadStatus"]; status != "OK" {
		t.Errorf("lastCNILoadStatus %q, want OK", status)
	}
}
