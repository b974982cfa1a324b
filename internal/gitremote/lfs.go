package gitremote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PointerVersion is the spec line that opens every git-lfs pointer file.
const PointerVersion = "version https://git-lfs.github.com/spec/v1"

// lfsMediaType is the media type of git-lfs batch API requests and replies.
const lfsMediaType = "application/vnd.git-lfs+json"

// ErrLFSUnavailable means the remote offers no git-lfs batch endpoint.
var ErrLFSUnavailable = errors.New("remote offers no git-lfs endpoint")

// Object is a file whose content is stored through git-lfs.
type Object struct {
	Path string // file on disk
	Name string // slash-separated path inside the repository
	OID  string // hex sha256 of the content
	Size int64
}

// Pointer returns the git-lfs pointer file that stands for o in the tree.
func (o Object) Pointer() []byte {
	return []byte(fmt.Sprintf("%s\noid sha256:%s\nsize %d\n", PointerVersion, o.OID, o.Size))
}

// hashFile returns the hex sha256 and size of the file at path, reading it
// in a streaming way so that memory stays flat for multi-GB files.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// lfsURL derives the git-lfs server URL of a git http(s) remote as git-lfs
// does: <remote>.git/info/lfs, without doubling an existing .git suffix.
func lfsURL(remote string) string {
	u := strings.TrimSuffix(remote, "/")
	if !strings.HasSuffix(u, ".git") {
		u += ".git"
	}
	return u + "/info/lfs"
}

type batchObject struct {
	OID  string `json:"oid"`
	Size int64  `json:"size"`
}

type batchRequest struct {
	Operation string        `json:"operation"`
	Transfers []string      `json:"transfers"`
	Ref       *batchRef     `json:"ref,omitempty"`
	Objects   []batchObject `json:"objects"`
	HashAlgo  string        `json:"hash_algo"`
}

type batchRef struct {
	Name string `json:"name"`
}

type batchAction struct {
	Href   string            `json:"href"`
	Header map[string]string `json:"header,omitempty"`
}

