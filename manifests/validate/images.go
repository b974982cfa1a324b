package validate

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Components are the six images, one binary each, named as in
// docs/design.md §7: ${IMAGE_REGISTRY}/kfllm-<name>:${IMAGE_TAG}. They are
// the Makefile's COMMANDS less pipeline (the list `make images` builds);
// TestComponentsAreTheMakefilesImages keeps the two equal.
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

var commandsLine = regexp.MustCompile(`(?m)^COMMANDS\s*:=\s*(.*)$`)

// MakefileImages reads the component images from a Makefile: its COMMANDS
// less pipeline, as its IMAGES variable says.
func MakefileImages(p string) ([]string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read makefile: %w", err)
	}
	m := commandsLine.FindSubmatch(b)
	if m == nil {
		return nil, fmt.Errorf("read makefile %s: no COMMANDS := line", p)
	}
	if !strings.Contains(string(b), "IMAGES := $(filter-out pipeline,$(COMMANDS))") {
		return nil, fmt.Errorf("read makefile %s: IMAGES is no longer COMMANDS less pipeline", p)
	}
	return slices.DeleteFunc(strings.Fields(string(m[1])), func(s string) bool { return s == "pipeline" }), nil
}
