package kfllm

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// components.txt is the one list of the programs: every main package of the
// repository is on it (or is a tool of its own: the demo, benchmarks,
// build programs), each entry is a main package, and what it says about
// linking libtorch is true.
func TestComponentsAreClassified(t *testing.T) {
	cs := Components()
	if len(cs) == 0 {
		t.Fatal("components.txt lists nothing")
	}
	names := map[string]bool{}
	listed := map[string]bool{}
	for _, c := range cs {
		if names[c.Name] {
			t.Errorf("components.txt: %s twice", c.Name)
		}
		names[c.Name] = true
		listed[module+"/"+c.Dir] = true
	}
	out, err := exec.Command("go", "list", "-e", "-deps=false",
		"-f", `{{.ImportPath}} {{.Name}} {{range .Deps}}{{if eq . "github.com/sugarme/gotch"}}cgo{{end}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	mains := map[string]bool{}
	links := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == "main" {
			mains[f[0]] = true
		}
		links[f[0]] = len(f) == 3
	}
	// Programs that are not components: the demo, benchmark and build tools.
	tools := []string{"demo", "bench/", "build/", "scripts/"}
	for m := range mains {
		rel := strings.TrimPrefix(m, module+"/")
		if !listed[m] && !slices.ContainsFunc(tools, func(p string) bool { return rel == p || strings.HasPrefix(rel, p) }) {
			t.Errorf("main package %s is not in components.txt", rel)
		}
	}
	for _, c := range cs {
		pkg := module + "/" + c.Dir
		if !mains[pkg] {
			t.Errorf("components.txt: %s (%s) is not a main package", c.Name, c.Dir)
			continue
		}
		if links[pkg] == c.Light {
			t.Errorf("components.txt says %s is %s; linking libtorch: %v", c.Name, map[bool]string{true: "light", false: "cgo"}[c.Light], links[pkg])
		}
	}
}

// Every package named light exists: a renamed package would otherwise drop
// out of the dependency check without a word.
func TestLightPackagesExist(t *testing.T) {
	args := append([]string{"list", "-e", "-f", "{{.ImportPath}} {{if .Error}}missing{{end}}"}, lightPackages()...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			t.Errorf("light package %s does not exist", f[0])
		}
	}
}

func TestParseComponents(t *testing.T) {
	if _, err := parseComponents("fetch components/fetch image\n"); err == nil {
		t.Error("a line of three fields accepted")
	}
	if _, err := parseComponents("fetch components/fetch image heavy\n"); err == nil {
		t.Error("an unknown LINKS accepted")
	}
	cs, err := parseComponents("# c\n\nui ui image light\npipeline pipeline tool light\n")
	if err != nil || len(cs) != 2 || cs[0] != (Component{"ui", "ui", true, true}) || cs[1].Image {
		t.Errorf("parse = %+v, %v", cs, err)
	}
}
