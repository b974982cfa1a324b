package validate

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

var (
	// adapterName: a model name that is one path segment of every route
	// (/v1/models/NAME:predict) and an OpenAI "model" as it is.
	adapterName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// hubRepoRef: OWNER/NAME[@REV], the Hub repository-id rule of
	// internal/hub (ValidateRepoID) with an owner, as scripts/deploy.sh
	// checks MODEL_ID.
	hubRepoRef = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*(@[A-Za-z0-9][A-Za-z0-9._/-]*)?$`)
)

// checkLoRAAdapters checks llm-api-config's LORA_ADAPTERS, serving's list
// of more LoRA adapters on the base (docs/design.md §5: NAME=REF items
// joined by commas, spaces and empty items ignored): each item has a name
// fit for a route, given once and not the base's MODEL_NAME, and a
// reference the pod can resolve: a Hub repository OWNER/NAME[@REV], or an
// absolute directory under one of the container's volume mounts.
func checkLoRAAdapters(list, modelName string, c corev1.Container) []error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("ConfigMap %s: LORA_ADAPTERS: "+format, append([]any{APIConfig}, a...)...))
	}
	seen := map[string]bool{}
	for _, it := range strings.Split(list, ",") {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		name, ref, ok := strings.Cut(it, "=")
		name, ref = strings.TrimSpace(name), strings.TrimSpace(ref)
		switch {
		case !ok || name == "" || ref == "":
			bad("item %q: want NAME=REF (REF: OWNER/NAME[@REV] or a mounted directory)", it)
			continue
		case !adapterName.MatchString(name):
			bad("item %q: the name may hold only letters, digits, '.', '_' and '-' (it is a route segment)", it)
		case name == modelName:
			bad("item %q: %s is the base model's name (MODEL_NAME)", it, name)
		case seen[name]:
			bad("item %q: the name %s is given twice", it, name)
		}
		seen[name] = true
		if strings.HasPrefix(ref, "/") {
			if !underMount(path.Clean(ref), c.VolumeMounts) {
				bad("item %q: directory %s is under none of the container's volume mounts", it, ref)
			}
			continue
		}
		repo, _, _ := strings.Cut(ref, "@")
		if !hubRepoRef.MatchString(ref) || len(repo) > 96 || strings.Contains(repo, "--") || strings.Contains(repo, "..") ||
			strings.HasSuffix(repo, ".") || strings.HasSuffix(repo, "-") {
			bad("item %q: %s is not a Hub repository OWNER/NAME[@REV] nor an absolute directory", it, ref)
		}
	}
	return errs
}

// underMount reports whether the clean absolute path p lies in one of the
// mounts (the mount point itself counts).
func underMount(p string, mounts []corev1.VolumeMount) bool {
	for _, m := range mounts {
		mp := path.Clean(m.MountPath)
		if p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/") {
			return true
		}
	}
	return false
}
