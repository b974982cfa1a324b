package upload

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/hub/hubtest"
	"github.com/kfllm/kfllm/internal/modelcard"
)

func TestClassify(t *testing.T) {
	existing := t.TempDir()
	for in, want := range map[string]Kind{
		"me/model":                        KindHub,
		"https://huggingface.co/me/model": KindGitURL,
		"git@github.com:me/model.git":     KindGitURL,
		"file:///srv/model.git":           KindLocalPath,
		"/srv/model.git":                  KindLocalPath,
		"./out/model.git":                 KindLocalPath,
		existing:                          KindLocalPath,
	} {
		got, err := Classify(in)
		if err != nil || got != want {
			t.Errorf("Classify(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a/b/c", "me/mo del"} {
		if _, err := Classify(bad); err == nil {
			t.Errorf("Classify(%q) accepted", bad)
		}
	}
}

func modelDir(t *testing.T) string {
	d := t.TempDir()
	for name, body := range map[string]string{
		"config.json":        `{"model_type":"llama","_name_or_path":"me/base"}`,
		"model.safetensors":  "\x00\x01weights",
		"training_args.json": `{"learning_rate":0.001,"dataset":"hf://datasets/rajpurkar/squad"}`,
		"metrics.json":       `{"eval_loss":2.5}`,
	} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestRunHubWritesCardAndUploads(t *testing.T) {
	s := hubtest.New(t)
	dir := modelDir(t)
	var log strings.Builder
	res, err := Run(context.Background(), Options{
		ModelDir: dir, Repo: "me/tuned",
		Hub: hub.New(hub.Options{Endpoint: s.URL, Token: s.Token, HTTPClient: s.UploadHTTPClient(), UserAgent: "kfllm-upload"}), ModelCard: true, Progress: &log,
		Card: hubtestCard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	head, files, _ := s.Repo("model", "me/tuned").Files("main")
	if res.Target != "hub" || !res.Changed || res.Commit != head || res.Revision != "main" ||
		res.RepoURL != s.URL+"/me/tuned" || res.URL != s.URL+"/me/tuned/commit/"+head {
		t.Fatalf("result %+v, want commit %s of %s/me/tuned on main", res, head, s.URL)
	}
	if want := "hub me/tuned@main committed: commit " + head + " " + res.URL; res.Summary() != want {
		t.Errorf("summary %q, want %q", res.Summary(), want)
	}
	card := string(files["README.md"].Data)
	for _, want := range []string{"base_model: me/base", "- rajpurkar/squad", "license: mit", "# me/tuned", "| eval_loss | 2.5 |"} {
		if !strings.Contains(card, want) {
			t.Errorf("uploaded card lacks %q:\n%s", want, card)
		}
	}
	if !files["model.safetensors"].LFS {
		t.Error("weights not stored through LFS")
	}
	if strings.Contains(log.String(), s.Token) {
		t.Error("token in the progress output")
	}
	// A rerun with the same files commits nothing and reports the commit
	// that holds them.
	res2, err := Run(context.Background(), Options{
		ModelDir: dir, Repo: "me/tuned",
		Hub: hub.New(hub.Options{Endpoint: s.URL, Token: s.Token, HTTPClient: s.UploadHTTPClient(), UserAgent: "kfllm-upload"}), ModelCard: true, Card: hubtestCard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Changed || res2.Commit != head || res2.RepoURL != res.RepoURL || !strings.Contains(res2.Summary(), "unchanged: commit "+head) {
		t.Errorf("rerun %+v (%s), want unchanged at %s", res2, res2.Summary(), head)
	}
}

func hubtestCard() modelcard.Info { return modelcard.Info{License: "mit"} }

func TestRunHubNeedsToken(t *testing.T) {
	dir := modelDir(t)
	_, err := Run(context.Background(), Options{ModelDir: dir, Repo: "me/tuned", ModelCard: true})
	if !errors.Is(err, hub.ErrNoToken) {
		t.Fatalf("err = %v, want ErrNoToken", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err == nil {
		t.Error("a failed upload still wrote the card")
	}
}

func TestRunLocalBareRepo(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := modelDir(t)
	bare := filepath.Join(t.TempDir(), "model.git")
	res, err := Run(context.Background(), Options{ModelDir: dir, Repo: bare, ModelCard: true, CommitMessage: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("git", "-C", bare, "show", "main:README.md").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "library_name: transformers") {
		t.Fatalf("README in the bare repo: %v\n%s", err, out)
	}
	head := gitHead(t, bare, "main")
	if res.Target != "git" || !res.Changed || res.Commit != head || res.Revision != "main" || res.RepoURL != bare {
		t.Fatalf("result %+v, want commit %s on main of %s", res, head, bare)
	}
	if want := "git " + bare + "@main committed: commit " + head; res.Summary() != want {
		t.Errorf("summary %q, want %q", res.Summary(), want)
	}
	res2, err := Run(context.Background(), Options{ModelDir: dir, Repo: bare, ModelCard: true})
	if err != nil || res2.Changed || res2.Commit != res.Commit {
		t.Fatalf("rerun %+v, %v (first %s)", res2, err, res.Commit)
	}
}

func gitHead(t *testing.T, bare, branch string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", bare, "rev-parse", "refs/heads/"+branch).Output()
	if err != nil {
		t.Fatalf("rev-parse %s: %v", branch, err)
	}
	return strings.TrimSpace(string(out))
}

// TestRunGitFollowsRemoteHEAD: without --revision an upload to an empty
// bare repository whose HEAD names trunk commits to trunk, so that a plain
// `git clone` checks the model out; --revision main still commits to main.
func TestRunGitFollowsRemoteHEAD(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := modelDir(t)
	bare := filepath.Join(t.TempDir(), "model.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "trunk", bare).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	res, err := Run(context.Background(), Options{ModelDir: dir, Repo: bare})
	if err != nil {
		t.Fatal(err)
	}
	if res.Revision != "trunk" || res.Commit != gitHead(t, bare, "trunk") {
		t.Fatalf("result %+v, want a commit on trunk", res)
	}
	work := filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command("git", "clone", "-q", bare, work).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(work, "metrics.json")); err != nil || string(b) != `{"eval_loss":2.5}` {
		t.Fatalf("clone holds metrics.json %q, %v", b, err)
	}
	res2, err := Run(context.Background(), Options{ModelDir: dir, Repo: bare, Revision: "main"})
	if err != nil || res2.Revision != "main" || res2.Commit != gitHead(t, bare, "main") {
		t.Fatalf("--revision main: %+v, %v", res2, err)
	}
}

// snapshot is every entry under dir: path -> mode and content (symlinks by
// target), so that two snapshots are equal only if nothing was added,
// removed or changed.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := st.Mode().String()
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			v += " -> " + target
		case st.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// changed lists the entries that differ between two snapshots.
func changed(before, after map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if v, ok := before[k]; !ok {
			out = append(out, "added "+k)
		} else if v != after[k] {
			out = append(out, "changed "+k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[k]; !ok {
			out = append(out, "removed "+k)
		}
	}
	return out
}

// TestRunLeavesModelDirUntouched: upload publishes a fresh card without
// writing into the model directory it is given (under `pipeline local`
// that is finetune's cached output, which later runs reuse), for the Hub
// and a git remote, whether the directory has no README.md or an older
// generated one; the published repository holds the card and every file of
// the directory, subdirectories and executable bits included.
func TestRunLeavesModelDirUntouched(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	s := hubtest.New(t)
	oldCard := "---\nlibrary_name: transformers\n---\n" + modelcard.Marker + "\nan older card\n"
	for _, c := range []struct{ name, target, readme string }{
		{"hub, no card", "hub", ""},
		{"hub, an older generated card", "hub", oldCard},
		{"git, no card", "git", ""},
		{"git, an older generated card", "git", oldCard},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := modelDir(t)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(os.MkdirAll(filepath.Join(dir, "tokenizer"), 0o755))
			must(os.WriteFile(filepath.Join(dir, "tokenizer", "tokenizer.json"), []byte(`{"version":"1.0"}`), 0o644))
			must(os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\n"), 0o755))
			if c.readme != "" {
				must(os.WriteFile(filepath.Join(dir, "README.md"), []byte(c.readme), 0o644))
			}
			must(os.Chmod(dir, 0o755))
			before := snapshot(t, dir)
			o := Options{ModelDir: dir, ModelCard: true, Card: hubtestCard(), CommitMessage: "m"}
			var read func(name string) (string, bool)
			if c.target == "hub" {
				o.Repo = "me/untouched-" + strings.ReplaceAll(strings.ReplaceAll(c.name, ",", ""), " ", "-")
				o.Hub = hub.New(hub.Options{Endpoint: s.URL, Token: s.Token, HTTPClient: s.UploadHTTPClient(), UserAgent: "kfllm-upload"})
				read = func(name string) (string, bool) {
					_, files, _ := s.Repo("model", o.Repo).Files("main")
					f, ok := files[name]
					return string(f.Data), ok
				}
			} else {
				o.Repo = filepath.Join(t.TempDir(), "model.git")
				read = func(name string) (string, bool) {
					out, err := exec.Command("git", "-C", o.Repo, "show", "main:"+name).Output()
					return string(out), err == nil
				}
			}
			if _, err := Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			if diff := changed(before, snapshot(t, dir)); diff != nil {
				t.Errorf("the upload changed its model directory: %v", diff)
			}
			card, ok := read("README.md")
			if !ok || !strings.Contains(card, modelcard.Marker) || strings.Contains(card, "an older card") || !strings.Contains(card, "license: mit") {
				t.Errorf("published README.md (present %v) is not the fresh card:\n%s", ok, card)
			}
			for name, want := range map[string]string{"metrics.json": `{"eval_loss":2.5}`, "tokenizer/tokenizer.json": `{"version":"1.0"}`, "run.sh": "#!/bin/sh\n"} {
				if got, ok := read(name); !ok || got != want {
					t.Errorf("published %s = %q (present %v), want %q", name, got, ok, want)
				}
			}
			if c.target == "git" {
				out, err := exec.Command("git", "-C", o.Repo, "ls-tree", "main", "run.sh").Output()
				if err != nil || !strings.HasPrefix(string(out), "100755 ") {
					t.Errorf("run.sh in the commit: %q, %v; want mode 100755", out, err)
				}
			}
		})
	}
}

// TestRunKeepsHandWrittenCard: a README.md someone wrote is published as
// it is, and the directory stays as it was.
func TestRunKeepsHandWrittenCard(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := modelDir(t)
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("# my model\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	bare := filepath.Join(t.TempDir(), "model.git")
	var log strings.Builder
	if _, err := Run(context.Background(), Options{ModelDir: dir, Repo: bare, ModelCard: true, Progress: &log}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "-C", bare, "show", "main:README.md").Output(); err != nil || string(out) != "# my model\n" {
		t.Errorf("published README.md %q, %v; want the hand-written one", out, err)
	}
	if diff := changed(before, snapshot(t, dir)); diff != nil {
		t.Errorf("the upload changed its model directory: %v", diff)
	}
	if !strings.Contains(log.String(), "kept the hand-written README.md") {
		t.Errorf("log does not say the card was kept:\n%s", log.String())
	}
}
