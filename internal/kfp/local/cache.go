package local

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"google.golang.org/protobuf/types/known/structpb"
)

// cacheKey identifies an execution: the executor (image, command, args with
// placeholders, env), the local binary's content, the parameter values, the
// content of each input artifact, the content of local files or directories
// that string parameters name (a fetch --source of ./data.jsonl that changed
// is a changed input), and the output names.
func cacheKey(t *task, in *taskInputs) (string, error) {
	type kv struct{ K, V string }
	key := struct {
		Version   int
		Image     string
		Command   []string
		Args      []string
		Env       []kv
		Binary    string
		Params    map[string]any
		Artifacts map[string]string
		Files     map[string]string
		Outputs   []string
	}{Version: 1, Image: t.container.Image, Command: t.container.Command, Args: t.container.Args,
		Params: map[string]any{}, Artifacts: map[string]string{}, Files: map[string]string{}}
	for _, e := range t.container.Env {
		key.Env = append(key.Env, kv{e.Name, e.Value})
	}
	var err error
	if key.Binary, err = hashPath(t.binary); err != nil {
		return "", err
	}
	for n, v := range in.params {
		key.Params[n] = v.AsInterface()
		if p := localPath(v.GetStringValue()); p != "" {
			if key.Files[n], err = hashPath(p); err != nil {
				return "", fmt.Errorf("parameter %s: %w", n, err)
			}
		}
	}
	for n, p := range in.artifacts {
		if key.Artifacts[n], err = hashPath(p); err != nil {
			return "", fmt.Errorf("input %s: %w", n, err)
		}
	}
	for n := range t.comp.GetOutputDefinitions().GetArtifacts() {
		key.Outputs = append(key.Outputs, "artifact:"+n)
	}
	for n := range t.comp.GetOutputDefinitions().GetParameters() {
		key.Outputs = append(key.Outputs, "parameter:"+n)
	}
	sort.Strings(key.Outputs)
	b, err := json.Marshal(key) // maps are written with sorted keys
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// localPath returns the local file a parameter value names (a path that
// exists, or a file:// URL), or "".
func localPath(s string) string {
	if s == "" || strings.Contains(s, "\n") {
		return ""
	}
	if p, ok := strings.CutPrefix(s, "file://"); ok {
		s = p
	} else if strings.Contains(s, "://") {
		return ""
	}
	if _, err := os.Stat(s); err != nil {
		return ""
	}
	return s
}

// hashPath hashes a file, or a directory tree (names, kinds and contents in
// lexical order), following a symlink at the root.
func hashPath(root string) (string, error) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	err = filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(real, p)
		switch {
		case d.IsDir():
			fmt.Fprintf(h, "d %s\n", rel)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "l %s %s\n", rel, target)
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %s %x\n", rel, fh.Sum(nil))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cache is the index of successful executions, one JSON file per key.
type cache struct{ dir string }

// cacheEntry records where an execution's outputs are.
type cacheEntry struct {
	Dir     string                     `json:"dir"`
	Outputs map[string]string          `json:"outputs"`
	Params  map[string]json.RawMessage `json:"parameters,omitempty"`
	Created time.Time                  `json:"created"`
}

func (c *cache) path(key string) string { return filepath.Join(c.dir, key+".json") }

// lookup returns the entry for key when all its outputs still exist.
func (c *cache) lookup(key string) (*cacheEntry, bool) {
	b, err := os.ReadFile(c.path(key))
	if err != nil {
		return nil, false
	}
	e := &cacheEntry{}
	if err := json.Unmarshal(b, e); err != nil {
		return nil, false
	}
	for _, p := range e.Outputs {
		if _, err := os.Stat(p); err != nil {
			return nil, false
		}
	}
	return e, true
}

// store records a successful execution, written to a temporary file and
// renamed so that a crash never leaves a half entry.
func (c *cache) store(key, dir string, outputs map[string]string, params map[string]*structpb.Value) error {
	e := cacheEntry{Outputs: map[string]string{}, Params: map[string]json.RawMessage{}, Created: time.Now().UTC()}
	var err error
	if e.Dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	for n, p := range outputs {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return err
		}
		if e.Outputs[n], err = filepath.Abs(real); err != nil {
			return err
		}
	}
	for n, v := range params {
		b, err := json.Marshal(v.AsInterface())
		if err != nil {
			return err
		}
		e.Params[n] = b
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	return renameio.WriteFile(c.path(key), b, 0o600)
}

// link makes each output path a symlink to the cached output.
func (e *cacheEntry) link(outputs map[string]string) error {
	for n, p := range outputs {
		src, ok := e.Outputs[n]
		if !ok {
			return fmt.Errorf("cache entry has no output %s", n)
		}
		if err := os.Symlink(src, p); err != nil {
			return fmt.Errorf("link cached output %s: %w", n, err)
		}
	}
	return nil
}

// params returns the cached output parameters.
func (e *cacheEntry) params() map[string]*structpb.Value {
	out := map[string]*structpb.Value{}
	for n, raw := range e.Params {
		var v any
		if json.Unmarshal(raw, &v) != nil {
			continue
		}
		if sv, err := structpb.NewValue(v); err == nil {
			out[n] = sv
		}
	}
	return out
}
