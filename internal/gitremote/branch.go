package gitremote

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// defaultBranch is the branch Push commits to when Options.Branch is empty
// and the remote's HEAD names none (a new repository, a server that does
// not say).
const defaultBranch = "main"

// localHEAD returns the branch a local repository's HEAD names, even when
// that branch has no commit yet (an empty `git init --bare -b trunk`), or ""
// when HEAD is missing or detached.
func localHEAD(repo *git.Repository) string {
	head, err := repo.Storer.Reference(plumbing.HEAD)
	if err != nil || head.Type() != plumbing.SymbolicReference || !head.Target().IsBranch() {
		return ""
	}
	return head.Target().Short()
}

// advertisedHEAD returns the branch HEAD names in a protocol v0 reference
// advertisement (its symref capability), or "". An empty repository
// advertises no HEAD there.
func advertisedHEAD(refs []*plumbing.Reference) string {
	for _, r := range refs {
		if r.Name() == plumbing.HEAD && r.Type() == plumbing.SymbolicReference && r.Target().IsBranch() {
			return r.Target().Short()
		}
	}
	return ""
}

// unbornHEAD asks an http(s) git server, in protocol v2 (`ls-refs` with
// `symrefs` and `unborn`, git 2.31 and later), which branch HEAD names, so
// that an empty repository's default branch is known too. It returns ""
// when the server speaks only protocol v0 or does not say.
func unbornHEAD(ctx context.Context, o Options) (string, error) {
	base := strings.TrimSuffix(o.Remote, "/")
	get, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/info/refs?service=git-upload-pack", nil)
	if err != nil {
		return "", err
	}
	get.Header.Set("Git-Protocol", "version=2")
	o.authorize(get)
	resp, err := o.HTTPClient.Do(get)
	if err != nil {
		return "", err
	}
	caps, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(caps, []byte("version 2\n")) {
		return "", nil // a protocol v0 server
	}
	var body bytes.Buffer
	for _, line := range []string{"command=ls-refs\n", "agent=kfllm\n"} {
		writePkt(&body, line)
	}
	body.WriteString("0001") // delimiter between capabilities and arguments
	for _, line := range []string{"symrefs\n", "unborn\n", "ref-prefix HEAD\n"} {
		writePkt(&body, line)
	}
	body.WriteString("0000")
	post, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/git-upload-pack", &body)
	if err != nil {
		return "", err
	}
	post.Header.Set("Git-Protocol", "version=2")
	post.Header.Set("Content-Type", "application/x-git-upload-pack-request")
	post.Header.Set("Accept", "application/x-git-upload-pack-result")
	o.authorize(post)
	resp, err = o.HTTPClient.Do(post)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ls-refs: %s", resp.Status)
	}
	r := bufio.NewReader(io.LimitReader(resp.Body, 64<<10))
	for {
		line, err := readPkt(r)
		if err != nil || line == "" {
			return "", err
		}
		// "<oid> HEAD symref-target:refs/heads/x" or "unborn HEAD symref-target:..."
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[1] != "HEAD" {
			continue
		}
		for _, attr := range fields[2:] {
			if t, ok := strings.CutPrefix(attr, "symref-target:"); ok {
				if name := plumbing.ReferenceName(t); name.IsBranch() {
					return name.Short(), nil
				}
			}
		}
	}
}

func (o Options) authorize(req *http.Request) {
	if o.Password != "" {
		req.SetBasicAuth(o.gitUser(), o.Password)
	}
}

func writePkt(w *bytes.Buffer, s string) {
	fmt.Fprintf(w, "%04x%s", len(s)+4, s)
}

// readPkt reads one pkt-line; a flush or delimiter packet reads as "".
func readPkt(r *bufio.Reader) (string, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	size, err := strconv.ParseUint(string(n[:]), 16, 16)
	if err != nil {
		return "", fmt.Errorf("bad pkt-line length %q", n)
	}
	if size < 4 {
		return "", nil
	}
	b := make([]byte, size-4)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

var errNoBranch = errors.New("no branch")
