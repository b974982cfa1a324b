package image

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Ref is the reference an image is pushed to: REGISTRY/kfllm-NAME:TAG.
func Ref(registry, imageName, tag string) (name.Tag, error) {
	t, err := name.NewTag(fmt.Sprintf("%s/kfllm-%s:%s", registry, imageName, tag), name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image reference for %s: %w", imageName, err)
	}
	return t, nil
}

// Pushed is an image in the registry: its tag and its digest reference.
type Pushed struct {
	Name   string
	Tag    name.Tag
	Digest name.Digest
}

// Push writes the layouts out/NAME (the base and each name) to
// REGISTRY/kfllm-NAME:TAG in one go, so each shared layer is uploaded
// once. Credentials come from the Docker config file (and its credential
// helpers), as docker push finds them; a loopback registry is spoken to
// over plain HTTP.
func Push(ctx context.Context, out string, names []string, registry, tag string, opts ...remote.Option) ([]Pushed, error) {
	all := append([]string{Base}, names...)
	m := map[name.Reference]remote.Taggable{}
	var res []Pushed
	for _, n := range all {
		img, err := Open(filepath.Join(out, n))
		if err != nil {
			return nil, fmt.Errorf("push %s: %w (run make images first)", n, err)
		}
		ref, err := Ref(registry, n, tag)
		if err != nil {
			return nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", n, err)
		}
		m[ref] = img
		res = append(res, Pushed{Name: n, Tag: ref, Digest: ref.Context().Digest(d.String())})
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	if err := remote.MultiWrite(m, opts...); err != nil {
		return nil, fmt.Errorf("push to %s: %w", registry, err)
	}
	return res, nil
}
