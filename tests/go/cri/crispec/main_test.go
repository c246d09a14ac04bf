// Package crispec makes containerd's CRI build the OCI specs of pods and containers described in a
// JSON file (src/core/cri/testdata/spec_cases.json), so that scripts/cri_spec_goldens.ts can save
// them as the goldens Berth's containerSpec() and sandboxSpec() are checked against. The requests are
// the CRI's own Go types, decoded from the file with encoding/json (snake_case fields, numeric enums).
package crispec

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var (
	endpoint = flag.String("endpoint", "", "the CRI runtime's unix socket")
	cases    = flag.String("cases", "", "the JSON file of cases")
	tmp      = flag.String("tmp", "", "replaces <tmp> in the cases")
	out      = flag.String("out", "", "where to write the ids of what was made, before AWAIT collect")
)

type containerCase struct {
	Name   string          `json:"name"`
	Config json.RawMessage `json:"config"`
	// Start the container (a PID namespace target must run).
	Start bool `json:"start"`
	// The name of an earlier container of the pod whose PID namespace this one joins.
	Target string `json:"target"`
	// The creation must fail with a message containing this.
	Error string `json:"error"`
}

type specCase struct {
	Name           string          `json:"name"`
	RuntimeHandler string          `json:"runtime_handler"`
	Sandbox        json.RawMessage `json:"sandbox"`
	Containers     []containerCase `json:"containers"`
}

type made struct {
	Case       string            `json:"case"`
	Sandbox    string            `json:"sandbox"`
	Containers map[string]string `json:"containers"`
	Errors     map[string]string `json:"errors"`
}

func TestMain(m *testing.M) {
	flag.Parse()
	if *endpoint == "" || *cases == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "-endpoint, -cases and -out are required")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func await(t testing.TB, what string) {
	t.Helper()
	fmt.Printf("AWAIT %s\n", what)
	var answer string
	if _, err := fmt.Fscanln(os.Stdin, &answer); err != nil {
		t.Fatalf("waiting for the driver after %q: %v", what, err)
	}
	if answer != "ok" {
		t.Fatalf("the driver, after %q: %s", what, answer)
	}
}

// TestSpecGoldens: every case's pod and containers are made, the driver reads their specs, then all
// is removed again.
func TestSpecGoldens(t *testing.T) {
	raw, err := os.ReadFile(*cases)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []specCase `json:"cases"`
	}
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(raw), "<tmp>", *tmp)), &file); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.Dial("unix://"+*endpoint, grpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	// Closed after the pods are removed: Cleanup functions run last registered first.
	t.Cleanup(func() { conn.Close() })
	rt := runtime.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var results []made
	t.Cleanup(func() {
		// The test's context is cancelled by now.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, r := range results {
			if _, err := rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: r.Sandbox}); err != nil {
				t.Errorf("stop pod %s: %v", r.Case, err)
			}
			if _, err := rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: r.Sandbox}); err != nil {
				t.Errorf("remove pod %s: %v", r.Case, err)
			}
		}
	})
	for _, c := range file.Cases {
		sandboxConfig := &runtime.PodSandboxConfig{}
		if err := json.Unmarshal(c.Sandbox, sandboxConfig); err != nil {
			t.Fatalf("case %s: sandbox: %v", c.Name, err)
		}
		pod, err := rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: sandboxConfig, RuntimeHandler: c.RuntimeHandler})
		if err != nil {
			t.Fatalf("case %s: run pod: %v", c.Name, err)
		}
		r := made{Case: c.Name, Sandbox: pod.PodSandboxId, Containers: map[string]string{}, Errors: map[string]string{}}
		results = append(results, r)
		for _, cc := range c.Containers {
			config := &runtime.ContainerConfig{}
			if err := json.Unmarshal(cc.Config, config); err != nil {
				t.Fatalf("case %s/%s: config: %v", c.Name, cc.Name, err)
			}
			if cc.Target != "" {
				config.Linux.SecurityContext.NamespaceOptions.TargetId = r.Containers[cc.Target]
			}
			created, err := rt.CreateContainer(ctx, &runtime.CreateContainerRequest{
				PodSandboxId: pod.PodSandboxId, Config: config, SandboxConfig: sandboxConfig,
			})
			if cc.Error != "" {
				if err == nil || !strings.Contains(err.Error(), cc.Error) {
					t.Fatalf("case %s/%s: want an error with %q, got %v", c.Name, cc.Name, cc.Error, err)
				}
				r.Errors[cc.Name] = err.Error()
				continue
			}
			if err != nil {
				t.Fatalf("case %s/%s: create: %v", c.Name, cc.Name, err)
			}
			r.Containers[cc.Name] = created.ContainerId
			if cc.Start {
				if _, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
					t.Fatalf("case %s/%s: start: %v", c.Name, cc.Name, err)
				}
			}
		}
		results[len(results)-1] = r
	}
	data, err := json.Marshal(results)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	await(t, "collect")
}
