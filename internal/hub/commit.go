package hub

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
)

// commitOp is one operation of a commit: a regular file (content inline,
// base64), an LFS file (pointer fields only) or a deletion.
type commitOp struct {
	kind string // "file", "lfsFile" or "deletedFile"
	name string // path in the repository
	path string // on disk, for "file"
	oid  string // sha256, for "lfsFile"
	size int64
}

// CommitInfo is the Hub's answer to a commit.
type CommitInfo struct {
	CommitURL     string `json:"commitUrl"`
	CommitOID     string `json:"commitOid"`
	CommitMessage string `json:"commitMessage"`
	Success       bool   `json:"success"`
}

// writeCommitNDJSON writes the body of POST .../commit/{rev}: one JSON
// object a line, the header first, then the operations, as huggingface_hub's
// _payload_as_ndjson. Regular files are read from disk and base64-encoded on
// the fly.
func writeCommitNDJSON(w io.Writer, summary, description, parent string, ops []commitOp) error {
	bw := bufio.NewWriter(w)
	header := map[string]string{"summary": summary, "description": description}
	if parent != "" {
		header["parentCommit"] = parent
	}
	if err := writeLine(bw, "header", header); err != nil {
		return err
	}
	for _, op := range ops {
		var err error
		switch op.kind {
		case "file":
			err = writeFileLine(bw, op)
		case "lfsFile":
			err = writeLine(bw, "lfsFile", struct {
				Path string `json:"path"`
				Algo string `json:"algo"`
				OID  string `json:"oid"`
				Size int64  `json:"size"`
			}{op.name, "sha256", op.oid, op.size})
		case "deletedFile":
			err = writeLine(bw, "deletedFile", struct {
				Path string `json:"path"`
			}{op.name})
		default:
			err = fmt.Errorf("unknown commit operation %q", op.kind)
		}
		if err != nil {
			return err
		}
	}
	return bw.Flush()
}

func writeLine(w *bufio.Writer, key string, value any) error {
	b, err := json.Marshal(struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	}{key, value})
	if err != nil {
		return err
	}
	w.Write(b)
	return w.WriteByte('\n')
}

// writeFileLine streams {"key":"file","value":{"content":"<base64>","path":..,"encoding":"base64"}}.
func writeFileLine(w *bufio.Writer, op commitOp) error {
	f, err := os.Open(op.path)
	if err != nil {
		return err
	}
	defer f.Close()
	pathJSON, _ := json.Marshal(op.name)
	w.WriteString(`{"key":"file","value":{"content":"`)
	enc := base64.NewEncoder(base64.StdEncoding, w)
	n, err := io.Copy(enc, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", op.path, err)
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if n != op.size {
		return fmt.Errorf("read %s: %d bytes, but it had %d when scanned (changed during the upload?)", op.path, n, op.size)
	}
	w.WriteString(`","path":`)
	w.Write(pathJSON)
	w.WriteString(`,"encoding":"base64"}}`)
	return w.WriteByte('\n')
}

// createCommit posts the operations as one commit to revision.
func (c *Client) createCommit(ctx context.Context, typ, repoID, revision, summary, description string, ops []commitOp) (*CommitInfo, error) {
	body := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(writeCommitNDJSON(pw, summary, description, "", ops))
		}()
		return pr, nil
	}
	var info CommitInfo
	err := c.DoJSON(ctx, &Request{
		Method: http.MethodPost, Path: apiRepoPath(typ, repoID) + "/commit/" + escapeRevision(revision),
		Header: http.Header{"Content-Type": {"application/x-ndjson"}},
		Body:   body,
		// A commit retried after a lost answer records the same files
		// again at worst: no content is lost or duplicated.
		Idempotent: true,
	}, &info)
	if err != nil {
		return nil, fmt.Errorf("commit to %s@%s: %w%s", repoID, revision, err, writeHint(err))
	}
	return &info, nil
}
