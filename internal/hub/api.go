package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Repository types, as the Hub's API spells them. (repo.go exports the same
// values as RepoTypeModel, RepoTypeDataset and RepoTypeSpace.)
const (
	typeModel   = "model"
	typeDataset = "dataset"
	typeSpace   = "space"
)

// ParquetRevision is the branch where the Hub keeps a dataset's automatic
// Parquet conversion.
const ParquetRevision = "refs/convert/parquet"

func apiPrefix(repoType string) (string, error) {
	switch repoType {
	case "", typeModel:
		return "/api/models/", nil
	case typeDataset:
		return "/api/datasets/", nil
	case typeSpace:
		return "/api/spaces/", nil
	}
	return "", fmt.Errorf("unknown repository type %q (want model, dataset or space)", repoType)
}

var repoIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$`)

// ValidateRepoID checks a repository id ("OWNER/NAME", or a legacy "NAME")
// against the Hub's rules.
func ValidateRepoID(id string) error {
	if !repoIDPattern.MatchString(id) || len(id) > 96 || strings.Contains(id, "--") || strings.Contains(id, "..") ||
		strings.HasSuffix(id, ".") || strings.HasSuffix(id, "-") {
		return fmt.Errorf("invalid repository id %q: want OWNER/NAME of letters, digits, '-', '_', '.'", id)
	}
	return nil
}

// parseRepoRef splits "OWNER/NAME[@revision]". revision is empty when
// none is given (callers use "main").
func parseRepoRef(s string) (repoID, revision string, err error) {
	repoID, revision, hasRev := strings.Cut(s, "@")
	if hasRev && revision == "" {
		return "", "", fmt.Errorf("repository reference %q: empty revision after @", s)
	}
	if err := ValidateRepoID(repoID); err != nil {
		return "", "", err
	}
	return repoID, revision, nil
}

// escapePath escapes each segment of a path inside a repository.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// RepoInfo is what GET /api/{type}s/{repo}/revision/{rev} returns, in part.
type RepoInfo struct {
	ID       string    `json:"id"`
	SHA      string    `json:"sha"`
	Private  bool      `json:"private"`
	Gated    any       `json:"gated"` // false, "auto" or "manual"
	Disabled bool      `json:"disabled"`
	Siblings []Sibling `json:"siblings"`
}

// Sibling is one file of RepoInfo.
type Sibling struct {
	RFilename string `json:"rfilename"`
}

// RepoInfo fetches a repository's information at revision (empty: the
// default branch). It fails with ErrRepoNotFound, ErrGatedRepo or
// ErrRevisionNotFound as the Hub says.
func (c *Client) RepoInfo(ctx context.Context, repoType, repoID, revision string) (*RepoInfo, error) {
	prefix, err := apiPrefix(repoType)
	if err != nil {
		return nil, err
	}
	if err := ValidateRepoID(repoID); err != nil {
		return nil, err
	}
	path := prefix + repoID
	if revision != "" {
		path += "/revision/" + url.PathEscape(revision)
	}
	var info RepoInfo
	if err := c.DoJSON(ctx, &Request{Path: path}, &info); err != nil {
		return nil, fmt.Errorf("repository info %s@%s: %w", repoID, orMain(revision), err)
	}
	if info.SHA == "" {
		return nil, fmt.Errorf("repository info %s@%s: the Hub returned no commit sha", repoID, orMain(revision))
	}
	return &info, nil
}

// ResolveRevision returns the commit sha a branch, tag or commit of the
// repository points at.
func (c *Client) ResolveRevision(ctx context.Context, repoType, repoID, revision string) (string, error) {
	info, err := c.RepoInfo(ctx, repoType, repoID, orMain(revision))
	if err != nil {
		return "", err
	}
	return info.SHA, nil
}

func orMain(rev string) string {
	if rev == "" {
		return "main"
	}
	return rev
}

// TreeEntry is one file or directory of the tree listing.
type TreeEntry struct {
	Type string   `json:"type"` // "file" or "directory"
	OID  string   `json:"oid"`  // git object id
	Size int64    `json:"size"`
	Path string   `json:"path"`
	LFS  *LFSInfo `json:"lfs,omitempty"`
}

// LFSInfo describes a file stored with Git LFS.
type LFSInfo struct {
	OID         string `json:"oid"` // sha256 of the content
	Size        int64  `json:"size"`
	PointerSize int64  `json:"pointerSize"`
}

// ETag is the name huggingface_hub gives the file's blob in its cache:
// the LFS sha256 for LFS files, the git blob id otherwise.
func (e TreeEntry) ETag() string {
	if e.LFS != nil {
		return e.LFS.OID
	}
	return e.OID
}

// ListTree lists the files and directories under path (empty: the root)
// at revision, following the Link rel="next" pages. With recursive it
// descends into directories.
func (c *Client) ListTree(ctx context.Context, repoType, repoID, revision, path string, recursive bool) ([]TreeEntry, error) {
	prefix, err := apiPrefix(repoType)
	if err != nil {
		return nil, err
	}
	if err := ValidateRepoID(repoID); err != nil {
		return nil, err
	}
	p := prefix + repoID + "/tree/" + url.PathEscape(orMain(revision))
	if path = strings.Trim(path, "/"); path != "" {
		p += "/" + url.PathEscape(path)
	}
	q := url.Values{"recursive": {fmt.Sprint(recursive)}, "expand": {"false"}}
	req := &Request{Path: p, Query: q}
	var all []TreeEntry
	for page := 0; ; page++ {
		if page > 10000 {
			return nil, fmt.Errorf("list tree %s@%s: more than 10000 pages", repoID, orMain(revision))
		}
		resp, err := c.Do(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("list tree %s@%s: %w", repoID, orMain(revision), err)
		}
		var entries []TreeEntry
		err = decodeJSON(resp, &entries)
		if err != nil {
			return nil, fmt.Errorf("list tree %s@%s: %w", repoID, orMain(revision), err)
		}
		all = append(all, entries...)
		next := nextPageURL(resp.Header)
		if next == "" {
			break
		}
		// The next link carries the query; it stays on the Hub's host.
		req = &Request{URL: next}
		if strings.HasPrefix(next, "/") {
			req = &Request{Path: next}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Path < all[j].Path })
	return all, nil
}

// nextLink returns the URL of the Link header's rel="next" entry.
func nextPageURL(h http.Header) string {
	for _, v := range h.Values("Link") {
		for _, part := range strings.Split(v, ",") {
			segs := strings.Split(part, ";")
			if len(segs) < 2 {
				continue
			}
			target := strings.TrimSpace(segs[0])
			if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			for _, p := range segs[1:] {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "rel") && strings.Trim(v, `"`) == "next" {
					return target[1 : len(target)-1]
				}
			}
		}
	}
	return ""
}

