package records

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
)

// How the data files of a repository or directory are picked: the naming
// conventions of the Hugging Face datasets library, simplified.

// splitWords are the names by which files mark their split, grouped as the
// Hugging Face datasets library groups them.
var splitWords = map[string]string{
	"train": "train", "training": "train",
	"validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
	"test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}

func splitGroup(s string) string { return splitWords[strings.ToLower(s)] }

var wordSep = regexp.MustCompile(`[^A-Za-z0-9]+`)

// fileSplit returns the split a data file's path names ("" if none): a
// word of its base name (train-00000-of-00001.parquet, dev.jsonl), else of
// its directories (data/validation/part.csv).
func fileSplit(p string) string {
	dir, base := path.Split(p)
	stem := strings.TrimSuffix(base, ".gz")
	stem = strings.TrimSuffix(stem, path.Ext(stem))
	for _, w := range wordSep.Split(stem, -1) {
		if g := splitGroup(w); g != "" {
			return g
		}
	}
	segs := strings.Split(strings.Trim(dir, "/"), "/")
	for i := len(segs) - 1; i >= 0; i-- {
		for _, w := range wordSep.Split(segs[i], -1) {
			if g := splitGroup(w); g != "" {
				return g
			}
		}
	}
	return ""
}

// metadataNames are JSON files of a dataset repository that hold no rows.
var metadataNames = map[string]bool{
	"dataset_infos.json": true, "dataset_info.json": true, "dataset_dict.json": true, "state.json": true,
	"config.json": true, "package.json": true,
}

// selectDataFiles picks the data files of one subset and split among a
// repository's or directory's files, following the Hugging Face datasets
// conventions: a split is named in the file or directory name; when no
// file names one, every file is "train". With several formats present,
// parquet is preferred, then jsonl, csv, json.
func selectDataFiles(paths []string, subset, split string, format Format) ([]string, error) {
	want := splitGroup(split)
	if want == "" {
		want = split
	}
	byFormat := map[Format][]string{}
	named := false
	var candidates []string
	for _, p := range paths {
		base := path.Base(p)
		if strings.HasPrefix(base, ".") || metadataNames[strings.ToLower(base)] || strings.HasPrefix(p, ".") {
			continue
		}
		ft, ok := FormatOf(p)
		if !ok || (format != FormatAuto && format != "" && ft != format) {
			continue
		}
		if subset != "" && !hasDir(p, subset) {
			continue
		}
		candidates = append(candidates, p)
		if fileSplit(p) != "" {
			named = true
		}
	}
	for _, p := range candidates {
		if namesSplit(p, split, want, named) {
			ft, _ := FormatOf(p)
			byFormat[ft] = append(byFormat[ft], p)
		}
	}
	for _, ft := range []Format{FormatParquet, FormatJSONL, FormatCSV, FormatJSON} {
		if files := byFormat[ft]; len(files) > 0 {
			sort.Strings(files)
			return files, nil
		}
	}
	if len(candidates) == 0 {
		what := "no data file (.jsonl, .json, .csv, .parquet)"
		if subset != "" {
			what += " under a directory named " + subset
		}
		return nil, errors.New(what)
	}
	return nil, fmt.Errorf("no data file for split %q among %d data files", split, len(candidates))
}

// namesSplit tells whether the file at p belongs to split (want is its
// group); named says whether any file of the set names a split.
func namesSplit(p, split, want string, named bool) bool {
	if splitGroup(split) == "" {
		// A split of the dataset's own naming, e.g. train_sft: the file's
		// stem starts with it or a directory is named after it.
		stem := strings.TrimSuffix(path.Base(p), ".gz")
		stem = strings.TrimSuffix(stem, path.Ext(stem))
		if stem == split || hasDir(p, split) {
			return true
		}
		for _, sep := range []string{"-", "_", "."} {
			if strings.HasPrefix(stem, split+sep) {
				return true
			}
		}
		return false
	}
	if !named {
		return want == "train"
	}
	return fileSplit(p) == want
}

func hasDir(p, dir string) bool {
	segs := strings.Split(p, "/")
	for _, s := range segs[:len(segs)-1] {
		if s == dir {
			return true
		}
	}
	return false
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func pickOne(options []string, preferred, what, flag string) (string, error) {
	switch {
	case len(options) == 1:
		return options[0], nil
	case len(options) == 0:
		return "", fmt.Errorf("no %s available", what)
	}
	for _, o := range options {
		if o == preferred {
			return o, nil
		}
	}
	return "", fmt.Errorf("several %ss (%s): pick one with %s", what, strings.Join(options, ", "), flag)
}

func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}
