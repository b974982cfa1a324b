package records

import (
	"strings"
	"testing"
)

func TestSelectDataFiles(t *testing.T) {
	repo := []string{
		".gitattributes", "README.md", "dataset_infos.json", "squad.py",
		"plain_text/train-00000-of-00002.parquet", "plain_text/train-00001-of-00002.parquet",
		"plain_text/validation-00000-of-00001.parquet",
		"other/train-00000-of-00001.parquet",
	}
	for _, tc := range []struct {
		paths          []string
		subset, split  string
		format         Format
		want           string
		wantErrContain string
	}{
		{repo, "", "train", FormatAuto, "other/train-00000-of-00001.parquet plain_text/train-00000-of-00002.parquet plain_text/train-00001-of-00002.parquet", ""},
		{repo, "plain_text", "train", FormatAuto, "plain_text/train-00000-of-00002.parquet plain_text/train-00001-of-00002.parquet", ""},
		{repo, "plain_text", "dev", FormatAuto, "plain_text/validation-00000-of-00001.parquet", ""},
		{repo, "", "test", FormatAuto, "", `no data file for split "test"`},
		{repo, "nope", "train", FormatAuto, "", "under a directory named nope"},
		{[]string{"data.jsonl", "README.md"}, "", "train", FormatAuto, "data.jsonl", ""},
		{[]string{"data.jsonl"}, "", "validation", FormatAuto, "", "no data file"},
		{[]string{"data/dev.jsonl", "data/train.jsonl", "data/train.csv", "data/extra.jsonl"}, "", "train", FormatAuto, "data/train.jsonl", ""},
		{[]string{"data/dev.jsonl", "data/train.jsonl", "data/train.csv"}, "", "train", FormatCSV, "data/train.csv", ""},
		{[]string{"data/validation/part-0.csv", "data/train/part-0.csv"}, "", "validation", FormatAuto, "data/validation/part-0.csv", ""},
		{[]string{"data/train_sft-0000.parquet", "data/train_gen-0000.parquet", "data/test_sft-0000.parquet"}, "", "train_sft", FormatAuto, "data/train_sft-0000.parquet", ""},
	} {
		got, err := selectDataFiles(tc.paths, tc.subset, tc.split, tc.format)
		if tc.wantErrContain != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrContain) {
				t.Errorf("%s/%s: err = %v, want %q", tc.subset, tc.split, err, tc.wantErrContain)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("%v %s/%s: got %v, %v; want %s", tc.paths, tc.subset, tc.split, got, err, tc.want)
		}
	}
}

func TestParseHubSource(t *testing.T) {
	for src, want := range map[string][3]string{
		"hf://datasets/rajpurkar/squad":                      {"rajpurkar/squad", "", ""},
		"hf://datasets/rajpurkar/squad@v1/plain_text":        {"rajpurkar/squad", "v1", "plain_text"},
		"hf://datasets/o/d@refs%2Fconvert%2Fparquet/a/b.csv": {"o/d", "refs/convert/parquet", "a/b.csv"},
	} {
		id, rev, p, err := ParseHubSource(src)
		if err != nil || [3]string{id, rev, p} != want {
			t.Errorf("%s: %q %q %q %v", src, id, rev, p, err)
		}
	}
	for _, bad := range []string{"hf://models/o/m", "hf://datasets/o", "hf://datasets/o/d@", "hf://datasets/o--x/d"} {
		if _, _, _, err := ParseHubSource(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
