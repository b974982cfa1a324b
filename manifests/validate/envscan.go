package validate

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// EnvSet is the environment a binary reads: exact names, and prefixes for
// names it builds (langsmith reads "LANGSMITH_"+name and "LANGCHAIN_"+name).
type EnvSet struct {
	Names    map[string]bool
	Prefixes []string
}

// Reads reports whether the binary reads name.
func (s EnvSet) Reads(name string) bool {
	if s.Names[name] {
		return true
	}
	for _, p := range s.Prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Empty reports whether nothing was found (a binary that is still a stub).
func (s EnvSet) Empty() bool { return len(s.Names) == 0 && len(s.Prefixes) == 0 }

// List is the names and prefixes (as PREFIX*), sorted.
func (s EnvSet) List() []string {
	var out []string
	for n := range s.Names {
		out = append(out, n)
	}
	for _, p := range s.Prefixes {
		out = append(out, p+"*")
	}
	sort.Strings(out)
	return out
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$`)

// ScanEnv reads the Go source of a main package (mainDir, relative to the
// module root) and of every package of the same module it imports,
// transitively, and collects the variables it reads: the string arguments
// of calls to Getenv, LookupEnv, a func named getenv (the injected
// os.Getenv the binaries pass around) or envOr (a default-taking helper), a literal prefix concatenated into
// such an argument, and, in the main package itself, every
// UPPER_SNAKE_CASE string literal (flag defaults read through a helper).
// Test files are skipped. It parses only; nothing is compiled.
func ScanEnv(moduleRoot, modulePath, mainDir string) (EnvSet, error) {
	set := EnvSet{Names: map[string]bool{}}
	seen := map[string]bool{}
	queue := []string{mainDir}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		if seen[dir] {
			continue
		}
		seen[dir] = true
		fset := token.NewFileSet()
		entries, err := os.ReadDir(filepath.Join(moduleRoot, dir))
		if err != nil {
			return set, fmt.Errorf("scan env %s: %w", dir, err)
		}
		for _, ent := range entries {
			n := ent.Name()
			if ent.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(moduleRoot, dir, n), nil, parser.SkipObjectResolution)
			if err != nil {
				return set, fmt.Errorf("scan env %s: %w", dir, err)
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if rel, ok := strings.CutPrefix(p, modulePath+"/"); ok {
					queue = append(queue, rel)
				}
			}
			scanFile(f, dir == mainDir, &set)
		}
	}
	sort.Strings(set.Prefixes)
	return set, nil
}

func scanFile(f *ast.File, isMain bool, set *EnvSet) {
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.CallExpr:
			if !isEnvCall(x.Fun) || len(x.Args) == 0 {
				return true
			}
			switch a := x.Args[0].(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(a.Value); err == nil && a.Kind == token.STRING {
					set.Names[s] = true
				}
			case *ast.BinaryExpr:
				if lit, ok := a.X.(*ast.BasicLit); ok && a.Op == token.ADD && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						set.Prefixes = appendUnique(set.Prefixes, s)
					}
				}
			}
		case *ast.BasicLit:
			if isMain && x.Kind == token.STRING {
				if s, err := strconv.Unquote(x.Value); err == nil && envName.MatchString(s) {
					set.Names[s] = true
				}
			}
		}
		return true
	})
}

func isEnvCall(fun ast.Expr) bool {
	var name string
	switch f := fun.(type) {
	case *ast.Ident:
		name = f.Name
	case *ast.SelectorExpr:
		name = f.Sel.Name
	default:
		return false
	}
	switch name {
	case "Getenv", "LookupEnv", "getenv", "lookupEnv", "envOr":
		return true
	}
	return false
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
