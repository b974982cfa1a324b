package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// UploadOptions says where UploadFolder commits a directory.
type UploadOptions struct {
	RepoID   string // OWNER/NAME
	RepoType string // RepoTypeModel (default), RepoTypeDataset or RepoTypeSpace
	// Revision is the branch to commit to; default "main". It is created
	// from the default branch when missing.
	Revision string
	// Private makes a newly created repository private (an existing one
	// keeps its visibility).
	Private bool
	// CommitMessage is the commit summary; default "Upload folder using kfllm".
	CommitMessage     string
	CommitDescription string
	// DeleteMissing also deletes remote files that are not in the
	// directory (never .gitattributes).
	DeleteMissing bool
	// Progress, when set, receives a line per step and, for long uploads,
	// the bytes sent every few seconds.
	Progress io.Writer
}

// UploadResult says what UploadFolder did.
type UploadResult struct {
	// CommitOID is the revision's head after the upload: the new commit, or
	// when nothing changed the commit that already held these files.
	CommitOID string
	CommitURL string
	RepoURL   string // the repository's page, e.g. https://huggingface.co/OWNER/NAME
	Changed   bool   // false: the revision already held these files, no commit made
	Created   bool   // the repository was created by this call
	Files     int    // files considered (not ignored by the Hub)
	Added     int    // files in the commit (new or changed)
	Deleted   int
	LFSSent   int // LFS objects uploaded
	LFSHeld   int // LFS objects the Hub already had
}

// localFile is a file of the directory being uploaded.
type localFile struct {
	path   string // on disk
	name   string // slash-separated path in the repository
	size   int64
	sample []byte // first 512 bytes, for preupload
	sha256 string // hex
	gitOID string // hex sha1 of "blob <size>\x00" + content, as git names blobs
	lfs    bool   // the Hub wants it in LFS
}

// UploadFolder commits the files under dir to the repository as
// huggingface_hub's upload_folder does: it creates the repository if
// missing, asks preupload which files go to LFS, uploads the LFS objects the
// Hub lacks (basic or multipart), then makes one commit with the regular
// files inline. Files equal to those at the revision are left out; when
// nothing differs no commit is made. It needs a token (ErrNoToken).
func (c *Client) UploadFolder(ctx context.Context, dir string, o UploadOptions) (*UploadResult, error) {
	if !c.HasToken() {
		return nil, ErrNoToken
	}
	if err := ValidateRepoID(o.RepoID); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	typ, err := repoType(o.RepoType)
	if err != nil {
		return nil, err
	}
	if o.Revision == "" {
		o.Revision = "main"
	}
	if o.CommitMessage == "" {
		o.CommitMessage = "Upload folder using kfllm"
	}
	p := &progress{w: o.Progress}
	files, err := scanFolder(dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("upload: %s holds no files", dir)
	}
	res := &UploadResult{RepoURL: c.repoURL(typ, o.RepoID)}
	if res.Created, err = c.CreateRepo(ctx, CreateRepoOptions{RepoID: o.RepoID, RepoType: typ, Private: o.Private}); err != nil {
		return nil, err
	}
	if res.Created {
		p.logf("hub: created %s repo %s", typ, o.RepoID)
	}
	// The files are compared with those of the head commit, so that the
	// commit reported when nothing changed is the one that holds them.
	head, err := c.ResolveRevision(ctx, typ, o.RepoID, o.Revision)
	if errors.Is(err, ErrRevisionNotFound) {
		if err := c.createBranch(ctx, typ, o.RepoID, o.Revision); err != nil {
			return nil, err
		}
		p.logf("hub: created branch %s", o.Revision)
		head, err = c.ResolveRevision(ctx, typ, o.RepoID, o.Revision)
	}
	if err != nil {
		return nil, err
	}
	remote, err := c.remoteFiles(ctx, typ, o.RepoID, head)
	if err != nil {
		return nil, err
	}
	if files, err = c.preupload(ctx, typ, o.RepoID, o.Revision, files); err != nil {
		return nil, err
	}
	res.Files = len(files)

	var ops []commitOp
	var objs []lfsObject
	local := map[string]bool{}
	for _, f := range files {
		local[f.name] = true
		if r, ok := remote[f.name]; ok && sameFile(f, r) {
			continue
		}
		if f.lfs {
			objs = append(objs, lfsObject{path: f.path, name: f.name, oid: f.sha256, size: f.size})
			ops = append(ops, commitOp{kind: "lfsFile", name: f.name, oid: f.sha256, size: f.size})
		} else {
			ops = append(ops, commitOp{kind: "file", name: f.name, path: f.path, size: f.size})
		}
	}
	res.Added = len(ops)
	if o.DeleteMissing {
		var gone []string
		for name := range remote {
			if !local[name] && name != ".gitattributes" {
				gone = append(gone, name)
			}
		}
		sort.Strings(gone)
		for _, name := range gone {
			ops = append(ops, commitOp{kind: "deletedFile", name: name})
		}
		res.Deleted = len(gone)
	}
	if len(ops) == 0 {
		res.CommitOID, res.CommitURL = head, res.RepoURL+"/commit/"+head
		p.logf("hub: %s@%s already holds these %d files at %s; no new commit", o.RepoID, o.Revision, len(files), head)
		return res, nil
	}
	st, err := c.uploadLFS(ctx, typ, o.RepoID, o.Revision, objs, p)
	res.LFSSent, res.LFSHeld = st.sent, st.skipped
	if err != nil {
		return res, err
	}
	info, err := c.createCommit(ctx, typ, o.RepoID, o.Revision, o.CommitMessage, o.CommitDescription, ops)
	if err != nil {
		return res, err
	}
	res.Changed, res.CommitOID, res.CommitURL = true, info.CommitOID, info.CommitURL
	p.logf("hub: committed %d files (%d deleted) to %s@%s: %s", res.Added, res.Deleted, o.RepoID, o.Revision, info.CommitURL)
	return res, nil
}

