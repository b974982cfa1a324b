// Package upload publishes a fine-tuned model directory: it renders the
// model card (internal/modelcard) and commits the directory with it either
// to a Hugging Face Hub repository (internal/hub: preupload, LFS, one
// commit) or to a git remote (internal/gitremote: go-git push with
// git-lfs), depending on what --repo names, never writing into the
// directory (it may be another step's cached output). It is what the
// upload component's main calls.
package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/kfllm/kfllm/internal/gitremote"
	"github.com/kfllm/kfllm/internal/hub"
	"github.com/kfllm/kfllm/internal/modelcard"
)

// Options is everything one upload needs; the binary fills it from flags
// and the environment.
type Options struct {
	ModelDir string
	// Repo is OWNER/NAME (a Hub repository), an http(s) or file:// git
	// URL, or the path of a local bare git repository (created if missing).
	Repo    string
	Private bool
	// Revision is the branch to commit to. Empty: "main" on the Hub, the
	// branch a git remote's HEAD names (main for a new repository).
	Revision      string
	CommitMessage string
	// Hub is the Hub client (hub.FromEnv in the binary: HF_ENDPOINT,
	// HF_TOKEN); nil is an anonymous one, which cannot upload to the Hub.
	Hub *hub.Client
	// GitUsername and GitPassword authenticate to an http(s) git remote.
	// Without GitPassword, the Hub client's token is used for the Hub's own
	// git host only.
	GitUsername, GitPassword string
	// LFSThreshold is the size from which a git remote gets a file through
	// git-lfs (0: gitremote.DefaultLFSThreshold; negative: never). The Hub
	// decides by itself, through preupload.
	LFSThreshold int64
	// ModelCard publishes a generated README.md with the files (unless a
	// hand-written one is there); ModelDir itself is not written to.
	ModelCard bool
	// Card fills the card's metadata beyond what the model dir says.
	Card modelcard.Info
	// HTTPClient carries the requests (tests point it at loopback).
	HTTPClient *http.Client
	// Progress receives progress lines; nil discards them.
	Progress io.Writer
}

// Result is what was published where: the commit that holds the files
// and where to find it.
type Result struct {
	Target   string // "hub" or "git"
	Repo     string // as given, with any URL credentials removed
	RepoURL  string // the Hub repository's page, or the git remote (URL or path) without credentials
	Revision string // the branch committed to
	Commit   string // sha of the branch head after the upload: the new commit, or the one that already held these files
	URL      string // commit URL, for the Hub
	Changed  bool   // false: the remote already held these files
}

// Summary is the one line the upload binary ends with:
// "<target> <repo>@<branch> committed|unchanged: commit <sha> [<url>]".
func (r *Result) Summary() string {
	state := "committed"
	if !r.Changed {
		state = "unchanged"
	}
	line := fmt.Sprintf("%s %s@%s %s: commit %s", r.Target, r.Repo, r.Revision, state, r.Commit)
	if r.URL != "" {
		line += " " + r.URL
	}
	return line
}

// Kind tells how Run reads a --repo value.
type Kind int

// The kinds of upload target.
const (
	KindHub       Kind = iota // OWNER/NAME on the Hub
	KindGitURL                // http(s)://, file://, ssh:// or scp-like git remote
	KindLocalPath             // a local (bare) repository path
)

// Classify says what repo names.
func Classify(repo string) (Kind, error) {
	switch {
	case repo == "":
		return 0, errors.New("no repository: pass --repo OWNER/NAME, a git URL or a bare repository path (or set HF_REPO)")
	case strings.Contains(repo, "://"):
		if strings.HasPrefix(repo, "file://") {
			return KindLocalPath, nil
		}
		return KindGitURL, nil
	case strings.HasPrefix(repo, "/"), strings.HasPrefix(repo, "./"), strings.HasPrefix(repo, "../"), strings.HasSuffix(repo, ".git"):
		if i := strings.Index(repo, ":"); i > 0 && !strings.Contains(repo[:i], "/") {
			return KindGitURL, nil // git@host:owner/name.git
		}
		return KindLocalPath, nil
	}
	if st, err := os.Stat(repo); err == nil && st.IsDir() {
		return KindLocalPath, nil
	}
	if err := hub.ValidateRepoID(repo); err != nil {
		return 0, fmt.Errorf("--repo %q: neither a Hub repository id (OWNER/NAME), a git URL nor an existing path: %w", repo, err)
	}
	return KindHub, nil
}

// Run uploads the model directory with a fresh model card, leaving the
// directory as it was.
func Run(ctx context.Context, o Options) (*Result, error) {
	st, err := os.Stat(o.ModelDir)
	if err != nil {
		return nil, fmt.Errorf("model dir: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("model dir %s is not a directory", o.ModelDir)
	}
	kind, err := Classify(o.Repo)
	if err != nil {
		return nil, err
	}
	c := o.Hub
	if c == nil {
		c = hub.New(hub.Options{})
	}
	if kind == KindHub {
		if o.Revision == "" {
			o.Revision = "main"
		}
		if !c.HasToken() {
			return nil, hub.ErrNoToken // before touching anything
		}
	}
	src := o.ModelDir // what is published: the model dir, or a stage of it with a fresh card
	if o.ModelCard {
		info := o.Card
		if info.ModelID == "" && kind == KindHub {
			info.ModelID = o.Repo
		}
		card, err := modelcard.ForDir(o.ModelDir, info)
		switch {
		case err != nil:
			// A model dir whose JSON files are unreadable still uploads,
			// without a fresh card.
			logf(o.Progress, "model card: not generated: %v", err)
		case card == nil:
			logf(o.Progress, "model card: kept the hand-written %s", modelcard.ReadmeFile)
		default:
			if src, err = stage(o.ModelDir, modelcard.ReadmeFile, card); err != nil {
				return nil, fmt.Errorf("model card: %w", err)
			}
			defer os.RemoveAll(src)
			logf(o.Progress, "model card: generated %s (published with the files; %s is left as it is)", modelcard.ReadmeFile, o.ModelDir)
		}
	}
	if kind == KindHub {
		r, err := c.UploadFolder(ctx, src, hub.UploadOptions{
			RepoID: o.Repo, Revision: o.Revision, Private: o.Private,
			CommitMessage: o.CommitMessage, Progress: o.Progress,
		})
		if err != nil {
			return nil, err
		}
		return &Result{Target: "hub", Repo: o.Repo, RepoURL: r.RepoURL, Revision: o.Revision,
			Commit: r.CommitOID, URL: r.CommitURL, Changed: r.Changed}, nil
	}
	user, pass := o.GitUsername, o.GitPassword
	if tok, ok := c.GitPassword(o.Repo); pass == "" && kind == KindGitURL && ok {
		pass = tok // the Hub's git host takes a token as password
		if user == "" {
			user = "hf_user"
		}
	}
	r, err := gitremote.Push(ctx, src, gitremote.Options{
		Remote: o.Repo, Username: user, Password: pass, Branch: o.Revision,
		Message: o.CommitMessage, LFSThreshold: o.LFSThreshold,
		HTTPClient: o.HTTPClient, Progress: o.Progress,
	})
	if err != nil {
		return nil, err
	}
	return &Result{Target: "git", Repo: redactURL(o.Repo), RepoURL: r.URL, Revision: r.Branch,
		Commit: r.Commit, Changed: r.Changed}, nil
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
