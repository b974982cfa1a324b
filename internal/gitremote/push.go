package gitremote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"
)

// DefaultLFSThreshold is the size from which files go through git-lfs: the
// Hugging Face Hub refuses plain git blobs above 10 MiB.
const DefaultLFSThreshold = 10 << 20

// Options says where and how to push.
type Options struct {
	// Remote is an http(s) git URL or the path (or file:// URL) of a local
	// bare repository.
	Remote string
	// Username and Password are sent as HTTP basic auth to http(s) remotes
	// when Password is set. Neither is ever logged or put in an error.
	Username, Password string
	// Branch is the branch to commit to; default: the branch the remote's
	// HEAD names (also in an empty repository, as `git clone` will check it
	// out), else "main".
	Branch string
	// Message is the commit message; default "Upload model".
	Message string
	// AuthorName and AuthorEmail sign the commit; defaults "kfllm" and
	// "kfllm@localhost".
	AuthorName, AuthorEmail string
	// LFSThreshold is the size in bytes from which a file is stored through
	// git-lfs; 0 means DefaultLFSThreshold, a negative value disables LFS.
	LFSThreshold int64
	// HTTPClient carries the git-lfs requests; default http.DefaultClient.
	HTTPClient *http.Client
	// Progress, when set, receives one line per step.
	Progress io.Writer
	// Now stamps the commit; default time.Now.
	Now func() time.Time
}

// Result describes what Push did.
type Result struct {
	Commit      string // the branch head after the push
	Branch      string // the branch committed to
	URL         string // the remote, with any credentials in it removed
	Changed     bool   // false when the tree equalled the head and nothing was pushed
	Retries     int    // times the branch moved under the upload and it committed again on top
	Files       int    // files in the committed tree (including .gitattributes when written)
	LFSUploaded int    // LFS objects sent
	LFSSkipped  int    // LFS objects the remote already held
}

// Push commits the files under dir to the remote branch and pushes.
func Push(ctx context.Context, dir string, o Options) (Result, error) {
	if o.Remote == "" {
		return Result{}, errors.New("git push: no remote given")
	}
	if o.Message == "" {
		o.Message = "Upload model"
	}
	if o.AuthorName == "" {
		o.AuthorName = "kfllm"
	}
	if o.AuthorEmail == "" {
		o.AuthorEmail = "kfllm@localhost"
	}
	if o.LFSThreshold == 0 {
		o.LFSThreshold = DefaultLFSThreshold
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	files, err := scan(dir)
	if err != nil {
		return Result{}, err
	}
	if len(files) == 0 {
		return Result{}, fmt.Errorf("git push: %s holds no files", dir)
	}
	if local, ok := localPath(o.Remote); ok {
		return pushLocal(ctx, local, files, o)
	}
	return pushRemote(ctx, files, o)
}

// localPath reports whether remote names a local repository, and its path.
func localPath(remote string) (string, bool) {
	if p, ok := strings.CutPrefix(remote, "file://"); ok {
		return p, true
	}
	if strings.Contains(remote, "://") {
		return "", false
	}
	// scp-like "user@host:path" is a remote; a path with a colon before any
	// slash is treated the same way git does.
	if i := strings.Index(remote, ":"); i > 0 && !strings.Contains(remote[:i], "/") {
		return "", false
	}
	return remote, true
}

type file struct {
	path string // on disk
	name string // slash-separated, relative to the model dir
	size int64
	mode filemode.FileMode
}

// scan lists the regular files under dir (following file symlinks), skipping
// any .git directory.
func scan(dir string) ([]file, error) {
	var out []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
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
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		m := filemode.Regular
		if st.Mode()&0o111 != 0 {
			m = filemode.Executable
		}
		out = append(out, file{path: p, name: filepath.ToSlash(rel), size: st.Size(), mode: m})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan model dir %s: %w", dir, err)
	}
	return out, nil
}

// split decides which files go through LFS, hashing those, and returns the
// LFS objects.
func split(files []file, threshold int64) ([]Object, error) {
	var objs []Object
	for _, f := range files {
		if threshold < 0 || f.size < threshold || f.name == ".gitattributes" {
			continue
		}
		oid, n, err := hashFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("hash %s: %w", f.name, err)
		}
		objs = append(objs, Object{Path: f.path, Name: f.name, OID: oid, Size: n})
	}
	return objs, nil
}