// repoURL is the repository's page on the Hub: {endpoint}/{repo} for
// models, {endpoint}/{type}s/{repo} otherwise.
func (c *Client) repoURL(typ, repoID string) string {
	prefix := "/"
	if typ != RepoTypeModel {
		prefix = "/" + typ + "s/"
	}
	return strings.TrimSuffix(c.Endpoint(), "/") + prefix + repoID
}

// remoteFiles maps path -> entry for the files at revision.
func (c *Client) remoteFiles(ctx context.Context, typ, repoID, rev string) (map[string]TreeEntry, error) {
	entries, err := c.ListTree(ctx, typ, repoID, rev, "", true)
	if err != nil {
		return nil, err
	}
	out := make(map[string]TreeEntry, len(entries))
	for _, e := range entries {
		if e.Type == "file" {
			out[e.Path] = e
		}
	}
	return out, nil
}

// sameFile reports whether the remote entry holds the local file's bytes:
// the LFS sha256 for LFS files, the git blob id for regular ones.
func sameFile(f localFile, r TreeEntry) bool {
	if r.LFS != nil {
		return f.lfs && r.LFS.OID == f.sha256 && r.LFS.Size == f.size
	}
	return !f.lfs && r.OID == f.gitOID
}

// scanFolder lists and hashes the files under dir (skipping .git and
// huggingface_hub's .cache/huggingface), reading each once in a streaming
// way: sha256 and git blob sha1 together.
func scanFolder(dir string) ([]localFile, error) {
	var out []localFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" || rel == ".cache/huggingface" {
				return filepath.SkipDir
			}
			return nil
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return nil
		}
		f, err := hashLocal(p, st.Size())
		if err != nil {
			return err
		}
		f.name = rel
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	return out, nil
}