// ParquetListing maps subset (config) -> split -> URLs of the Parquet
// files of a dataset's automatic conversion.
type ParquetListing map[string]map[string][]string

// ListParquet returns every subset and split of a dataset's Parquet
// conversion (GET /api/datasets/{repo}/parquet).
func (c *Client) ListParquet(ctx context.Context, repoID string) (ParquetListing, error) {
	if err := ValidateRepoID(repoID); err != nil {
		return nil, err
	}
	var out ParquetListing
	if err := c.DoJSON(ctx, &Request{Path: "/api/datasets/" + repoID + "/parquet"}, &out); err != nil {
		return nil, fmt.Errorf("list parquet files of %s: %w", repoID, err)
	}
	return out, nil
}

// ListParquetSplit returns the URLs of one subset and split of a
// dataset's Parquet conversion (GET /api/datasets/{repo}/parquet/{subset}/{split}).
func (c *Client) ListParquetSplit(ctx context.Context, repoID, subset, split string) ([]string, error) {
	if err := ValidateRepoID(repoID); err != nil {
		return nil, err
	}
	var out []string
	p := "/api/datasets/" + repoID + "/parquet/" + url.PathEscape(subset) + "/" + url.PathEscape(split)
	if err := c.DoJSON(ctx, &Request{Path: p}, &out); err != nil {
		return nil, fmt.Errorf("list parquet files of %s subset %s split %s: %w", repoID, subset, split, err)
	}
	return out, nil
}

// FileURL is the address of a file of a repository at a revision:
// {endpoint}/{repo}/resolve/{rev}/{path} for models and
// {endpoint}/datasets/{repo}/resolve/{rev}/{path} for datasets.
func (c *Client) FileURL(repoType, repoID, revision, path string) string {
	prefix := "/"
	switch repoType {
	case typeDataset:
		prefix = "/datasets/"
	case typeSpace:
		prefix = "/spaces/"
	}
	return c.Endpoint() + prefix + repoID + "/resolve/" + url.PathEscape(orMain(revision)) + "/" + escapePath(path)
}

func decodeJSON(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s: %w", redactURL(resp.Request.URL), err)
	}
	return nil
}