// gitattributes merges the LFS lines git-lfs would write into the model
// dir's own .gitattributes, if any.
func gitattributes(files []file, objs []Object) ([]byte, error) {
	var base []byte
	for _, f := range files {
		if f.name == ".gitattributes" {
			b, err := os.ReadFile(f.path)
			if err != nil {
				return nil, fmt.Errorf("read .gitattributes: %w", err)
			}
			base = b
		}
	}
	if len(objs) == 0 {
		return base, nil
	}
	var buf bytes.Buffer
	buf.Write(base)
	if len(base) > 0 && !bytes.HasSuffix(base, []byte("\n")) {
		buf.WriteByte('\n')
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(base), "\n") {
		if fields := strings.Fields(line); len(fields) > 0 {
			have[fields[0]] = true
		}
	}
	for _, o := range objs {
		pat := strings.ReplaceAll(o.Name, " ", "[[:space:]]")
		if !have[pat] {
			fmt.Fprintf(&buf, "%s filter=lfs diff=lfs merge=lfs -text\n", pat)
			have[pat] = true
		}
	}
	return buf.Bytes(), nil
}

// buildTree writes the blobs and trees of the files into st and returns the
// root tree and the number of files in it. LFS objects are stored as their
// pointer files.
func buildTree(st storer.EncodedObjectStorer, files []file, objs []Object) (plumbing.Hash, int, error) {
	lfs := map[string]Object{}
	for _, ob := range objs {
		lfs[ob.Name] = ob
	}
	root := &dirNode{children: map[string]*dirNode{}}
	n := 0
	attrs, err := gitattributes(files, objs)
	if err != nil {
		return plumbing.ZeroHash, 0, err
	}
	if attrs != nil {
		h, err := writeBlob(st, bytes.NewReader(attrs), int64(len(attrs)))
		if err != nil {
			return plumbing.ZeroHash, 0, err
		}
		root.add(".gitattributes", object.TreeEntry{Name: ".gitattributes", Mode: filemode.Regular, Hash: h})
		n++
	}
	for _, f := range files {
		if f.name == ".gitattributes" {
			continue
		}
		var h plumbing.Hash
		if ob, ok := lfs[f.name]; ok {
			p := ob.Pointer()
			h, err = writeBlob(st, bytes.NewReader(p), int64(len(p)))
		} else {
			h, err = writeFileBlob(st, f)
		}
		if err != nil {
			return plumbing.ZeroHash, 0, fmt.Errorf("store %s: %w", f.name, err)
		}
		root.add(f.name, object.TreeEntry{Name: pathBase(f.name), Mode: f.mode, Hash: h})
		n++
	}
	tree, err := root.write(st)
	if err != nil {
		return plumbing.ZeroHash, 0, fmt.Errorf("write tree: %w", err)
	}
	return tree, n, nil
}

// makeCommit writes a commit of tree on top of parent (nil: a first
// commit) into st.
func makeCommit(st storer.EncodedObjectStorer, tree plumbing.Hash, parent *object.Commit, o Options) (plumbing.Hash, error) {
	sig := object.Signature{Name: o.AuthorName, Email: o.AuthorEmail, When: o.Now()}
	c := &object.Commit{Author: sig, Committer: sig, Message: o.Message, TreeHash: tree}
	if parent != nil {
		c.ParentHashes = []plumbing.Hash{parent.Hash}
	}
	obj := st.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode commit: %w", err)
	}
	h, err := st.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store commit: %w", err)
	}
	return h, nil
}

func pathBase(name string) string {
	if i := strings.LastIndex(name, "/"); i >= 0 {
		return name[i+1:]
	}
	return name
}

func writeFileBlob(st storer.EncodedObjectStorer, f file) (plumbing.Hash, error) {
	r, err := os.Open(f.path)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer r.Close()
	return writeBlob(st, r, f.size)
}

func writeBlob(st storer.EncodedObjectStorer, r io.Reader, size int64) (plumbing.Hash, error) {
	obj := st.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(size)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}

