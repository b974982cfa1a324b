package gitremote

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// racePushes runs two uploads of different directories to the same branch
// at once, trials times, and checks that both succeed and both commits
// end up in the branch's history: the loser of each race commits on top of
// the winner, as the Hub applies a commit made without parentCommit to the
// branch's current head.
func racePushes(t *testing.T, trials int, bare string, opts func() Options) {
	t.Helper()
	ctx := context.Background()
	retried := 0
	for trial := range trials {
		dirs := [2]string{}
		for i := range dirs {
			dirs[i] = t.TempDir()
			write(t, filepath.Join(dirs[i], "config.json"), []byte(`{"model_type":"llama"}`))
			write(t, filepath.Join(dirs[i], "who.txt"), []byte(fmt.Sprintf("uploader %d, trial %d\n", i, trial)))
		}
		before := commitCount(t, bare, "main")
		var wg sync.WaitGroup
		start := make(chan struct{})
		res := [2]Result{}
		errs := [2]error{}
		for i := range dirs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				o := opts()
				o.Message = fmt.Sprintf("uploader %d trial %d", i, trial)
				res[i], errs[i] = Push(ctx, dirs[i], o)
			}()
		}
		close(start)
		wg.Wait()
		for i := range dirs {
			if errs[i] != nil {
				t.Fatalf("trial %d: uploader %d: %v", trial, i, errs[i])
			}
			if !res[i].Changed {
				t.Fatalf("trial %d: uploader %d made no commit: %+v", trial, i, res[i])
			}
			if err := exec.Command("git", "-C", bare, "merge-base", "--is-ancestor", res[i].Commit, "main").Run(); err != nil {
				t.Fatalf("trial %d: uploader %d's commit %s is not in main's history (lost): %v", trial, i, res[i].Commit, err)
			}
		}
		if res[0].Retries+res[1].Retries > 0 {
			retried++
		}
		if after := commitCount(t, bare, "main"); after != before+2 {
			t.Fatalf("trial %d: main has %d commits, want %d", trial, after, before+2)
		}
	}
	t.Logf("%d of %d trials raced: the loser committed again on top of the winner", retried, trials)
	if retried == 0 {
		t.Error("no trial raced: the test did not exercise concurrent updates")
	}
	run(t, "git", "-C", bare, "fsck", "--strict")
}

// TestPushLocalStaleRefLock: a <ref>.lock left by a killed writer makes the
// upload fail after a while with an error that says what to remove, instead
// of waiting forever or writing past it.
func TestPushLocalStaleRefLock(t *testing.T) {
	old := refLockWait
	refLockWait = 50 * time.Millisecond
	t.Cleanup(func() { refLockWait = old })
	bare := filepath.Join(t.TempDir(), "model.git")
	run(t, "git", "init", "-q", "--bare", "-b", "main", bare)
	lock := filepath.Join(bare, "refs", "heads", "main.lock")
	write(t, lock, nil)
	_, err := Push(context.Background(), modelDir(t, []byte("w")), Options{Remote: bare})
	if err == nil || !strings.Contains(err.Error(), lock) || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("err = %v, want one naming %s", err, lock)
	}
	if out := run(t, "git", "-C", bare, "for-each-ref"); out != "" {
		t.Errorf("refs written past the lock: %q", out)
	}
	os.Remove(lock)
	if _, err := Push(context.Background(), modelDir(t, []byte("w")), Options{Remote: bare}); err != nil {
		t.Fatal(err)
	}
}

func commitCount(t *testing.T, bare, branch string) int {
	t.Helper()
	out, err := exec.Command("git", "-C", bare, "rev-list", "--count", branch).Output()
	if err != nil {
		return 0 // no branch yet
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPushLocalConcurrentKeepsBothCommits(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "model.git")
	run(t, "git", "init", "-q", "--bare", "-b", "main", bare)
	racePushes(t, 20, bare, func() Options { return Options{Remote: bare} })
}

func TestPushHTTPConcurrentKeepsBothCommits(t *testing.T) {
	s := newGitServer(t, false)
	racePushes(t, 10, filepath.Join(s.root, "model.git"), func() Options {
		return Options{Remote: s.URL + "/model.git", Username: "alice", Password: "s3cret"}
	})
}

// TestPushFollowsRemoteDefaultBranch uploads to empty repositories whose
// HEAD names refs/heads/trunk without giving a branch: the commit goes to
// trunk, so that a plain `git clone` checks the files out.
func TestPushFollowsRemoteDefaultBranch(t *testing.T) {
	s := newGitServer(t, false)
	httpBare := filepath.Join(s.root, "trunk.git")
	run(t, "git", "init", "-q", "--bare", "-b", "trunk", httpBare)
	localBare := filepath.Join(t.TempDir(), "trunk.git")
	run(t, "git", "init", "-q", "--bare", "-b", "trunk", localBare)
	for _, tc := range []struct {
		name, bare string
		o          Options
	}{
		{"local", localBare, Options{Remote: localBare}},
		{"http", httpBare, Options{Remote: s.URL + "/trunk.git", Username: "alice", Password: "s3cret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := modelDir(t, []byte("weights"))
			res, err := Push(context.Background(), dir, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Branch != "trunk" {
				t.Errorf("committed to %q, want trunk", res.Branch)
			}
			work := filepath.Join(t.TempDir(), "clone")
			run(t, "git", "clone", "-q", tc.bare, work)
			for name, want := range map[string]string{"config.json": `{"model_type":"llama"}`, "tokenizer/tokenizer.json": `{"version":"1.0"}`, "model.safetensors": "weights"} {
				if got := readOr(filepath.Join(work, filepath.FromSlash(name))); got != want {
					t.Errorf("clone %s = %q, want %q", name, got, want)
				}
			}
			// Now that trunk has a commit, HEAD is advertised the usual way.
			write(t, filepath.Join(dir, "metrics.json"), []byte(`{}`))
			if res, err := Push(context.Background(), dir, tc.o); err != nil || res.Branch != "trunk" || !res.Changed {
				t.Fatalf("second push: %+v, %v", res, err)
			}
			if out := run(t, "git", "-C", tc.bare, "for-each-ref", "--format=%(refname)"); out != "refs/heads/trunk\n" {
				t.Errorf("refs = %q, want only refs/heads/trunk", out)
			}
			if n := commitCount(t, tc.bare, "trunk"); n != 2 {
				t.Errorf("trunk has %d commits, want 2", n)
			}
		})
	}
}

func readOr(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}
