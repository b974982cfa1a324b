package rehearse

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The parts of a pod spec the rehearsal runs (core/v1 field names), read
// from manifests/api/inferenceservice.yaml and manifests/ui/deployment.yaml.

type podSpec struct {
	SecurityContext *podSecurity `yaml:"securityContext"`
	Containers      []containerSpec
	Volumes         []struct {
		Name     string
		EmptyDir *struct{} `yaml:"emptyDir"`
	}
}

type podSecurity struct {
	RunAsNonRoot *bool `yaml:"runAsNonRoot"`
	RunAsUser    *int  `yaml:"runAsUser"`
	RunAsGroup   *int  `yaml:"runAsGroup"`
}

type containerSpec struct {
	Name    string
	Image   string
	Command []string
	Args    []string
	Env     []struct {
		Name      string
		Value     string
		ValueFrom *struct {
			ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
			SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	EnvFrom []struct {
		SecretRef    *objRef `yaml:"secretRef"`
		ConfigMapRef *objRef `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	Resources struct {
		Limits map[string]string
	}
	StartupProbe    *probe `yaml:"startupProbe"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		RunAsUser                *int  `yaml:"runAsUser"`
		Capabilities             *struct {
			Drop []string
		}
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type keyRef struct {
	Name, Key string
	Optional  bool
}

type objRef struct {
	Name     string
	Optional bool
}

type probe struct {
	HTTPGet *struct {
		Path string
		Port yaml.Node
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

// readDoc reads one YAML object from a file into v.
func readDoc(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil {
		return fmt.Errorf("read manifest %s: %w", path, err)
	}
	return nil
}

// configMap reads a ConfigMap's data.
func configMap(path string) (map[string]string, error) {
	var cm struct {
		Kind     string
		Metadata struct{ Name string }
		Data     map[string]string
	}
	if err := readDoc(path, &cm); err != nil {
		return nil, err
	}
	if cm.Kind != "ConfigMap" {
		return nil, fmt.Errorf("%s: kind %q, want ConfigMap", path, cm.Kind)
	}
	return cm.Data, nil
}

// inferenceService reads the predictor of an InferenceService.
func inferenceService(dir string) (*podSpec, error) {
	var isvc struct {
		Kind string
		Spec struct {
			Predictor podSpec
		}
	}
	p := filepath.Join(dir, "inferenceservice.yaml")
	if err := readDoc(p, &isvc); err != nil {
		return nil, err
	}
	if isvc.Kind != "InferenceService" || len(isvc.Spec.Predictor.Containers) != 1 {
		return nil, fmt.Errorf("%s: want an InferenceService with one predictor container", p)
	}
	return &isvc.Spec.Predictor, nil
}

// deployment reads a Deployment's pod template.
func deployment(dir string) (*podSpec, error) {
	var d struct {
		Kind string
		Spec struct {
			Template struct{ Spec podSpec }
		}
	}
	p := filepath.Join(dir, "deployment.yaml")
	if err := readDoc(p, &d); err != nil {
		return nil, err
	}
	if d.Kind != "Deployment" || len(d.Spec.Template.Spec.Containers) != 1 {
		return nil, fmt.Errorf("%s: want a Deployment with one container", p)
	}
	return &d.Spec.Template.Spec, nil
}

// env resolves a container's environment as the kubelet does: values,
// ConfigMap keys, Secret keys (secrets by name, key to value) and envFrom
// secrets; a missing key that is not optional is an error, as a pod with
// it does not start.
func (c *containerSpec) env(configMaps, secrets map[string]map[string]string) ([]string, error) {
	var env []string
	for _, f := range c.EnvFrom {
		ref, objs, kind := f.SecretRef, secrets, "secret"
		if ref == nil {
			ref, objs, kind = f.ConfigMapRef, configMaps, "configmap"
		}
		obj, ok := objs[ref.Name]
		if !ok {
			if ref.Optional {
				continue
			}
			return nil, fmt.Errorf("envFrom %s %s: not found", kind, ref.Name)
		}
		for _, k := range sortedKeys(obj) {
			env = append(env, k+"="+obj[k])
		}
	}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			ref, objs, kind := e.ValueFrom.ConfigMapKeyRef, configMaps, "configmap"
			if ref == nil {
				ref, objs, kind = e.ValueFrom.SecretKeyRef, secrets, "secret"
			}
			if ref == nil {
				return nil, fmt.Errorf("env %s: only configMapKeyRef and secretKeyRef are supported", e.Name)
			}
			val, ok := objs[ref.Name][ref.Key]
			if !ok {
				if ref.Optional {
					continue
				}
				return nil, fmt.Errorf("env %s: %s %s has no key %s", e.Name, kind, ref.Name, ref.Key)
			}
			v = val
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

var varRefRE = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(VAR) in s with the container's variables, as the
// kubelet expands command and args; an unknown one stays as written.
func expand(s string, env []string) string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return varRefRE.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// port resolves a probe's port, a number or a container port's name.
func (c *containerSpec) port(n yaml.Node) (int, error) {
	if p, err := strconv.Atoi(n.Value); err == nil {
		return p, nil
	}
	for _, p := range c.Ports {
		if p.Name == n.Value {
			return p.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("container %s has no port %q", c.Name, n.Value)
}

// checkSecurity checks that the manifest asks for what the rehearsal's
// bundle enforces: the image's user, a read-only root, no privilege
// escalation, no capabilities.
func (p *podSpec) checkSecurity(c *containerSpec) error {
	var errs []error
	if p.SecurityContext == nil || p.SecurityContext.RunAsUser == nil || *p.SecurityContext.RunAsUser != ImageUser {
		errs = append(errs, fmt.Errorf("pod securityContext.runAsUser is not %d", ImageUser))
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		errs = append(errs, errors.New("no container securityContext"))
	default:
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			errs = append(errs, errors.New("readOnlyRootFilesystem is not true"))
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			errs = append(errs, errors.New("allowPrivilegeEscalation is not false"))
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			errs = append(errs, errors.New("capabilities do not drop ALL"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("container %s securityContext: %w", c.Name, err)
	}
	return nil
}

// emptyDirs are the container's mounts of emptyDir volumes.
func (p *podSpec) emptyDirs(c *containerSpec) ([]string, error) {
	empty := map[string]bool{}
	for _, v := range p.Volumes {
		empty[v.Name] = v.EmptyDir != nil
	}
	var out []string
	for _, m := range c.VolumeMounts {
		if !empty[m.Name] {
			return nil, fmt.Errorf("container %s: volume %s is not an emptyDir (not supported by the rehearsal)", c.Name, m.Name)
		}
		out = append(out, m.MountPath)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var quantityRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$`)

// memoryBytes reads a Kubernetes memory quantity ("256Mi", "24Gi", "1G",
// "1048576").
func memoryBytes(q string) (int64, error) {
	m := quantityRE.FindStringSubmatch(q)
	if m == nil {
		return 0, fmt.Errorf("memory quantity %q: want a number with an optional Ki, Mi, Gi, Ti, k, M, G or T suffix", q)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("memory quantity %q: %w", q, err)
	}
	mult := map[string]float64{"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m[2]]
	return int64(v * mult), nil
}