// dirNode is a directory being assembled into git tree objects.
type dirNode struct {
	entries  []object.TreeEntry
	children map[string]*dirNode
}

func (d *dirNode) add(name string, e object.TreeEntry) {
	parts := strings.Split(name, "/")
	for _, p := range parts[:len(parts)-1] {
		c, ok := d.children[p]
		if !ok {
			c = &dirNode{children: map[string]*dirNode{}}
			d.children[p] = c
		}
		d = c
	}
	d.entries = append(d.entries, e)
}

func (d *dirNode) write(st storer.EncodedObjectStorer) (plumbing.Hash, error) {
	entries := append([]object.TreeEntry(nil), d.entries...)
	for name, c := range d.children {
		h, err := c.write(st)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
	}
	// git orders tree entries by name, comparing a directory as "name/".
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	t := &object.Tree{Entries: entries}
	obj := st.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}

func (o Options) logf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// pushAttempts bounds how often Push commits again on top of a branch that
// another upload moved while this one was under way.
const pushAttempts = 8

// ErrBranchMoved means the branch moved under the upload pushAttempts times
// in a row: others keep pushing to it. Nothing was lost; try again.
var ErrBranchMoved = errors.New("the branch kept moving while uploading")

// pushLocal writes straight into a local repository: LFS store, objects,
// then the branch ref, moved only from the head the commit was built on. When
// another upload moved the branch in the meantime, it commits again on top
// of the new head, as the Hub does with a commit made without parentCommit:
// both commits stay in the history and the later one's files are the tip.
func pushLocal(ctx context.Context, path string, files []file, o Options) (Result, error) {
	repo, gitDir, err := openOrInitBare(path, o.Branch)
	if err != nil {
		return Result{}, err
	}
	if o.Branch == "" {
		if o.Branch = localHEAD(repo); o.Branch == "" {
			o.Branch = defaultBranch
		}
	}
	res := Result{Branch: o.Branch, URL: redact(o.Remote)}
	objs, err := split(files, o.LFSThreshold)
	if err != nil {
		return res, err
	}
	if res.LFSUploaded, res.LFSSkipped, err = storeLocal(gitDir, objs); err != nil {
		return res, err
	}
	tree, n, err := buildTree(repo.Storer, files, objs)
	if err != nil {
		return res, err
	}
	res.Files = n
	refName := plumbing.NewBranchReferenceName(o.Branch)
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var parent *object.Commit
		old := plumbing.ZeroHash
		ref, err := repo.Storer.Reference(refName)
		switch {
		case err == nil:
			old = ref.Hash()
			if parent, err = repo.CommitObject(old); err != nil {
				return res, fmt.Errorf("read %s head: %w", o.Branch, err)
			}
		case !errors.Is(err, plumbing.ErrReferenceNotFound):
			return res, fmt.Errorf("read %s: %w", refName, err)
		}
		if parent != nil && parent.TreeHash == tree {
			res.Commit = old.String()
			o.logf("git: %s already holds these files at %s; no new commit", o.Branch, old)
			return res, nil
		}
		h, err := makeCommit(repo.Storer, tree, parent, o)
		if err != nil {
			return res, err
		}
		err = updateRef(repo, gitDir, refName, old, h)
		if errors.Is(err, errRefMoved) {
			if attempt == pushAttempts {
				return res, fmt.Errorf("git push %s %s: %w (%d attempts; last: %v)", redact(o.Remote), o.Branch, ErrBranchMoved, attempt, err)
			}
			res.Retries++
			o.logf("git: %s moved while uploading (%v); committing again on top of it", o.Branch, err)
			continue
		}
		if err != nil {
			return res, fmt.Errorf("update %s: %w", refName, err)
		}
		res.Commit, res.Changed = h.String(), true
		o.logf("git: committed %s to %s (%d files, %d LFS objects stored)", h, o.Branch, n, res.LFSUploaded)
		return res, nil
	}
}

