package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Standard file names in a Hugging Face model directory.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// ErrNoWeights is wrapped by OpenDir when a directory has neither
// model.safetensors nor model.safetensors.index.json.
var ErrNoWeights = errors.New("no safetensors weights")

// Set is the tensors of a model directory: one file, or the shards named by
// an index. Every shard is opened (and its header validated) by OpenDir. For
// a sharded set the index's weight_map is the list of tensors: each must be
// in the shard it names, and tensors a shard holds beyond those are not
// part of the set.
type Set struct {
	dir       string
	index     string           // path of the index, "" for a single file
	files     map[string]*File // by shard file name
	shardOf   map[string]string
	totalSize int64
}

// OpenDir opens the weights in dir: model.safetensors if present (as
// transformers prefers it), else the shards listed in
// model.safetensors.index.json.
func OpenDir(dir string) (*Set, error) { return OpenDirNamed(dir, SingleFileName) }

// OpenDirNamed is OpenDir for another base name, such as
// "adapter_model.safetensors": it opens dir/name, or the shards listed in
// dir/name+".index.json".
func OpenDirNamed(dir, name string) (*Set, error) {
	single := filepath.Join(dir, name)
	if _, err := os.Stat(single); err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		s := &Set{dir: dir, files: map[string]*File{name: f}, shardOf: map[string]string{}}
		for _, n := range f.Names() {
			s.shardOf[n] = name
		}
		s.totalSize = f.h.dataLen
		return s, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	index := single + ".index.json"
	raw, err := os.ReadFile(index)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %s: %w: neither %s nor %s exists", dir, ErrNoWeights, name, name+".index.json")
	}
	if err != nil {
		return nil, fmt.Errorf("safetensors: read index: %w", err)
	}
	weightMap, total, err := parseIndex(raw)
	if err != nil {
		return nil, withPath(index, err)
	}
	s := &Set{dir: dir, index: index, files: map[string]*File{}, shardOf: weightMap, totalSize: total}
	for _, shard := range slices.Sorted(maps.Keys(setOf(weightMap))) {
		f, err := Open(filepath.Join(dir, shard))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("safetensors: shard of %s: %w", index, err)
		}
		s.files[shard] = f
	}
	for _, tensor := range slices.Sorted(maps.Keys(weightMap)) {
		shard := weightMap[tensor]
		if _, ok := s.files[shard].h.tensors[tensor]; !ok {
			s.Close()
			return nil, &FormatError{Path: index, Fault: fmt.Sprintf("weight_map puts tensor %q in %s, which does not hold it", tensor, shard)}
		}
	}
	return s, nil
}

func setOf(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

// indexJSON is the layout of model.safetensors.index.json.
type indexJSON struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// parseIndex validates an index: a weight_map of tensor name to a shard
// file name inside the same directory.
func parseIndex(raw []byte) (map[string]string, int64, error) {
	var ix indexJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&ix); err != nil {
		return nil, 0, faultf("index is not JSON: %v", err)
	}
	if len(ix.WeightMap) == 0 {
		return nil, 0, faultf("index has no weight_map entries")
	}
	for tensor, shard := range ix.WeightMap {
		if shard == "" || shard != filepath.Base(shard) || shard == "." || shard == ".." || strings.ContainsAny(shard, `/\`) {
			return nil, 0, faultf("weight_map puts tensor %q in %q, which is not a file name in the model directory", tensor, shard)
		}
	}
	var total int64
	if n, ok := ix.Metadata["total_size"].(json.Number); ok {
		total, _ = n.Int64()
	}
	return ix.WeightMap, total, nil
}

// Dir returns the directory the set was opened from.
func (s *Set) Dir() string { return s.dir }

// Sharded reports whether the set came from an index.
func (s *Set) Sharded() bool { return s.index != "" }

// TotalSize returns the bytes of tensor data: metadata.total_size from the
// index, or the data section's size for a single file.
func (s *Set) TotalSize() int64 { return s.totalSize }

// Names returns the tensor names, sorted.
func (s *Set) Names() []string { return slices.Sorted(maps.Keys(s.shardOf)) }

// Len returns the number of tensors.
func (s *Set) Len() int { return len(s.shardOf) }

// Shard returns the path of the file that holds the named tensor.
func (s *Set) Shard(name string) (string, bool) {
	shard, ok := s.shardOf[name]
	if !ok {
		return "", false
	}
	return s.files[shard].Path(), true
}

// Files returns the open files, sorted by path.
func (s *Set) Files() []*File {
	out := slices.Collect(maps.Values(s.files))
	slices.SortFunc(out, func(a, b *File) int { return strings.Compare(a.path, b.path) })
	return out
}

// Info describes the named tensor.
func (s *Set) Info(name string) (TensorInfo, bool) {
	shard, ok := s.shardOf[name]
	if !ok {
		return TensorInfo{}, false
	}
	return s.files[shard].Info(name)
}

// Data returns the named tensor's bytes, a view valid until Close (see
// File.Data).
func (s *Set) Data(name string) ([]byte, error) {
	shard, ok := s.shardOf[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", s.dir, name, ErrNotFound)
	}
	return s.files[shard].Data(name)
}

// Metadata returns the __metadata__ of the single file, or of the first
// shard (by name) of a sharded set.
func (s *Set) Metadata() map[string]string {
	if fs := s.Files(); len(fs) > 0 {
		return fs[0].Metadata()
	}
	return nil
}

// Close closes every file of the set.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WriteIndex writes dir/model.safetensors.index.json atomically, in the
// layout transformers writes: {"metadata": {"total_size": N},
// "weight_map": {tensor: shard file}}, keys sorted, two-space indent.
func WriteIndex(dir string, weightMap map[string]string, totalSize int64) error {
	return WriteIndexNamed(filepath.Join(dir, IndexFileName), weightMap, totalSize)
}

// WriteIndexNamed is WriteIndex to an explicit path.
func WriteIndexNamed(path string, weightMap map[string]string, totalSize int64) error {
	if _, _, err := parseIndex(mustIndexJSON(weightMap, 0)); err != nil {
		return fmt.Errorf("safetensors: write index %s: %w", path, err)
	}
	return writeAtomic(path, mustIndexJSON(weightMap, totalSize))
}

func mustIndexJSON(weightMap map[string]string, totalSize int64) []byte {
	ix := struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}{map[string]int64{"total_size": totalSize}, weightMap}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ix); err != nil { // maps of strings and ints always encode
		return []byte("{}\n")
	}
	return buf.Bytes() // Encode ends with a newline, as transformers' file does
}

// writeAtomic writes b to a temporary file beside path, syncs it and renames
// it into place.
func writeAtomic(path string, b []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return commit(tmp.Name(), path)
}

// Release is File.Release for the file that holds the named tensor.
func (s *Set) Release(name string) error {
	shard, ok := s.shardOf[name]
	if !ok {
		return fmt.Errorf("safetensors: %s: tensor %q: %w", s.dir, name, ErrNotFound)
	}
	return s.files[shard].Release(name)
}
