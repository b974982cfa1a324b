package validate

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Components are the six images, one binary each, named as in docs/design.md §7:
// ${IMAGE_REGISTRY}/kfllm-<name>:${IMAGE_TAG}.
var Components = []string{"fetch", "tokenize", "finetune", "upload", "serving", "ui"}

// Dockerfile is a parsed Dockerfile: its global build args (ARG before the
// first FROM, with their defaults) and its stages.
type Dockerfile struct {
	Path   string
	Args   map[string]*string // nil value: declared without a default
	Stages []instructions.Stage
	byName map[string]int
}

// ParseDockerfile reads a Dockerfile with BuildKit's parser, the one
// `docker buildx build` uses.
func ParseDockerfile(p string) (*Dockerfile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("parse dockerfile %s: %w", p, err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("parse dockerfile %s: %w", p, err)
	}
	stages, meta, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("parse dockerfile %s: %w", p, err)
	}
	d := &Dockerfile{Path: p, Args: map[string]*string{}, Stages: stages, byName: map[string]int{}}
	for _, a := range meta {
		for _, kv := range a.Args {
			d.Args[kv.Key] = kv.Value
		}
	}
	for i, s := range stages {
		if s.Name != "" {
			d.byName[strings.ToLower(s.Name)] = i
		}
	}
	return d, nil
}

// Stage returns the stage named name.
func (d *Dockerfile) Stage(name string) (*instructions.Stage, bool) {
	i, ok := d.byName[strings.ToLower(name)]
	if !ok {
		return nil, false
	}
	return &d.Stages[i], true
}

// Chain is the stage and the local stages it is built FROM, nearest first;
// the last one's BaseName is an image, not a stage.
func (d *Dockerfile) Chain(name string) []*instructions.Stage {
	var out []*instructions.Stage
	for s, ok := d.Stage(name); ok && len(out) <= len(d.Stages); s, ok = d.Stage(s.BaseName) {
		out = append(out, s)
	}
	return out
}

// User is the user a stage runs as: its last USER, else its local base's.
// "" means no USER anywhere in the chain (root).
func (d *Dockerfile) User(name string) string {
	for _, s := range d.Chain(name) {
		for i := len(s.Commands) - 1; i >= 0; i-- {
			if u, ok := s.Commands[i].(*instructions.UserCommand); ok {
				return u.User
			}
		}
	}
	return ""
}

// Entrypoint is a stage's ENTRYPOINT (the nearest in its chain) and whether
// it is in exec (JSON) form.
func (d *Dockerfile) Entrypoint(name string) (cmd []string, exec bool) {
	for _, s := range d.Chain(name) {
		for i := len(s.Commands) - 1; i >= 0; i-- {
			if e, ok := s.Commands[i].(*instructions.EntrypointCommand); ok {
				return e.CmdLine, !e.PrependShell
			}
		}
	}
	return nil, false
}

// Labels are the LABELs a stage carries, its local bases' included.
func (d *Dockerfile) Labels(name string) map[string]string {
	out := map[string]string{}
	chain := d.Chain(name)
	for i := len(chain) - 1; i >= 0; i-- {
		for _, c := range chain[i].Commands {
			if l, ok := c.(*instructions.LabelCommand); ok {
				for _, kv := range l.Labels {
					out[kv.Key] = kv.Value
				}
			}
		}
	}
	return out
}

// BaseArg is the build arg a stage's FROM names, as in FROM ${CUDA_IMAGE}:
// "" when the FROM names an image or a stage directly.
func BaseArg(from string) string {
	m := argRef.FindStringSubmatch(from)
	if m == nil {
		return ""
	}
	return m[1] + m[2]
}

var argRef = regexp.MustCompile(`^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$`)

