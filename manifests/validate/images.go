package validate

import (
	"fmt"
	"os"
	"strings"
)

// Components are the six images, one binary each, named as in
// docs/design.md §7: ${IMAGE_REGISTRY}/kfllm-<name>:${IMAGE_TAG}. They are
// the image entries of the repository's components.txt, the one list that
// the Makefile's IMAGES (what `make images` builds) also reads;
// TestComponentsAreTheListsImages keeps the two equal.
var Components = []string{"fetch", "tokenize", "finetune", "upload", "serving", "ui"}

// Entrypoint is the ENTRYPOINT of a component's image: internal/image
// (make images) puts each binary at /usr/local/bin/<name> and makes it the
// entrypoint; its TestImageConfig holds it to that.
func Entrypoint(component string) string { return "/usr/local/bin/" + component }

// Entrypoints maps every component to its image's ENTRYPOINT.
func Entrypoints() map[string]string {
	m := map[string]string{}
	for _, c := range Components {
		m[c] = Entrypoint(c)
	}
	return m
}

// ListedImages reads the component images from components.txt (lines
// NAME DIR image|tool light|cgo; # comments): the names of kind image, in
// order.
func ListedImages(p string) ([]string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read component list: %w", err)
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("read component list %s: line %d: %q: want NAME DIR KIND LINKS", p, i+1, line)
		}
		if f[2] == "image" {
			out = append(out, f[0])
		}
	}
	return out, nil
}
