// Command kindcheck decodes a kind cluster config strictly with kind's own
// v1alpha4 types (unknown or mistyped fields fail), applies kind's defaults, and
// repeats the node and port-mapping checks kind makes before it creates a
// cluster. kind's full validator is internal to its module, so it cannot be
// imported; these are the checks from its validate.go that apply to a file.
//
//	go run ./hack/kindcheck kind-config.yaml
package main

import (
	"fmt"
	"net"
	"os"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		return fmt.Errorf("not a kind v1alpha4 Cluster: %w", err)
	}
	if cfg.Kind != "Cluster" || cfg.APIVersion != "kind.x-k8s.io/v1alpha4" {
		return fmt.Errorf("kind/apiVersion must be Cluster/kind.x-k8s.io/v1alpha4, got %s/%s", cfg.Kind, cfg.APIVersion)
	}
	v1alpha4.SetDefaultsCluster(&cfg)
	controlPlanes := 0
	bound := map[string]bool{}
	for i, node := range cfg.Nodes {
		switch node.Role {
		case v1alpha4.ControlPlaneRole:
			controlPlanes++
		case v1alpha4.WorkerRole:
		default:
			return fmt.Errorf("node %d: %q is not a valid node role", i, node.Role)
		}
		for _, m := range node.ExtraPortMappings {
			for _, port := range []int32{m.HostPort, m.ContainerPort} {
				if port < -1 || port > 65535 {
					return fmt.Errorf("node %d: invalid port number %d", i, port)
				}
			}
			if m.ListenAddress != "" && net.ParseIP(m.ListenAddress) == nil {
				return fmt.Errorf("node %d: invalid listen address %q", i, m.ListenAddress)
			}
			key := fmt.Sprintf("%s:%d/%s", m.ListenAddress, m.HostPort, m.Protocol)
			if m.HostPort > 0 && bound[key] {
				return fmt.Errorf("node %d: host port %s is mapped twice", i, key)
			}
			bound[key] = true
		}
	}
	if controlPlanes < 1 {
		return fmt.Errorf("must have at least one control-plane node")
	}
	fmt.Printf("ok: %d nodes (%d control-plane), name %q\n", len(cfg.Nodes), controlPlanes, cfg.Name)
	return nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kindcheck FILE")
		os.Exit(2)
	}
	if err := check(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "kindcheck:", err)
		os.Exit(1)
	}
}