// openOrInitBare opens the repository at path, creating a bare one whose
// HEAD names branch (default "main") when nothing exists there yet (as the
// Hub's create_repo does for a missing repository). It also returns the git
// directory: path itself, or path/.git for a repository with a work tree.
func openOrInitBare(path, branch string) (*git.Repository, string, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if branch == "" {
			branch = defaultBranch
		}
		repo, err := git.PlainInitWithOptions(path, &git.PlainInitOptions{
			Bare:        true,
			InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(branch)},
		})
		if err != nil {
			return nil, "", fmt.Errorf("create bare git repository %s: %w", path, err)
		}
		return repo, path, nil
	}
	repo, err := git.PlainOpen(path)
	if err != nil {
		return nil, "", fmt.Errorf("open git repository %s: %w (point --repo at a bare repository, e.g. one made with `git init --bare %s`, or at a path that does not exist yet)", path, err, path)
	}
	gitDir := path
	if _, err := os.Stat(filepath.Join(path, ".git")); err == nil {
		gitDir = filepath.Join(path, ".git")
	}
	return repo, gitDir, nil
}

func (o Options) gitUser() string {
	if o.Username == "" {
		return "kfllm" // servers that take a token as password ignore the name
	}
	return o.Username
}

// pushRemote fetches the branch into memory, commits on top and pushes,
// requiring the remote branch to still be at the fetched head. When another
// upload moved it in the meantime, it fetches the new head and commits again
// on top of it (see pushLocal).
func pushRemote(ctx context.Context, files []file, o Options) (Result, error) {
	var auth transport.AuthMethod
	if o.Password != "" {
		auth = &githttp.BasicAuth{Username: o.gitUser(), Password: o.Password}
	}
	res := Result{URL: redact(o.Remote)}
	st := memory.NewStorage()
	repo, err := git.Init(st, nil)
	if err != nil {
		return res, fmt.Errorf("git init: %w", err)
	}
	remote, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{o.Remote}})
	if err != nil {
		return res, fmt.Errorf("git remote %s: %w", redact(o.Remote), err)
	}
	list := func() ([]*plumbing.Reference, error) {
		refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth})
		if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return nil, err
		}
		return refs, nil
	}
	refs, err := list()
	if err != nil {
		return res, explain("list", o.Remote, err)
	}
	if o.Branch == "" {
		o.Branch = advertisedHEAD(refs)
		if o.Branch == "" && (strings.HasPrefix(o.Remote, "http://") || strings.HasPrefix(o.Remote, "https://")) {
			if o.Branch, err = unbornHEAD(ctx, o); err != nil {
				o.logf("git: could not ask %s which branch HEAD names (%v); using %s", redact(o.Remote), err, defaultBranch)
			}
		}
		if o.Branch == "" {
			o.Branch = defaultBranch
		}
	}
	res.Branch = o.Branch
	refName := plumbing.NewBranchReferenceName(o.Branch)
	objs, err := split(files, o.LFSThreshold)
	if err != nil {
		return res, err
	}
	tree, n, err := buildTree(st, files, objs)
	if err != nil {
		return res, err
	}
	res.Files = n
	lfsSent := false
	for attempt := 1; ; attempt++ {
		parent, err := fetchHead(ctx, repo, refs, refName, auth)
		if err != nil {
			return res, explain("fetch", o.Remote, err)
		}
		old := plumbing.ZeroHash
		if parent != nil {
			old = parent.Hash
		}
		if parent != nil && parent.TreeHash == tree {
			res.Commit = old.String()
			o.logf("git: %s already holds these files at %s; no new commit", o.Branch, old)
			return res, nil
		}
		if !lfsSent && len(objs) > 0 {
			if err := o.sendLFS(ctx, refName, objs, &res); err != nil {
				return res, err
			}
			lfsSent = true
		}
		h, err := makeCommit(st, tree, parent, o)
		if err != nil {
			return res, err
		}
		if err := st.SetReference(plumbing.NewHashReference(refName, h)); err != nil {
			return res, fmt.Errorf("set %s: %w", refName, err)
		}
		po := &git.PushOptions{RemoteName: "origin", Auth: auth,
			RefSpecs: []config.RefSpec{config.RefSpec(fmt.Sprintf("%s:%s", refName, refName))}}
		if parent != nil {
			po.RequireRemoteRefs = []config.RefSpec{config.RefSpec(fmt.Sprintf("%s:%s", old, refName))}
		}
		err = repo.PushContext(ctx, po)
		if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
			res.Commit, res.Changed = h.String(), true
			o.logf("git: pushed %s to %s %s (%d files)", h, redact(o.Remote), o.Branch, n)
			return res, nil
		}
		// Refused: because another upload moved the branch, or for a reason
		// committing again cannot fix?
		now, lerr := list()
		if lerr != nil || headOf(now, refName) == old {
			return res, explain("push", o.Remote, err)
		}
		if attempt == pushAttempts {
			return res, fmt.Errorf("git push %s %s: %w (%d attempts; last: %v)", redact(o.Remote), o.Branch, ErrBranchMoved, attempt, err)
		}
		res.Retries++
		o.logf("git: %s moved to %s while uploading; committing again on top of it", o.Branch, short(headOf(now, refName)))
		refs = now
	}
}

