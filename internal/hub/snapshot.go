package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/google/renameio/v2"
)

// SnapshotOptions tunes Snapshot.
type SnapshotOptions struct {
	// RepoType is typeModel (the default) or typeDataset.
	RepoType string
	// AllowPatterns keeps only the files whose path matches one of these
	// shell patterns ("*.json", "*.safetensors", "tokenizer*"), matched as
	// huggingface_hub does: '*' also crosses '/', and a pattern ending in
	// '/' matches everything below it. Empty keeps every file.
	AllowPatterns []string
	// CacheDir is the Hub cache root; empty means DefaultCacheDir(os.Getenv).
	CacheDir string
	// Progress, if set, is called as bytes of a file arrive.
	Progress func(file string, done, total int64)
}

// DefaultCacheDir returns the Hub cache root as huggingface_hub picks it:
// $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
// else ~/.cache/huggingface/hub.
func DefaultCacheDir(getenv func(string) string) string {
	if d := getenv("HF_HUB_CACHE"); d != "" {
		return d
	}
	if d := getenv("HF_HOME"); d != "" {
		return filepath.Join(d, "hub")
	}
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "huggingface", "hub")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "huggingface", "hub")
}

// RepoCacheDir is the folder of one repository in the cache,
// e.g. CACHE/models--OWNER--NAME.
func RepoCacheDir(cacheDir, repoType, repoID string) string {
	if repoType == "" {
		repoType = typeModel
	}
	return filepath.Join(cacheDir, repoType+"s--"+strings.ReplaceAll(repoID, "/", "--"))
}

var commitSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Snapshot makes the files of a repository at revision (empty: "main")
// available in the local cache and returns the snapshot directory,
// CACHE/models--OWNER--NAME/snapshots/<commit sha>, whose entries are
// symlinks into blobs/ (the layout huggingface_hub uses, so both share a
// cache).
//
// The revision is resolved to a commit once, and every file is fetched at
// that commit. Files already in the cache are not fetched again; a call for
// a commit whose files are all cached makes no request at all when the
// revision is a commit sha (and only the revision lookup otherwise). When
// the Hub cannot be reached, a complete cached snapshot of the revision is
// used. Processes sharing the cache may run Snapshot at once: each blob is
// downloaded under a lock file, into blobs/<etag>.incomplete (resumable),
// and renamed into place.
func (c *Client) Snapshot(ctx context.Context, repoID, revision string, opts SnapshotOptions) (string, error) {
	if err := ValidateRepoID(repoID); err != nil {
		return "", err
	}
	typ := opts.RepoType
	if typ == "" {
		typ = typeModel
	}
	cache := opts.CacheDir
	if cache == "" {
		cache = DefaultCacheDir(os.Getenv)
	}
	rev := orMain(revision)
	s := &snapshot{c: c, typ: typ, repoID: repoID, rev: rev, opts: opts,
		repoDir: RepoCacheDir(cache, typ, repoID),
		lockDir: filepath.Join(cache, ".locks", filepath.Base(RepoCacheDir(cache, typ, repoID)))}
	dir, err := s.run(ctx)
	if err != nil {
		return "", fmt.Errorf("snapshot %s@%s: %w", repoID, rev, err)
	}
	return dir, nil
}

type snapshot struct {
	c       *Client
	typ     string
	repoID  string
	rev     string
	opts    SnapshotOptions
	repoDir string
	lockDir string
}

func (s *snapshot) run(ctx context.Context) (string, error) {
	var sha string
	if commitSHA.MatchString(s.rev) {
		sha = s.rev
		if entries, err := s.readManifest(sha); err == nil {
			if dir, ok := s.complete(sha, entries); ok {
				return dir, nil
			}
		}
	}
	if sha == "" {
		resolved, err := s.c.ResolveRevision(ctx, s.typ, s.repoID, s.rev)
		if err != nil {
			var herr *Error
			if !errors.As(err, &herr) && ctx.Err() == nil {
				// The Hub is unreachable: a complete cached snapshot will do.
				if dir, ok := s.offline(); ok {
					s.c.log.Warn("hub unreachable, using the cached snapshot", "repo", s.repoID, "revision", s.rev, "err", err)
					return dir, nil
				}
			}
			return "", err
		}
		sha = resolved
	}
	entries, err := s.readManifest(sha)
	if err != nil {
		entries, err = s.c.ListTree(ctx, s.typ, s.repoID, sha, "", true)
		if err != nil {
			return "", err
		}
		if err := s.writeManifest(sha, entries); err != nil {
			return "", err
		}
	}
	files := s.selected(entries)
	if len(files) == 0 {
		return "", fmt.Errorf("no file matches %q at commit %s", s.opts.AllowPatterns, sha)
	}
	for _, e := range files {
		if err := s.fetch(ctx, sha, e); err != nil {
			return "", err
		}
	}
	if s.rev != sha {
		if err := writeFileAtomic(filepath.Join(s.repoDir, "refs", filepath.FromSlash(s.rev)), []byte(sha)); err != nil {
			return "", fmt.Errorf("write ref: %w", err)
		}
	}
	return filepath.Join(s.repoDir, "snapshots", sha), nil
}