// pinned: NAME[:TAG]@sha256:<64 hex>.
var pinned = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$`)

// IsPinned reports whether an image reference names a digest.
func IsPinned(ref string) bool { return pinned.MatchString(ref) }

// ReadEnvFile reads KEY=VALUE lines, skipping blanks and # comments.
func ReadEnvFile(p string) (map[string]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("read %s:%d: want KEY=VALUE, got %q", p, n, line)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return out, nil
}

// ImageRules say what a Dockerfile must satisfy.
type ImageRules struct {
	// Pins are the pinned base images (build/bases.env), by build arg.
	Pins map[string]string
	// Local are build args that name images built by scripts/images.sh
	// from build/base.Dockerfile a moment before; they must have no default.
	Local []string
	// Finals are the stages that are shipped: non-root, no compilers,
	// OCI labels.
	Finals []string
	// Builders are the stages that hold compilers; no final stage may be
	// built FROM one of them.
	Builders []string
}

var compilerInstall = regexp.MustCompile(`\b(gcc|g\+\+|clang|build-essential|golang|cmake|make)\b`)

// Check returns every way d breaks the rules.
func (d *Dockerfile) Check(r ImageRules) []error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{d.Path}, a...)...))
	}
	local := map[string]bool{}
	for _, a := range r.Local {
		local[a] = true
	}
	for i, s := range d.Stages {
		if _, ok := d.byName[strings.ToLower(s.BaseName)]; ok && d.byName[strings.ToLower(s.BaseName)] < i {
			continue // an earlier stage
		}
		arg := BaseArg(s.BaseName)
		switch {
		case arg == "" && IsPinned(s.BaseName):
		case arg == "":
			bad("stage %q: FROM %s is neither an earlier stage nor pinned by digest", s.Name, s.BaseName)
		case local[arg]:
			if v, ok := d.Args[arg]; !ok {
				bad("stage %q: FROM ${%s} but ARG %s is not declared before the first FROM", s.Name, arg, arg)
			} else if v != nil {
				bad("stage %q: ARG %s has a default (%q); it must come from scripts/images.sh", s.Name, arg, *v)
			}
		default:
			pin, ok := r.Pins[arg]
			if !ok {
				bad("stage %q: FROM ${%s} is not one of the pinned bases in build/bases.env", s.Name, arg)
			} else if !IsPinned(pin) {
				bad("stage %q: %s=%s in build/bases.env is not pinned by digest (NAME:TAG@sha256:...)", s.Name, arg, pin)
			}
			if v, ok := d.Args[arg]; !ok {
				bad("stage %q: FROM ${%s} but ARG %s is not declared before the first FROM", s.Name, arg, arg)
			} else if v != nil && *v != pin {
				bad("stage %q: ARG %s defaults to %q, not the pin %q", s.Name, arg, *v, pin)
			}
		}
	}
	builders := map[string]bool{}
	for _, b := range r.Builders {
		builders[strings.ToLower(b)] = true
	}
	for _, name := range r.Finals {
		if _, ok := d.Stage(name); !ok {
			bad("no stage %q", name)
			continue
		}
		if u := d.User(name); !nonRoot(u) {
			bad("stage %q runs as %q; want a non-root USER (e.g. 65532)", name, u)
		}
		for _, s := range d.Chain(name) {
			if builders[strings.ToLower(s.Name)] {
				bad("stage %q is built FROM the builder stage %q", name, s.Name)
			}
			for _, c := range s.Commands {
				if run, ok := c.(*instructions.RunCommand); ok {
					line := strings.Join(run.CmdLine, " ")
					if strings.Contains(line, "install") && compilerInstall.MatchString(line) {
						bad("stage %q installs a compiler: RUN %s", name, line)
					}
				}
			}
		}
		labels := d.Labels(name)
		for _, k := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision"} {
			if labels[k] == "" {
				bad("stage %q has no LABEL %s", name, k)
			}
		}
	}
	return errs
}

func nonRoot(u string) bool {
	name, _, _ := strings.Cut(u, ":")
	return name != "" && name != "0" && name != "root"
}

// ComponentEntrypoints checks that build/Dockerfile has one target per
// component, each copying exactly its own binary from the build stage to
// /usr/local/bin/<name> and running it as the exec-form ENTRYPOINT, and
// returns the entrypoints by component.
func (d *Dockerfile) ComponentEntrypoints(build string) (map[string]string, []error) {
	var errs []error
	out := map[string]string{}
	for _, name := range Components {
		s, ok := d.Stage(name)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no target %q", d.Path, name))
			continue
		}
		want := "/usr/local/bin/" + name
		ep, exec := d.Entrypoint(name)
		if !exec || len(ep) != 1 || ep[0] != want {
			errs = append(errs, fmt.Errorf("%s: target %q: ENTRYPOINT %q (exec form %v), want [%q]", d.Path, name, ep, exec, want))
		}
		var copies []string
		for _, c := range s.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok {
				if cp.From != build {
					errs = append(errs, fmt.Errorf("%s: target %q copies from %q; only the binary from %q belongs here", d.Path, name, cp.From, build))
				}
				for _, src := range cp.SourcePaths {
					copies = append(copies, src+" -> "+cp.DestPath)
				}
			}
		}
		if wantCopy := "/out/" + name + " -> " + want; len(copies) != 1 || copies[0] != wantCopy {
			errs = append(errs, fmt.Errorf("%s: target %q copies %q, want exactly [%q]", d.Path, name, copies, wantCopy))
		}
		if len(ep) == 1 {
			out[name] = ep[0]
		}
	}
	return out, errs
}

// BuildsPackages reports the main packages the build stage's RUN lines
// compile, as the ./dir arguments of `go build`.
func (d *Dockerfile) BuildsPackages(build string) []string {
	s, ok := d.Stage(build)
	if !ok {
		return nil
	}
	seen := map[string]bool{}
	for _, c := range s.Commands {
		run, ok := c.(*instructions.RunCommand)
		if !ok {
			continue
		}
		line := strings.Join(run.CmdLine, " ")
		_, after, ok := strings.Cut(line, "go build")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(after) {
			if strings.HasPrefix(f, "./") {
				seen[path.Clean(f)] = true
			}
		}
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