func hashLocal(p string, size int64) (localFile, error) {
	fh, err := os.Open(p)
	if err != nil {
		return localFile{}, err
	}
	defer fh.Close()
	sample := make([]byte, 512)
	n, err := io.ReadFull(fh, sample)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return localFile{}, fmt.Errorf("read %s: %w", p, err)
	}
	sample = sample[:n]
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return localFile{}, err
	}
	s256, s1 := sha256.New(), sha1.New()
	fmt.Fprintf(s1, "blob %d\x00", size)
	got, err := io.Copy(io.MultiWriter(s256, s1), fh)
	if err != nil {
		return localFile{}, fmt.Errorf("read %s: %w", p, err)
	}
	if got != size {
		return localFile{}, fmt.Errorf("read %s: %d bytes, stat said %d (changing while scanned?)", p, got, size)
	}
	return localFile{path: p, size: size, sample: sample,
		sha256: hex.EncodeToString(s256.Sum(nil)), gitOID: hex.EncodeToString(s1.Sum(nil))}, nil
}

// preuploadBatch is how many files one preupload request names, as
// huggingface_hub's chunk size.
const preuploadBatch = 256

// preupload asks POST /api/{type}s/{repo}/preupload/{rev} how the Hub wants
// each file stored ("lfs" or "regular") and whether it ignores it; ignored
// files are dropped.
func (c *Client) preupload(ctx context.Context, typ, repoID, rev string, files []localFile) ([]localFile, error) {
	type reqFile struct {
		Path   string `json:"path"`
		Sample string `json:"sample"`
		Size   int64  `json:"size"`
	}
	var resp struct {
		Files []struct {
			Path         string `json:"path"`
			UploadMode   string `json:"uploadMode"`
			ShouldIgnore bool   `json:"shouldIgnore"`
		} `json:"files"`
	}
	kept := files[:0:0]
	for start := 0; start < len(files); start += preuploadBatch {
		chunk := files[start:min(start+preuploadBatch, len(files))]
		var body struct {
			Files []reqFile `json:"files"`
		}
		idx := map[string]int{}
		for i, f := range chunk {
			idx[f.name] = i
			body.Files = append(body.Files, reqFile{Path: f.name, Sample: base64.StdEncoding.EncodeToString(f.sample), Size: f.size})
		}
		b, _ := json.Marshal(body)
		resp.Files = nil
		err := c.DoJSON(ctx, &Request{
			Method: http.MethodPost, Path: apiRepoPath(typ, repoID) + "/preupload/" + escapeRevision(rev),
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   bytesBody(b), ContentLength: int64(len(b)),
			Idempotent: true,
		}, &resp)
		if err != nil {
			return nil, fmt.Errorf("preupload to %s@%s: %w%s", repoID, rev, err, writeHint(err))
		}
		seen := 0
		for _, r := range resp.Files {
			i, ok := idx[r.Path]
			if !ok {
				return nil, fmt.Errorf("preupload to %s: answer names unknown file %q", repoID, r.Path)
			}
			seen++
			if r.ShouldIgnore {
				continue
			}
			f := chunk[i]
			switch r.UploadMode {
			case "lfs":
				f.lfs = true
			case "regular":
			default:
				return nil, fmt.Errorf("preupload to %s: unknown upload mode %q for %s", repoID, r.UploadMode, r.Path)
			}
			kept = append(kept, f)
		}
		if seen != len(chunk) {
			return nil, fmt.Errorf("preupload to %s: answer covers %d of %d files", repoID, seen, len(chunk))
		}
	}
	return kept, nil
}

// progress writes step lines and, for long transfers, periodic byte counts.
type progress struct {
	w  io.Writer
	mu sync.Mutex
}

func (p *progress) logf(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// reader reports bytes read from r every few seconds.
func (p *progress) reader(r io.Reader, label string, total int64) io.Reader {
	if p == nil || p.w == nil {
		return r
	}
	return &progressReader{r: r, p: p, label: label, total: total, last: time.Now()}
}

type progressReader struct {
	r     io.Reader
	p     *progress
	label string
	total int64
	done  int64
	last  time.Time
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.done += int64(n)
	if time.Since(pr.last) >= 5*time.Second {
		pr.last = time.Now()
		pr.p.logf("lfs: %s: %s of %s sent", pr.label, humanBytes(pr.done), humanBytes(pr.total))
	}
	return n, err
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
