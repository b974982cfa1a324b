package validate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	kservev1beta1 "github.com/kserve/kserve/pkg/apis/serving/v1beta1"
	trainerv1alpha1 "github.com/kubeflow/trainer/v2/pkg/apis/trainer/v1alpha1"
	trainerwebhooks "github.com/kubeflow/trainer/v2/pkg/webhooks"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	istiosecurity "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kyamlutil "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// Bundle holds decoded objects by name, one map per kind we ship.
type Bundle struct {
	ServiceAccounts       map[string]*corev1.ServiceAccount
	ConfigMaps            map[string]*corev1.ConfigMap
	Services              map[string]*corev1.Service
	Deployments           map[string]*appsv1.Deployment
	InferenceServices     map[string]*kservev1beta1.InferenceService
	AuthorizationPolicies map[string]*istiosecurity.AuthorizationPolicy
	PeerAuthentications   map[string]*istiosecurity.PeerAuthentication
	Roles                 map[string]*rbacv1.Role
	RoleBindings          map[string]*rbacv1.RoleBinding
	TrainingRuntimes      map[string]*trainerv1alpha1.TrainingRuntime
	// Meta is every object's metadata, keyed "Kind/name".
	Meta map[string]metav1.ObjectMeta
}

// NewBundle returns an empty bundle.
func NewBundle() *Bundle {
	return &Bundle{
		ServiceAccounts:       map[string]*corev1.ServiceAccount{},
		ConfigMaps:            map[string]*corev1.ConfigMap{},
		Services:              map[string]*corev1.Service{},
		Deployments:           map[string]*appsv1.Deployment{},
		InferenceServices:     map[string]*kservev1beta1.InferenceService{},
		AuthorizationPolicies: map[string]*istiosecurity.AuthorizationPolicy{},
		PeerAuthentications:   map[string]*istiosecurity.PeerAuthentication{},
		Roles:                 map[string]*rbacv1.Role{},
		RoleBindings:          map[string]*rbacv1.RoleBinding{},
		TrainingRuntimes:      map[string]*trainerv1alpha1.TrainingRuntime{},
		Meta:                  map[string]metav1.ObjectMeta{},
	}
}

