package validate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func rules(t *testing.T) (base, comp ImageRules) {
	t.Helper()
	pins, err := ReadEnvFile(repoPath("build", "bases.env"))
	if err != nil {
		t.Fatal(err)
	}
	base = ImageRules{Pins: pins, Finals: []string{"runtime"}, Builders: []string{"go", "libtorch", "builder"}}
	comp = ImageRules{Pins: pins, Local: []string{"BUILDER_IMAGE", "BASE_IMAGE"}, Finals: Components, Builders: []string{"build"}}
	return base, comp
}

// TestDockerfiles parses build/base.Dockerfile and build/Dockerfile with
// BuildKit's parser and holds them to the image rules: every base pinned by
// digest (or built by scripts/images.sh from the base Dockerfile), shipped
// stages non-root with OCI source/version/revision labels and no compiler,
// one target per component whose ENTRYPOINT is /usr/local/bin/<name>.
func TestDockerfiles(t *testing.T) {
	baseRules, compRules := rules(t)
	for _, c := range []struct {
		file string
		r    ImageRules
	}{{"base.Dockerfile", baseRules}, {"Dockerfile", compRules}} {
		d, err := ParseDockerfile(repoPath("build", c.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range d.Check(c.r) {
			t.Error(err)
		}
	}
	// Every Dockerfile in the tree is one of the two above: a new one needs
	// its rules here before it can ship.
	var found []string
	for _, pat := range []string{"Dockerfile*", "*.Dockerfile", "*/Dockerfile*", "*/*.Dockerfile", "*/*/Dockerfile*", "*/*/*.Dockerfile"} {
		m, err := filepath.Glob(repoPath(pat))
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, m...)
	}
	for _, f := range found {
		rel, _ := filepath.Rel(repo, f)
		if rel != "build/base.Dockerfile" && rel != "build/Dockerfile" {
			t.Errorf("%s: a Dockerfile the image rules do not cover", rel)
		}
	}
	eps := entrypoints(t)
	if len(eps) != len(Components) {
		t.Errorf("entrypoints for %d components, want %d: %v", len(eps), len(Components), eps)
	}
	for _, pin := range baseRules.Pins {
		if !IsPinned(pin) {
			t.Errorf("build/bases.env: %s is not pinned by digest", pin)
		}
	}
}

// TestBuildStageCompilesEveryComponent: the build stage's `go build` names
// each component's main package, and that package exists.
func TestBuildStageCompilesEveryComponent(t *testing.T) {
	d, err := ParseDockerfile(repoPath("build", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs := d.BuildsPackages("build")
	for _, c := range Components {
		dir := c
		if c != "serving" && c != "ui" {
			dir = "components/" + c
		}
		if !slices.Contains(pkgs, dir) {
			t.Errorf("the build stage does not compile ./%s (it builds %v)", dir, pkgs)
		}
		src, err := os.ReadFile(repoPath(dir, "main.go"))
		if err != nil || !strings.Contains(string(src), "package main") {
			t.Errorf("%s/main.go is not a main package: %v", dir, err)
		}
	}
	// What the build needs is in the context: .dockerignore must not hide it.
	ign, err := os.ReadFile(repoPath(".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ign), "\n") {
		switch strings.TrimSpace(line) {
		case "scripts", "scripts/libtorch.sh", "go.mod", "go.sum", "internal", "components", "serving", "ui":
			t.Errorf(".dockerignore excludes %q, which the build needs", line)
		}
	}
}

// TestDockerfileRulesCatchMistakes: each rule fails on a Dockerfile that
// breaks it, so the check above cannot pass vacuously.
func TestDockerfileRulesCatchMistakes(t *testing.T) {
	pins := map[string]string{"CUDA_IMAGE": "nvidia/cuda:12.1.1-cudnn8-runtime-ubuntu22.04@sha256:" + strings.Repeat("a", 64)}
	good := `ARG CUDA_IMAGE
FROM ${CUDA_IMAGE} AS build
RUN apt-get install -y g++
FROM ${CUDA_IMAGE} AS runtime
LABEL org.opencontainers.image.source=s org.opencontainers.image.version=v org.opencontainers.image.revision=r
COPY --from=build /out/x /usr/local/bin/x
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/x"]
`
	r := ImageRules{Pins: pins, Finals: []string{"runtime"}, Builders: []string{"build"}}
	cases := []struct{ name, from, to, want string }{
		{"good", "", "", ""},
		{"unpinned literal base", "FROM ${CUDA_IMAGE} AS runtime", "FROM ubuntu:22.04 AS runtime", "pinned by digest"},
		{"unknown arg", "FROM ${CUDA_IMAGE} AS runtime", "ARG OTHER\nFROM ${OTHER} AS runtime", "not one of the pinned bases"},
		{"root", "USER 65532:65532", "USER root", "non-root"},
		{"no user", "USER 65532:65532\n", "", "non-root"},
		{"final from builder", "FROM ${CUDA_IMAGE} AS runtime", "FROM build AS runtime", "builder stage"},
		{"compiler in final", "USER 65532", "RUN apt-get update && apt-get install -y gcc\nUSER 65532", "installs a compiler"},
		{"no revision label", " org.opencontainers.image.revision=r", "", "org.opencontainers.image.revision"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(good, c.from, c.to, 1)
			p := filepath.Join(t.TempDir(), "Dockerfile")
			if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := ParseDockerfile(p)
			if err != nil {
				t.Fatal(err)
			}
			errs := d.Check(r)
			if c.want == "" {
				for _, err := range errs {
					t.Errorf("good Dockerfile: %v", err)
				}
				return
			}
			found := false
			for _, err := range errs {
				found = found || strings.Contains(err.Error(), c.want)
			}
			if !found {
				t.Errorf("want an error containing %q, got %v", c.want, errs)
			}
		})
	}
	// A pin that is a tag, not a digest.
	d, err := ParseDockerfile(writeTemp(t, good))
	if err != nil {
		t.Fatal(err)
	}
	if errs := d.Check(ImageRules{Pins: map[string]string{"CUDA_IMAGE": "nvidia/cuda:12.1.1-cudnn8-runtime-ubuntu22.04"}, Finals: []string{"runtime"}}); len(errs) == 0 {
		t.Error("a tag without digest in bases.env passed")
	}
}

func writeTemp(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "Dockerfile")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
