package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/model"
)

// AdapterRef is one --lora-adapter: a LoRA adapter served under Name beside
// the base model, from Ref, a directory or a Hub repo OWNER/NAME[@revision].
type AdapterRef struct {
	Name, Ref string
}

// ParseAdapterRefs reads NAME=REF items (the repeatable --lora-adapter
// flag, then LORA_ADAPTERS split at commas). Names must be unique and
// must not be base, the base model's name.
func ParseAdapterRefs(items []string, base string) ([]AdapterRef, error) {
	var out []AdapterRef
	seen := map[string]bool{}
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		name, ref, ok := strings.Cut(it, "=")
		name, ref = strings.TrimSpace(name), strings.TrimSpace(ref)
		switch {
		case !ok || name == "" || ref == "":
			return nil, fmt.Errorf("lora adapter %q: want NAME=DIR or NAME=OWNER/NAME[@revision]", it)
		case strings.ContainsAny(name, "/:"):
			return nil, fmt.Errorf("lora adapter %q: the name may not hold / or : (it is a route segment)", it)
		case name == base:
			return nil, fmt.Errorf("lora adapter %q: %s is the base model's name", it, name)
		case seen[name]:
			return nil, fmt.Errorf("lora adapter %q: the name %s is given twice", it, name)
		}
		seen[name] = true
		out = append(out, AdapterRef{Name: name, Ref: ref})
	}
	return out, nil
}

