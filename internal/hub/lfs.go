package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
)

// lfsMediaType is the git-lfs batch API's media type.
const lfsMediaType = "application/vnd.git-lfs+json"

// lfsBatchSize is how many objects one batch request names, as
// huggingface_hub chunks them.
const lfsBatchSize = 256

// lfsObject is a file to store through the Hub's LFS endpoint.
type lfsObject struct {
	path string // on disk
	name string // path in the repository
	oid  string // hex sha256
	size int64
}

type lfsAction struct {
	Href   string            `json:"href"`
	Header map[string]string `json:"header,omitempty"`
}

type lfsBatchObject struct {
	OID     string               `json:"oid"`
	Size    int64                `json:"size"`
	Actions map[string]lfsAction `json:"actions,omitempty"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

type lfsBatchResponse struct {
	Transfer string           `json:"transfer"`
	Objects  []lfsBatchObject `json:"objects"`
}

// lfsStats counts what uploadLFS did.
type lfsStats struct{ sent, skipped int }

// uploadLFS asks the batch API which objects the Hub lacks and sends those:
// one PUT (basic transfer) or one PUT per part then a completion POST
// (multipart), then the verify call when the server gives one. Bodies are
// sections of the files on disk, so memory stays flat whatever the size.
func (c *Client) uploadLFS(ctx context.Context, typ, repoID, revision string, objs []lfsObject, p *progress) (lfsStats, error) {
	var st lfsStats
	for start := 0; start < len(objs); start += lfsBatchSize {
		chunk := objs[start:min(start+lfsBatchSize, len(objs))]
		byOID := map[string]lfsObject{}
		req := struct {
			Operation string   `json:"operation"`
			Transfers []string `json:"transfers"`
			Objects   []struct {
				OID  string `json:"oid"`
				Size int64  `json:"size"`
			} `json:"objects"`
			HashAlgo string `json:"hash_algo"`
			Ref      *struct {
				Name string `json:"name"`
			} `json:"ref,omitempty"`
		}{Operation: "upload", Transfers: []string{"basic", "multipart"}, HashAlgo: "sha256"}
		if revision != "" {
			req.Ref = &struct {
				Name string `json:"name"`
			}{Name: "refs/heads/" + revision}
		}
		for _, o := range chunk {
			if _, dup := byOID[o.oid]; dup {
				continue
			}
			byOID[o.oid] = o
			req.Objects = append(req.Objects, struct {
				OID  string `json:"oid"`
				Size int64  `json:"size"`
			}{o.oid, o.size})
		}
		body, _ := json.Marshal(req)
		var resp lfsBatchResponse
		err := c.DoJSON(ctx, &Request{
			Method: http.MethodPost, Path: gitRepoPath(typ, repoID) + "/info/lfs/objects/batch",
			Header: http.Header{"Accept": {lfsMediaType}, "Content-Type": {lfsMediaType}},
			Body:   bytesBody(body), ContentLength: int64(len(body)),
			Idempotent: true, // asking twice changes nothing
		}, &resp)
		if err != nil {
			return st, fmt.Errorf("lfs batch for %s: %w%s", repoID, err, writeHint(err))
		}
		for _, ro := range resp.Objects {
			o, ok := byOID[ro.OID]
			if !ok {
				return st, fmt.Errorf("lfs batch for %s: answer names unknown object %s", repoID, ro.OID)
			}
			if ro.Error != nil {
				return st, fmt.Errorf("lfs object %s (%s): %d %s", o.name, o.oid, ro.Error.Code, ro.Error.Message)
			}
			up, ok := ro.Actions["upload"]
			if !ok {
				st.skipped++
				p.logf("lfs: %s already on the Hub", o.name)
				continue
			}
			if _, multipart := up.Header["chunk_size"]; multipart {
				err = c.putMultipart(ctx, o, up, p)
			} else {
				err = c.putBasic(ctx, o, up, p)
			}
			if err != nil {
				return st, err
			}
			if v, ok := ro.Actions["verify"]; ok {
				if err := c.verifyLFS(ctx, o, v); err != nil {
					return st, err
				}
			}
			st.sent++
		}
	}
	return st, nil
}

// sectionBody opens the file afresh for each attempt and serves bytes
// [off, off+n) of it.
func sectionBody(path string, off, n int64, p *progress, label string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return &sectionReadCloser{Reader: p.reader(io.NewSectionReader(f, off, n), label, n), f: f}, nil
	}
}

type sectionReadCloser struct {
	io.Reader
	f *os.File
}

func (s *sectionReadCloser) Close() error { return s.f.Close() }

func headerOf(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

func (c *Client) putBasic(ctx context.Context, o lfsObject, a lfsAction, p *progress) error {
	h := headerOf(a.Header)
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/octet-stream")
	}
	resp, err := c.Do(ctx, &Request{
		Method: http.MethodPut, URL: a.Href, Header: h,
		Body: sectionBody(o.path, 0, o.size, p, o.name), ContentLength: o.size,
		Idempotent: true,
	})
	if err != nil {
		return fmt.Errorf("lfs upload %s: %w", o.name, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.logf("lfs: uploaded %s (%s)", o.name, humanBytes(o.size))
	return nil
}

// putMultipart uploads o in the parts the batch answer lists: its header
// holds "chunk_size" and one URL per part number ("1", "2", ...). Each part's
// ETag goes into the completion POST to the upload href.
func (c *Client) putMultipart(ctx context.Context, o lfsObject, a lfsAction, p *progress) error {
	chunk, err := strconv.ParseInt(a.Header["chunk_size"], 10, 64)
	if err != nil || chunk <= 0 {
		return fmt.Errorf("lfs upload %s: bad chunk_size %q in the batch answer", o.name, a.Header["chunk_size"])
	}
	var nums []int
	for k := range a.Header {
		if n, err := strconv.Atoi(k); err == nil && n > 0 {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	want := int((o.size + chunk - 1) / chunk)
	if len(nums) != want {
		return fmt.Errorf("lfs upload %s: the server offers %d part URLs for %d bytes in chunks of %d (want %d)", o.name, len(nums), o.size, chunk, want)
	}
	type part struct {
		PartNumber int    `json:"partNumber"`
		ETag       string `json:"etag"`
	}
	parts := make([]part, 0, len(nums))
	for i, n := range nums {
		off := int64(i) * chunk
		n64 := min(chunk, o.size-off)
		label := fmt.Sprintf("%s part %d/%d", o.name, i+1, len(nums))
		resp, err := c.Do(ctx, &Request{
			Method: http.MethodPut, URL: a.Header[strconv.Itoa(n)],
			Body:          sectionBody(o.path, off, n64, p, label),
			ContentLength: n64,
			Idempotent:    true, // a part PUT again overwrites the same part
		})
		if err != nil {
			return fmt.Errorf("lfs upload %s: %w", label, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		etag := resp.Header.Get("ETag")
		if etag == "" {
			return fmt.Errorf("lfs upload %s: the storage answered without an ETag", label)
		}
		parts = append(parts, part{PartNumber: n, ETag: etag})
	}
	body, _ := json.Marshal(struct {
		OID   string `json:"oid"`
		Parts []part `json:"parts"`
	}{o.oid, parts})
	h := http.Header{"Accept": {lfsMediaType}, "Content-Type": {lfsMediaType}}
	err = c.DoJSON(ctx, &Request{
		Method: http.MethodPost, URL: a.Href, Header: h,
		Body: bytesBody(body), ContentLength: int64(len(body)),
		Idempotent: true,
	}, nil)
	if err != nil {
		return fmt.Errorf("lfs upload %s: complete multipart: %w", o.name, err)
	}
	p.logf("lfs: uploaded %s (%s in %d parts)", o.name, humanBytes(o.size), len(parts))
	return nil
}

func (c *Client) verifyLFS(ctx context.Context, o lfsObject, a lfsAction) error {
	body, _ := json.Marshal(struct {
		OID  string `json:"oid"`
		Size int64  `json:"size"`
	}{o.oid, o.size})
	h := headerOf(a.Header)
	h.Set("Accept", lfsMediaType)
	h.Set("Content-Type", lfsMediaType)
	err := c.DoJSON(ctx, &Request{
		Method: http.MethodPost, URL: a.Href, Header: h,
		Body: bytesBody(body), ContentLength: int64(len(body)),
		Idempotent: true,
	}, nil)
	if err != nil {
		return fmt.Errorf("lfs verify %s: %w", o.name, err)
	}
	return nil
}
