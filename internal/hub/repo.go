package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Repository types as the Hub's API names them.
const (
	RepoTypeModel   = "model"
	RepoTypeDataset = "dataset"
	RepoTypeSpace   = "space"
)

// ErrNoToken means a write was attempted without a token.
var ErrNoToken = errors.New("HF_TOKEN is not set: uploading needs a Hugging Face token with write access (create one at https://huggingface.co/settings/tokens)")

// CreateRepoOptions says which repository to create.
type CreateRepoOptions struct {
	RepoID   string // OWNER/NAME (or NAME, for the token's own namespace)
	RepoType string // RepoTypeModel (default), RepoTypeDataset or RepoTypeSpace
	Private  bool
}

// CreateRepo creates the repository, as huggingface_hub's create_repo with
// exist_ok=True: a 409 (it already exists) is success. It reports whether
// the repository was created now.
func (c *Client) CreateRepo(ctx context.Context, o CreateRepoOptions) (bool, error) {
	if !c.HasToken() {
		return false, ErrNoToken
	}
	if o.RepoID == "" || strings.Count(o.RepoID, "/") > 1 {
		return false, fmt.Errorf("create repo: %q is not a repository id (OWNER/NAME)", o.RepoID)
	}
	typ, err := repoType(o.RepoType)
	if err != nil {
		return false, err
	}
	body := map[string]any{"private": o.Private}
	if org, name, ok := strings.Cut(o.RepoID, "/"); ok {
		body["organization"], body["name"] = org, name
	} else {
		body["name"] = o.RepoID
	}
	if typ != RepoTypeModel {
		body["type"] = typ
	}
	b, _ := json.Marshal(body)
	err = c.DoJSON(ctx, &Request{
		Method: http.MethodPost, Path: "/api/repos/create",
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   bytesBody(b), ContentLength: int64(len(b)),
		// Creating twice is harmless: the second answer is a 409.
		Idempotent: true,
	}, nil)
	if errors.Is(err, ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create %s repo %s: %w%s", typ, o.RepoID, err, writeHint(err))
	}
	return true, nil
}

// writeHint explains an authorisation failure on a write.
func writeHint(err error) string {
	switch {
	case errors.Is(err, ErrForbidden):
		return " (the token in HF_TOKEN may only read: a write token is needed, with access to this namespace; see https://huggingface.co/settings/tokens)"
	case errors.Is(err, ErrUnauthorized):
		return " (the token in HF_TOKEN was refused: it may be revoked or mistyped)"
	}
	return ""
}

func repoType(t string) (string, error) {
	switch t {
	case "", RepoTypeModel:
		return RepoTypeModel, nil
	case RepoTypeDataset, RepoTypeSpace:
		return t, nil
	}
	return "", fmt.Errorf("repo type %q: want model, dataset or space", t)
}

// apiRepoPath is /api/{type}s/{OWNER}/{NAME}.
func apiRepoPath(typ, repoID string) string {
	return "/api/" + typ + "s/" + escapeRepoID(repoID)
}

// gitRepoPath is the repository's git path: /{repo}.git for models,
// /{type}s/{repo}.git otherwise (huggingface_hub's REPO_TYPES_URL_PREFIXES).
func gitRepoPath(typ, repoID string) string {
	prefix := "/"
	if typ != RepoTypeModel {
		prefix = "/" + typ + "s/"
	}
	return prefix + escapeRepoID(repoID) + ".git"
}

func escapeRepoID(id string) string {
	parts := strings.Split(id, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func escapeRevision(rev string) string { return url.PathEscape(rev) }

func bytesBody(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// createBranch creates branch from the default branch's head with
// POST /api/{type}s/{repo}/branch/{branch}.
func (c *Client) createBranch(ctx context.Context, typ, repoID, branch string) error {
	err := c.DoJSON(ctx, &Request{
		Method: http.MethodPost, Path: apiRepoPath(typ, repoID) + "/branch/" + escapeRevision(branch),
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   bytesBody([]byte("{}")), ContentLength: 2,
		Idempotent: true,
	}, nil)
	if err != nil && !errors.Is(err, ErrConflict) {
		return fmt.Errorf("create branch %s of %s: %w%s", branch, repoID, err, writeHint(err))
	}
	return nil
}