// hasWeights reports whether dir holds a full model (config.json and
// safetensors weights), as a LoRA finetune's output does beside its
// adapter.
func hasWeights(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		return false
	}
	for _, f := range []string{"model.safetensors", "model.safetensors.index.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// resolveRef is a model reference (hub.ParseRef: a directory, else a Hub
// repo OWNER/NAME[@revision] downloaded through the Hub client) as a local
// directory; revision, when not "", is the one to use when ref names none
// (adapter_config.json's revision beside base_model_name_or_path).
func resolveRef(ctx context.Context, o Options, s, revision string) (string, error) {
	ref, err := hub.ParseRef(s)
	if err != nil {
		return "", err
	}
	if ref.IsLocal() {
		return ref.Dir, nil
	}
	if ref.Revision == "" {
		ref.Revision = revision
	}
	dir, _, err := snapshot(ctx, o, ref)
	return dir, err
}

// baseOf is the base model directory of the adapter in dir: dir itself
// when it holds the weights (a LoRA finetune's output), else the
// adapter's base_model_name_or_path.
func baseOf(ctx context.Context, o Options, dir string) (string, error) {
	if hasWeights(dir) {
		return dir, nil
	}
	cfg, err := model.ReadAdapterConfig(dir)
	if err != nil {
		return "", err
	}
	if cfg.BaseModel == "" {
		return "", fmt.Errorf("adapter %s: no base model weights beside it and no base_model_name_or_path", dir)
	}
	base, err := resolveRef(ctx, o, cfg.BaseModel, cfg.Revision)
	if err != nil {
		return "", fmt.Errorf("adapter %s: base model: %w", dir, err)
	}
	if !hasWeights(base) {
		return "", fmt.Errorf("adapter %s: base model %s has no config.json and safetensors weights", dir, cfg.BaseModel)
	}
	return base, nil
}

// servedBase is what the served base answers to, for comparing with a
// --lora-adapter's base_model_name_or_path: first its name as a person
// would give it (the model served, or the base the served adapter names),
// then the other names it goes by (its directory, config.json's
// _name_or_path, which transformers' save_pretrained writes).
func servedBase(dir, base, id string) []string {
	names := []string{id}
	if model.IsAdapterDir(dir) {
		if cfg, err := model.ReadAdapterConfig(dir); err == nil && cfg.BaseModel != "" {
			names = []string{cfg.BaseModel, id}
		}
	}
	names = append(names, base)
	var c struct {
		NameOrPath string `json:"_name_or_path"`
	}
	if b, err := os.ReadFile(filepath.Join(base, "config.json")); err == nil && json.Unmarshal(b, &c) == nil && c.NameOrPath != "" {
		names = append(names, c.NameOrPath)
	}
	return names
}

// sameModel reports whether two model references name the same model:
// directories by their resolved path, Hub repositories by id without the
// revision and regardless of case (the Hub resolves ids so).
func sameModel(a, b string) bool {
	dirA, dirB := isDirRef(a), isDirRef(b)
	if dirA != dirB {
		return false
	}
	if dirA {
		return canonicalDir(a) == canonicalDir(b)
	}
	a, _, _ = strings.Cut(a, "@")
	b, _, _ = strings.Cut(b, "@")
	return strings.EqualFold(a, b)
}

// isDirRef reports whether a model reference is a directory, as
// hub.ParseRef decides (an existing directory), or a path that is not
// there (absolute or relative to the working directory).
func isDirRef(s string) bool {
	if r, err := hub.ParseRef(s); err == nil {
		return r.IsLocal()
	}
	return filepath.IsAbs(s) || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../")
}

func canonicalDir(s string) string {
	if abs, err := filepath.Abs(s); err == nil {
		s = abs
	}
	if real, err := filepath.EvalSymlinks(s); err == nil {
		s = real
	}
	return filepath.Clean(s)
}

// checkBase refuses an adapter whose base_model_name_or_path names another
// model than the served base (peft would load it onto any base of the
// right shapes, but a delta trained on another base answers wrongly without
// a sign), unless o.AllowBaseMismatch, which loads it with a warning.
func checkBase(o Options, r AdapterRef, adir string, served []string) error {
	cfg, err := model.ReadAdapterConfig(adir)
	if err != nil || cfg.BaseModel == "" {
		return err // LoadAdapter reports a bad config; an unnamed base is not checked
	}
	for _, n := range served {
		if n != "" && sameModel(cfg.BaseModel, n) {
			return nil
		}
	}
	if !o.AllowBaseMismatch {
		return fmt.Errorf("trained on base %s (base_model_name_or_path of %s), but the served base is %s; "+
			"--allow-base-mismatch serves it anyway", cfg.BaseModel, r.Ref, served[0])
	}
	if o.Logger != nil {
		o.Logger.Warn("lora adapter trained on another base: serving it anyway (--allow-base-mismatch)",
			"name", r.Name, "ref", r.Ref, "adapter_base", cfg.BaseModel, "served_base", served[0])
	}
	return nil
}

// loadAdapters loads the main adapter (when the model directory is one)
// and every --lora-adapter onto m, and returns them by served name (""
// for the one that answers to the base's name). served names the base
// (servedBase), which each --lora-adapter must have been trained on.
func loadAdapters(ctx context.Context, o Options, m *model.Model, dir string, served []string) (map[string]*model.Adapter, error) {
	out := map[string]*model.Adapter{}
	if model.IsAdapterDir(dir) {
		a, err := m.LoadAdapter("", dir)
		if err != nil {
			return nil, err
		}
		out[""] = a
	}
	for _, r := range o.Adapters {
		adir, err := resolveRef(ctx, o, r.Ref, "")
		if err != nil {
			return nil, fmt.Errorf("lora adapter %s: %w", r.Name, err)
		}
		if !model.IsAdapterDir(adir) {
			return nil, fmt.Errorf("lora adapter %s: %s has no %s", r.Name, r.Ref, model.AdapterConfigFile)
		}
		if err := checkBase(o, r, adir, served); err != nil {
			return nil, fmt.Errorf("lora adapter %s: %w", r.Name, err)
		}
		a, err := m.LoadAdapter(r.Name, adir)
		if err != nil {
			return nil, fmt.Errorf("lora adapter %s: %w", r.Name, err)
		}
		if o.Logger != nil {
			o.Logger.Info("lora adapter loaded", "name", r.Name, "ref", r.Ref, "modules", len(a.Modules))
		}
		out[r.Name] = a
	}
	return out, nil
}

// errUnknownAdapter is a request for an adapter the engine does not hold
// (the server checks names first; this guards the engine).
var errUnknownAdapter = errors.New("unknown lora adapter")