// offline returns the cached snapshot for s.rev when every selected file is there.
func (s *snapshot) offline() (string, bool) {
	sha := s.rev
	if !commitSHA.MatchString(sha) {
		b, err := os.ReadFile(filepath.Join(s.repoDir, "refs", filepath.FromSlash(s.rev)))
		if err != nil {
			return "", false
		}
		sha = strings.TrimSpace(string(b))
	}
	entries, err := s.readManifest(sha)
	if err != nil {
		return "", false
	}
	return s.complete(sha, entries)
}

// complete reports whether every selected file of the commit is linked to a blob.
func (s *snapshot) complete(sha string, entries []TreeEntry) (string, bool) {
	files := s.selected(entries)
	if len(files) == 0 {
		return "", false
	}
	dir := filepath.Join(s.repoDir, "snapshots", sha)
	for _, e := range files {
		st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(e.Path)))
		if err != nil || st.Size() != e.Size {
			return "", false
		}
	}
	return dir, true
}

func (s *snapshot) selected(entries []TreeEntry) []TreeEntry {
	var out []TreeEntry
	for _, e := range entries {
		if e.Type == "file" && matchAny(s.opts.AllowPatterns, e.Path) {
			out = append(out, e)
		}
	}
	return out
}

// manifestPath keeps the tree listing of a commit (commits never change)
// beside the cache's own folders, so that a later run can tell whether a
// snapshot is complete without asking the Hub.
func (s *snapshot) manifestPath(sha string) string {
	return filepath.Join(s.repoDir, ".kfllm", "tree-"+sha+".json")
}

func (s *snapshot) readManifest(sha string) ([]TreeEntry, error) {
	b, err := os.ReadFile(s.manifestPath(sha))
	if err != nil {
		return nil, err
	}
	var entries []TreeEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, err
	}
	return entries, nil
}

func (s *snapshot) writeManifest(sha string, entries []TreeEntry) error {
	b, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.manifestPath(sha), b)
}

// fetch puts one file's blob in the cache (under its lock) and links it
// from the snapshot directory.
func (s *snapshot) fetch(ctx context.Context, sha string, e TreeEntry) error {
	if strings.Contains(e.Path, "..") || strings.HasPrefix(e.Path, "/") {
		return fmt.Errorf("refusing file path %q from the Hub", e.Path)
	}
	etag := e.ETag()
	if etag == "" || strings.ContainsAny(etag, `/\`) {
		return fmt.Errorf("file %s: bad etag %q", e.Path, etag)
	}
	blob := filepath.Join(s.repoDir, "blobs", etag)
	if !sizeIs(blob, e.Size) {
		if err := s.fetchBlob(ctx, sha, e, blob); err != nil {
			return err
		}
	}
	link := filepath.Join(s.repoDir, "snapshots", sha, filepath.FromSlash(e.Path))
	target, err := filepath.Rel(filepath.Dir(link), blob)
	if err != nil {
		return err
	}
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d-%d", link, os.Getpid(), time.Now().UnixNano())
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", e.Path, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", e.Path, err)
	}
	return nil
}

func (s *snapshot) fetchBlob(ctx context.Context, sha string, e TreeEntry, blob string) error {
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(s.lockDir, 0o755); err != nil {
		return err
	}
	lock := flock.New(filepath.Join(s.lockDir, e.ETag()+".lock"))
	ok, err := lock.TryLockContext(ctx, 100*time.Millisecond)
	if err != nil || !ok {
		return fmt.Errorf("lock %s: %w", e.Path, errors.Join(err, ctx.Err()))
	}
	defer lock.Unlock()
	if sizeIs(blob, e.Size) {
		return nil // another process fetched it while we waited
	}
	opts := DownloadOptions{ExpectedSize: e.Size}
	if e.LFS != nil {
		opts.ExpectedSHA256 = e.LFS.OID
	}
	if s.opts.Progress != nil {
		opts.Progress = func(done, total int64) { s.opts.Progress(e.Path, done, total) }
	}
	if _, err := s.c.DownloadFile(ctx, s.c.FileURL(s.typ, s.repoID, sha, e.Path), blob, opts); err != nil {
		return fmt.Errorf("file %s: %w", e.Path, err)
	}
	return nil
}

func sizeIs(path string, size int64) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Size() == size
}

// matchAny matches p against shell patterns as Python's fnmatch does
// ('*' crosses '/'); no patterns matches everything.
func matchAny(patterns []string, p string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, pat := range patterns {
		if strings.HasSuffix(pat, "/") {
			pat += "*"
		}
		if fnmatch(pat, p) {
			return true
		}
	}
	return false
}

func fnmatch(pattern, name string) bool {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch ch := pattern[i]; ch {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			j := strings.IndexByte(pattern[i+1:], ']')
			if j < 0 {
				b.WriteString(`\[`)
				continue
			}
			class := pattern[i+1 : i+1+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i += j + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(ch)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	return err == nil && re.MatchString(name)
}

// writeFileAtomic makes path's directory and writes data to path atomically
// (renameio), readable by the owner only.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return renameio.WriteFile(path, data, 0o600)
}
