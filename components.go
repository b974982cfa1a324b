package kfllm

import (
	_ "embed"
	"fmt"
	"strings"
)

// Component is one program of kfllm, as components.txt names it.
type Component struct {
	Name  string // the binary's name (bin/NAME) and its image's (kfllm-NAME)
	Dir   string // its main package, relative to the repository root
	Image bool   // it ships as an OCI image (make images)
	Light bool   // it must build without libtorch (depcheck_test.go)
}

//go:embed components.txt
var componentsFile string

// Components returns the programs of components.txt, in its order.
func Components() []Component {
	cs, err := parseComponents(componentsFile)
	if err != nil {
		panic(err) // components.txt is part of the build; components_test.go checks it
	}
	return cs
}

func parseComponents(s string) ([]Component, error) {
	var cs []Component
	for i, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 || (f[2] != "image" && f[2] != "tool") || (f[3] != "light" && f[3] != "cgo") {
			return nil, fmt.Errorf("components.txt line %d: %q: want NAME DIR image|tool light|cgo", i+1, line)
		}
		cs = append(cs, Component{Name: f[0], Dir: f[1], Image: f[2] == "image", Light: f[3] == "light"})
	}
	return cs, nil
}