// headOf returns the hash of the named ref in refs, or ZeroHash.
func headOf(refs []*plumbing.Reference, name plumbing.ReferenceName) plumbing.Hash {
	for _, r := range refs {
		if r.Name() == name {
			return r.Hash()
		}
	}
	return plumbing.ZeroHash
}

// fetchHead fetches the remote branch, when refs lists it, and returns its
// head commit (nil for a branch that does not exist yet).
func fetchHead(ctx context.Context, repo *git.Repository, refs []*plumbing.Reference, refName plumbing.ReferenceName, auth transport.AuthMethod) (*object.Commit, error) {
	if headOf(refs, refName).IsZero() {
		return nil, nil
	}
	tracking := plumbing.NewRemoteReferenceName("origin", refName.Short())
	spec := config.RefSpec(fmt.Sprintf("+%s:%s", refName, tracking))
	err := repo.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Auth: auth, Tags: git.NoTags})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, err
	}
	ref, err := repo.Reference(tracking, true)
	if err != nil {
		return nil, fmt.Errorf("read fetched %s: %w", refName, err)
	}
	c, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("read %s head: %w", refName, err)
	}
	return c, nil
}

// sendLFS uploads the LFS objects through the remote's batch API.
func (o Options) sendLFS(ctx context.Context, refName plumbing.ReferenceName, objs []Object, res *Result) error {
	lc := &lfsClient{base: lfsURL(o.Remote), user: o.Username, password: o.Password, http: o.HTTPClient}
	if o.Password != "" {
		lc.user = o.gitUser()
	}
	var err error
	res.LFSUploaded, res.LFSSkipped, err = lc.upload(ctx, refName.String(), objs)
	if errors.Is(err, ErrLFSUnavailable) {
		names := make([]string, len(objs))
		for i, ob := range objs {
			names[i] = fmt.Sprintf("%s (%d bytes)", ob.Name, ob.Size)
		}
		return fmt.Errorf("git push %s: %s at or above the LFS threshold of %d bytes, but the remote offers no git-lfs: enable LFS on the remote or raise --lfs-threshold: %w",
			redact(o.Remote), strings.Join(names, ", "), o.LFSThreshold, err)
	}
	if err != nil {
		return err
	}
	o.logf("git-lfs: %d objects sent, %d already on the remote", res.LFSUploaded, res.LFSSkipped)
	return nil
}

// explain wraps a transport error with the operation, the redacted remote
// and a hint for the common authentication failures.
func explain(op, remote string, err error) error {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return fmt.Errorf("git %s %s: %w: set GIT_USERNAME and GIT_PASSWORD (or HF_TOKEN for the Hugging Face git host)", op, redact(remote), err)
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("git %s %s: %w: the credentials were refused or may not write to this repository", op, redact(remote), err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("git %s %s: %w: create the repository on the server first", op, redact(remote), err)
	}
	return fmt.Errorf("git %s %s: %w", op, redact(remote), err)
}

// redact drops any user:password written into a URL.
func redact(remote string) string {
	if i := strings.Index(remote, "://"); i >= 0 {
		rest := remote[i+3:]
		if at := strings.Index(rest, "@"); at >= 0 && at < strings.IndexAny(rest+"/", "/") {
			return remote[:i+3] + "xxxxx@" + rest[at+1:]
		}
	}
	return remote
}
