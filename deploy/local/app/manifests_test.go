package app_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type manifest struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Metadata   map[string]any `yaml:"metadata"`
	Spec       map[string]any `yaml:"spec"`
}

// The Kubernetes manifests parse, name what they describe, and keep Base A
// reachable only from the gateway and the auditors (docker and kubectl are
// not available here: this is the offline check).
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../../k8s/*.yaml")
	if len(files) < 6 {
		t.Fatalf("manifests missing: %v", files)
	}
	kinds := map[string][]string{}
	var baseAPolicy map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var m manifest
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			name, _ := m.Metadata["name"].(string)
			if m.APIVersion == "" || m.Kind == "" || name == "" {
				t.Fatalf("%s: a document without apiVersion, kind or name", f)
			}
			if m.Kind != "Namespace" && m.Metadata["namespace"] != "strata" {
				t.Errorf("%s %s: not in the strata namespace", m.Kind, name)
			}
			kinds[m.Kind] = append(kinds[m.Kind], name)
			if m.Kind == "NetworkPolicy" && name == "base-a-internal-only" {
				baseAPolicy = m.Spec
			}
		}
	}
	for kind, want := range map[string][]string{
		"Deployment":              {"base-a", "gateway"},
		"StatefulSet":             {"base-b", "base-c"},
		"HorizontalPodAutoscaler": {"gateway", "base-b", "base-c"},
		"NetworkPolicy":           {"default-deny-ingress", "base-a-internal-only"},
	} {
		for _, n := range want {
			if !slices.Contains(kinds[kind], n) {
				t.Errorf("no %s %s", kind, n)
			}
		}
	}
	out, _ := yaml.Marshal(baseAPolicy)
	s := string(out)
	if !strings.Contains(s, "app: gateway") || !strings.Contains(s, "app: strata-audit") || strings.Count(s, "app:") != 3 {
		t.Fatalf("base-a policy admits more than the gateway and auditors:\n%s", s)
	}
	if _, err := os.Stat("../../docker/Dockerfile"); err != nil {
		t.Fatal(err)
	}
}
