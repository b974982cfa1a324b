package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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

// Pin rewrites every REGISTRY/kfllm-NAME:TAG in text that is not pinned
// yet into REGISTRY/kfllm-NAME:TAG@sha256:..., the digest it was pushed
// with, so a compiled pipeline or a rendered manifest runs exactly the
// pushed image even if the tag moves.
func Pin(text string, pushed []Pushed) string {
	for _, p := range pushed {
		ref := p.Tag.String()
		var b strings.Builder
		for {
			i := strings.Index(text, ref)
			if i < 0 {
				b.WriteString(text)
				break
			}
			end := i + len(ref)
			b.WriteString(text[:end])
			if end < len(text) && text[end] == '@' || end < len(text) && isRefChar(text[end]) {
				text = text[end:]
				continue // already pinned, or a longer tag
			}
			b.WriteString("@" + p.Digest.DigestStr())
			text = text[end:]
		}
		text = b.String()
	}
	return text
}

func isRefChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
}

// ReadPushed reads the NAME REF@DIGEST lines push writes.
func ReadPushed(p string) ([]Pushed, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read pushed images: %w", err)
	}
	var out []Pushed
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("read pushed images %s: bad line %q", p, line)
		}
		d, err := name.NewDigest(f[1], name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("read pushed images %s: %w", p, err)
		}
		tagPart, _, _ := strings.Cut(f[1], "@")
		t, err := name.NewTag(tagPart, name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("read pushed images %s: %w", p, err)
		}
		out = append(out, Pushed{Name: f[0], Tag: t, Digest: d})
	}
	return out, nil
}
