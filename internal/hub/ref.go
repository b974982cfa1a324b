package hub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Ref is a reference to a model as --base-model, --tokenizer, --model-id
// and a PEFT adapter's base_model_name_or_path give it: a local directory,
// or a repository on the Hub at a revision (docs/design.md §5). ParseRef
// makes one; Resolve turns it into a local directory.
type Ref struct {
	// Dir is the local directory; empty for a Hub reference.
	Dir string
	// Repo is the Hub repository id OWNER/NAME; empty for a local directory.
	Repo string
	// Revision is a branch, tag or commit of Repo; empty means "main".
	Revision string
}

// ErrNoClient is returned when a Hub reference is resolved without a Client.
var ErrNoClient = errors.New("no Hub client: pass a local directory")

// ParseRef reads a model reference the way transformers' from_pretrained
// does: an existing directory is local; anything else must be a Hub
// repository id OWNER/NAME, optionally pinned as OWNER/NAME@REVISION (a
// branch, tag or commit sha). An existing file, or a string that is
// neither, is an error; the latter wraps os.ErrNotExist.
func ParseRef(s string) (Ref, error) {
	if s == "" {
		return Ref{}, errors.New("empty model reference: want a directory or OWNER/NAME[@revision]")
	}
	st, err := os.Stat(s)
	switch {
	case err == nil && st.IsDir():
		return Ref{Dir: s}, nil
	case err == nil:
		return Ref{}, fmt.Errorf("model reference %s: not a directory", s)
	case !errors.Is(err, os.ErrNotExist):
		return Ref{}, fmt.Errorf("model reference %s: %w", s, err)
	}
	repo, rev, perr := parseRepoRef(s)
	if perr != nil {
		return Ref{}, fmt.Errorf("model reference %s: no such directory, and not a Hub repository OWNER/NAME[@revision] (%v): %w", s, perr, os.ErrNotExist)
	}
	return Ref{Repo: repo, Revision: rev}, nil
}

// IsLocal reports whether r names a local directory.
func (r Ref) IsLocal() bool { return r.Dir != "" }

// Name is the directory or the repository id, without the revision: what
// a model card's base_model and PEFT's base_model_name_or_path hold.
func (r Ref) Name() string {
	if r.IsLocal() {
		return r.Dir
	}
	return r.Repo
}

// String is the reference as ParseRef reads it back.
func (r Ref) String() string {
	if r.Revision == "" {
		return r.Name()
	}
	return r.Repo + "@" + r.Revision
}

// Resolve returns a local directory holding the referenced model's files,
// and the commit sha they come from ("" for a local directory). A Hub
// reference is fetched with c.Snapshot at exactly r.Revision (main when
// empty) into the Hub cache; o.RepoType is a model and o.AllowPatterns
// defaults to ModelFiles (pass TokenizerFiles for a tokenizer alone).
func (r Ref) Resolve(ctx context.Context, c *Client, o SnapshotOptions) (dir, commit string, err error) {
	if r.IsLocal() {
		return r.Dir, "", nil
	}
	if c == nil {
		return "", "", fmt.Errorf("model %s: %w", r, ErrNoClient)
	}
	if o.AllowPatterns == nil {
		o.AllowPatterns = ModelFiles
	}
	o.RepoType = RepoTypeModel
	dir, err = c.Snapshot(ctx, r.Repo, r.Revision, o)
	if err != nil {
		return "", "", fmt.Errorf("model %s: %w", r, err)
	}
	return dir, filepath.Base(dir), nil // CACHE/models--OWNER--NAME/snapshots/<commit sha>
}