type batchResponse struct {
	Transfer string `json:"transfer"`
	Objects  []struct {
		OID     string                 `json:"oid"`
		Size    int64                  `json:"size"`
		Actions map[string]batchAction `json:"actions"`
		Error   *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"objects"`
	Message string `json:"message"`
}

// lfsClient speaks the git-lfs batch API (basic transfer) to one server.
type lfsClient struct {
	base     string // .../info/lfs
	user     string
	password string
	http     *http.Client
}

// lfsRetries is how often a git-lfs request is retried after a transport
// error, a 429 or a 5xx; the wait doubles from retryWait.
const lfsRetries = 4

// retryWait is the first wait between retries (a variable for tests).
var retryWait = 500 * time.Millisecond

// do sends the request made by mk, again after a transport error, 429 or
// 5xx, with doubling waits. Every request this client makes is safe to
// repeat (a batch asks, a PUT overwrites, a verify checks).
func (c *lfsClient) do(ctx context.Context, mk func() (*http.Request, error)) (*http.Response, error) {
	wait := retryWait
	for attempt := 0; ; attempt++ {
		req, err := mk()
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		retry := err != nil || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		if !retry || attempt == lfsRetries || ctx.Err() != nil {
			return resp, err
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (c *lfsClient) authorize(req *http.Request) {
	if c.password != "" && req.Header.Get("Authorization") == "" {
		req.SetBasicAuth(c.user, c.password)
	}
}

// upload sends the objects the server does not hold yet; it returns how many
// were sent and how many the server already had.
func (c *lfsClient) upload(ctx context.Context, ref string, objs []Object) (sent, skipped int, err error) {
	if len(objs) == 0 {
		return 0, 0, nil
	}
	breq := batchRequest{Operation: "upload", Transfers: []string{"basic"}, HashAlgo: "sha256", Ref: &batchRef{Name: ref}}
	byOID := map[string]Object{}
	for _, o := range objs {
		if _, dup := byOID[o.OID]; !dup {
			breq.Objects = append(breq.Objects, batchObject{OID: o.OID, Size: o.Size})
		}
		byOID[o.OID] = o
	}
	body, _ := json.Marshal(breq)
	batchURL := c.base + "/objects/batch"
	resp, err := c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, batchURL, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", lfsMediaType)
		req.Header.Set("Content-Type", lfsMediaType)
		c.authorize(req)
		return req, nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("lfs batch: %w", err)
	}
	defer resp.Body.Close()
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return 0, 0, fmt.Errorf("lfs batch: %s: check GIT_USERNAME/GIT_PASSWORD", resp.Status)
	case resp.StatusCode == http.StatusForbidden:
		return 0, 0, fmt.Errorf("lfs batch: %s: the credentials may not write to this repository", resp.Status)
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusMethodNotAllowed,
		resp.StatusCode == http.StatusNotImplemented, resp.StatusCode < 300 && mt != lfsMediaType && mt != "application/json":
		return 0, 0, fmt.Errorf("%w (POST %s answered %s)", ErrLFSUnavailable, redact(batchURL), resp.Status)
	case resp.StatusCode >= 300:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, 0, fmt.Errorf("lfs batch: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	var br batchResponse
	if err := json.NewDecoder(resp.Body).Decode(&br); err != nil {
		return 0, 0, fmt.Errorf("lfs batch: decode reply: %w", err)
	}
	if br.Transfer != "" && br.Transfer != "basic" {
		return 0, 0, fmt.Errorf("lfs batch: server chose transfer %q, only basic is supported", br.Transfer)
	}
	for _, ro := range br.Objects {
		o, ok := byOID[ro.OID]
		if !ok {
			return sent, skipped, fmt.Errorf("lfs batch: server answered for unknown object %s", ro.OID)
		}
		if ro.Error != nil {
			return sent, skipped, fmt.Errorf("lfs object %s (%s): %d %s", o.Name, o.OID, ro.Error.Code, ro.Error.Message)
		}
		up, ok := ro.Actions["upload"]
		if !ok {
			skipped++ // the server already holds it
			continue
		}
		if err := c.put(ctx, o, up); err != nil {
			return sent, skipped, err
		}
		if v, ok := ro.Actions["verify"]; ok {
			if err := c.verify(ctx, o, v); err != nil {
				return sent, skipped, err
			}
		}
		sent++
	}
	return sent, skipped, nil
}

func (c *lfsClient) put(ctx context.Context, o Object, a batchAction) error {
	f, err := os.Open(o.Path)
	if err != nil {
		return fmt.Errorf("lfs upload %s: %w", o.Name, err)
	}
	defer f.Close()
	resp, err := c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, a.Href, io.NewSectionReader(f, 0, o.Size))
		if err != nil {
			return nil, err
		}
		req.ContentLength = o.Size
		req.Header.Set("Content-Type", "application/octet-stream")
		for k, v := range a.Header {
			req.Header.Set(k, v)
		}
		if sameHost(a.Href, c.base) {
			c.authorize(req)
		}
		return req, nil
	})
	if err != nil {
		return fmt.Errorf("lfs upload %s: %w", o.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("lfs upload %s: %s: %s", o.Name, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

func (c *lfsClient) verify(ctx context.Context, o Object, a batchAction) error {
	body, _ := json.Marshal(batchObject{OID: o.OID, Size: o.Size})
	resp, err := c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.Href, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", lfsMediaType)
		req.Header.Set("Content-Type", lfsMediaType)
		for k, v := range a.Header {
			req.Header.Set(k, v)
		}
		if sameHost(a.Href, c.base) {
			c.authorize(req)
		}
		return req, nil
	})
	if err != nil {
		return fmt.Errorf("lfs verify %s: %w", o.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("lfs verify %s: %s", o.Name, resp.Status)
	}
	return nil
}

func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Host == ub.Host
}

// tempPrefix starts the name of every temporary file Push writes into a
// local repository's <gitdir>/lfs/tmp, so that ones a killed upload left
// behind are recognised and removed by the next.
const tempPrefix = "kfllm-lfs-"

// storeLocal copies the objects into a bare repository's git-lfs store,
// <gitdir>/lfs/objects/<aa>/<bb>/<oid>, skipping those already there. Each
// object is written under <gitdir>/lfs/tmp (where git-lfs keeps its own
// temporary files), fsynced and renamed, so a partial copy never looks
// complete. Temporary files a killed earlier upload left there are removed
// first, unless another upload is still under way.
func storeLocal(gitDir string, objs []Object) (sent, skipped int, err error) {
	tmpDir := filepath.Join(gitDir, "lfs", "tmp")
	if len(objs) == 0 {
		if _, err := os.Stat(tmpDir); err != nil {
			return 0, 0, nil // no LFS objects now, none left behind
		}
	}
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		return 0, 0, fmt.Errorf("lfs store: %w", err)
	}
	unlock, err := lockTemps(tmpDir)
	if err != nil {
		return 0, 0, fmt.Errorf("lfs store: %w", err)
	}
	defer unlock()
	for _, o := range objs {
		dst := filepath.Join(gitDir, "lfs", "objects", o.OID[0:2], o.OID[2:4], o.OID)
		if st, err := os.Stat(dst); err == nil && st.Mode().IsRegular() && st.Size() == o.Size {
			skipped++
			continue
		}
		if err := storeObject(tmpDir, o, dst); err != nil {
			return sent, skipped, fmt.Errorf("store lfs object %s: %w", o.Name, err)
		}
		sent++
	}
	return sent, skipped, nil
}

// storeObject copies o to dst through a temporary file in tmpDir that is
// fsynced before the rename; on any error the temporary file is removed.
func storeObject(tmpDir string, o Object, dst string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(o.Path)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(tmpDir, tempPrefix+o.OID+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, in)
	if err != nil {
		return err
	}
	if n != o.Size {
		return fmt.Errorf("%s has %d bytes, %d when hashed (changed during the upload?)", o.Path, n, o.Size)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// removeStaleTemps deletes the temporary files of earlier uploads in tmpDir.
// The caller holds the exclusive lock, so none of them is being written.
func removeStaleTemps(tmpDir string) {
	entries, err := os.ReadDir(tmpDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) && e.Type().IsRegular() {
			os.Remove(filepath.Join(tmpDir, e.Name()))
		}
	}
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