// Keys lists the bundle's objects as "Kind/name", sorted.
func (b *Bundle) Keys() []string {
	var out []string
	for k := range b.Meta {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Add decodes one or more YAML documents strictly into the real Go types
// and adds them: an unknown or misspelt field, a duplicate key or a value of
// the wrong type is an error, as is a kind we do not ship.
func (b *Bundle) Add(data []byte, source string) error {
	docs, err := SplitYAML(data)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	for i, doc := range docs {
		if err := b.add(doc); err != nil {
			return fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
	}
	return nil
}

// SplitYAML splits a multi-document YAML stream, dropping empty documents.
func SplitYAML(data []byte) ([][]byte, error) {
	r := kyamlutil.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("split yaml: %w", err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			out = append(out, doc)
		}
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			b.Write(l)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func (b *Bundle) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return fmt.Errorf("read apiVersion/kind: %w", err)
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	var meta metav1.ObjectMeta
	switch gvk {
	case "v1/ServiceAccount":
		o := &corev1.ServiceAccount{}
		if err := strict(doc, o); err != nil {
			return err
		}
		meta, b.ServiceAccounts[o.Name] = o.ObjectMeta, o
	case "v1/ConfigMap":
		o := &corev1.ConfigMap{}
		if err := strict(doc, o); err != nil {
			return err
		}
		meta, b.ConfigMaps[o.Name] = o.ObjectMeta, o
	case "v1/Service":
		o := &corev1.Service{}
		if err := strict(doc, o); err != nil {
			return err
		}
		meta, b.Services[o.Name] = o.ObjectMeta, o
	case "apps/v1/Deployment":
		o := &appsv1.Deployment{}
		if err := strict(doc, o); err != nil {
			return err
		}
		meta, b.Deployments[o.Name] = o.ObjectMeta, o
	case "serving.kserve.io/v1beta1/InferenceService":
		o := &kservev1beta1.InferenceService{}
		if err := strict(doc, o); err != nil {
			return err
		}
		meta, b.InferenceServices[o.Name] = o.ObjectMeta, o
	case "security.istio.io/v1/AuthorizationPolicy":
		o := &istiosecurity.AuthorizationPolicy{}
		if err := strictIstio(doc, &o.TypeMeta, &o.ObjectMeta, &o.Spec); err != nil {
			return err
		}
		meta, b.AuthorizationPolicies[o.Name] = o.ObjectMeta, o
	case "security.istio.io/v1/PeerAuthentication":
		o := &istiosecurity.PeerAuthentication{}
		if err := strictIstio(doc, &o.TypeMeta, &o.ObjectMeta, &o.Spec); err != nil {
			return err
		}
		meta, b.PeerAuthentications[o.Name] = o.ObjectMeta, o
	case "rbac.authorization.k8s.io/v1/Role":
		o := &rbacv1.Role{}
		if err := strict(doc, o); err != nil {
			return err
		}
		meta, b.Roles[o.Name] = o.ObjectMeta, o
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		o := &rbacv1.RoleBinding{}
		if err := strict(doc, o); err != nil {
			return err
		}
		meta, b.RoleBindings[o.Name] = o.ObjectMeta, o
	case "trainer.kubeflow.org/v1alpha1/TrainingRuntime":
		o := &trainerv1alpha1.TrainingRuntime{}
		if err := strict(doc, o); err != nil {
			return err
		}
		// The trainer's validating webhook for runtimes.
		if _, err := (&trainerwebhooks.TrainingRuntimeWebhook{}).ValidateCreate(context.Background(), o); err != nil {
			return fmt.Errorf("TrainingRuntime %s: Kubeflow Trainer's webhook refuses it: %w", o.Name, err)
		}
		meta, b.TrainingRuntimes[o.Name] = o.ObjectMeta, o
	default:
		return fmt.Errorf("kind %s is not one kfllm ships (or its apiVersion is wrong)", gvk)
	}
	if meta.Name == "" {
		return fmt.Errorf("%s has no metadata.name", tm.Kind)
	}
	key := tm.Kind + "/" + meta.Name
	if _, dup := b.Meta[key]; dup {
		return fmt.Errorf("%s appears twice", key)
	}
	b.Meta[key] = meta
	return nil
}

// strict decodes YAML into o as the API server's strict field validation
// does: keys match field names case-sensitively, and an unknown field or a
// duplicate key is an error.
func strict(doc []byte, o any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return fmt.Errorf("strict decode into %T: %w", o, err)
	}
	serrs, err := sigsjson.UnmarshalStrict(j, o)
	if err != nil {
		return fmt.Errorf("strict decode into %T: %w", o, err)
	}
	if len(serrs) > 0 {
		return fmt.Errorf("strict decode into %T: %w", o, errors.Join(serrs...))
	}
	return nil
}

// strictIstio decodes an Istio object: the envelope strictly with
// encoding/json, the spec strictly with protojson (Istio's own JSON
// unmarshaler for its specs allows unknown fields, so it cannot be used).
func strictIstio(doc []byte, tm *metav1.TypeMeta, om *metav1.ObjectMeta, spec proto.Message) error {
	var env struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            json.RawMessage   `json:"spec"`
	}
	if err := strict(doc, &env); err != nil {
		return err
	}
	*tm, *om = env.TypeMeta, env.Metadata
	if len(env.Spec) == 0 {
		return fmt.Errorf("%s %s has no spec", tm.Kind, om.Name)
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(env.Spec, spec); err != nil {
		return fmt.Errorf("strict decode spec into %T: %w", spec, err)
	}
	return nil
}

// DecodeKustomization decodes a kustomization.yaml strictly into kustomize's
// own type.
func DecodeKustomization(data []byte) (*types.Kustomization, error) {
	k := &types.Kustomization{}
	if err := strict(data, k); err != nil {
		return nil, fmt.Errorf("kustomization: %w", err)
	}
	return k, nil
}

// ManifestFiles lists the YAML files of a manifests directory, skipping the
// validate module.
func ManifestFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "validate" || strings.HasPrefix(d.Name(), ".")) && p != dir {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list manifests in %s: %w", dir, err)
	}
	sort.Strings(out)
	return out, nil
}
