package validate

import (
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Render builds a kustomization directory as `kubectl apply -k` would and
// returns the YAML stream.
func Render(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return out, nil
}

// RenderBundle renders each directory and decodes the result strictly into
// one bundle.
func RenderBundle(dirs ...string) (*Bundle, error) {
	b := NewBundle()
	for _, d := range dirs {
		y, err := Render(d)
		if err != nil {
			return nil, err
		}
		if err := b.Add(y, "kustomize build "+d); err != nil {
			return nil, err
		}
	}
	return b, nil
}
