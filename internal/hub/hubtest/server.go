package hubtest

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Hostnames the fake Hub and its CDN answer to. The CDN host is a subdomain
// of the Hub's, as cdn-lfs.huggingface.co is of huggingface.co, so a test
// catches a client that (like net/http by default) keeps the Authorization
// header on a redirect to a subdomain. Server.HTTPClient dials both to
// loopback.
const (
	HubHost = "hub.test"
	CDNHost = "cdn-lfs.hub.test"
)

// Record is one request as the fake Hub or its CDN received it.
type Record struct {
	Host     string      // Host header without port: HubHost or CDNHost
	Method   string      // HTTP method
	Path     string      // decoded path
	RawPath  string      // path as sent, with its escapes (%2F in a revision)
	RawQuery string      // query as sent
	Header   http.Header // request headers
}

// Fault makes the server misbehave on matching requests.
type Fault struct {
	// Match selects the requests; nil matches all.
	Match func(*http.Request) bool
	// Status, when non-zero, is returned instead of serving the request,
	// with Header added (e.g. Retry-After).
	Status int
	Header http.Header
	// DropAfter, when positive, serves the request but closes the
	// connection abruptly once that many body bytes have been written.
	DropAfter int64
	// StallAfter, when positive, serves that many body bytes, then sends
	// nothing more until the client gives up, as a hung connection does.
	StallAfter int64
	// Delay, when positive, holds the request that long before it is
	// served (or failed), as a slow network does.
	Delay time.Duration
	// Times is how many matching requests the fault applies to; 0 means 1.
	Times int
}

// Server is a fake Hugging Face Hub on loopback: the routes of the Hub's
// HTTP API that the hub package uses, backed by in-memory repositories,
// with a second server standing in for the CDN that LFS files redirect to.
// Every request is recorded; faults can be injected.
//
// Other files of this package add routes (the upload side) through
// RegisterExtension, Server.Mux and Server.HandleRoot.
type Server struct {
	// URL is the Hub's base URL, http://hub.test:PORT.
	URL string
	// CDNURL is the CDN's base URL, http://cdn-lfs.hub.test:PORT.
	CDNURL string
	// Token is the one access token the fake Hub accepts.
	Token string
	// Mux routes Hub requests; extensions may register patterns on it.
	Mux *http.ServeMux

	hub, cdn *httptest.Server

	mu           sync.Mutex
	repos        map[string]*Repo
	records      []Record
	faults       []*Fault
	rootHandlers []func(http.ResponseWriter, *http.Request) bool
	blobs        map[string][]byte // CDN content by sha256
	treePageSize int
	now          time.Time
}

var (
	extMu      sync.Mutex
	extensions []func(*Server)
)

// RegisterExtension adds f to the setup every New runs, after the download
// routes are registered; other files of this package call it from init to
// add their routes.
func RegisterExtension(f func(*Server)) {
	extMu.Lock()
	defer extMu.Unlock()
	extensions = append(extensions, f)
}

// New starts a fake Hub and its CDN; both stop at the test's cleanup.
func New(t interface {
	Cleanup(func())
	Helper()
}) *Server {
	t.Helper()
	s := &Server{
		Token:        "hf_testtoken",
		Mux:          http.NewServeMux(),
		repos:        map[string]*Repo{},
		blobs:        map[string][]byte{},
		treePageSize: 1000,
		now:          time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	s.hub = httptest.NewServer(s.wrap(s.Mux))
	s.cdn = httptest.NewServer(s.wrap(http.HandlerFunc(s.serveCDN)))
	t.Cleanup(s.cdn.Close)
	t.Cleanup(s.hub.Close)
	s.URL = "http://" + HubHost + ":" + port(s.hub.URL)
	s.CDNURL = "http://" + CDNHost + ":" + port(s.cdn.URL)
	s.registerDownload()
	extMu.Lock()
	exts := slices.Clone(extensions)
	extMu.Unlock()
	for _, f := range exts {
		f(s)
	}
	return s
}

func port(u string) string {
	p, _ := url.Parse(u)
	return p.Port()
}

// HTTPClient returns a client that reaches HubHost and CDNHost on loopback.
func (s *Server) HTTPClient() *http.Client { return LoopbackClient() }

// LoopbackClient is Server.HTTPClient for code without the Server at
// hand, such as a child process a test starts with the Server's URL.
func LoopbackClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, p, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if host == HubHost || host == CDNHost {
				addr = net.JoinHostPort("127.0.0.1", p)
			}
			return d.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Transport: tr}
}

// SetTreePageSize sets how many entries one page of the tree listing holds.
func (s *Server) SetTreePageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.treePageSize = n
}

// AddFault arms f.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times <= 0 {
		f.Times = 1
	}
	s.faults = append(s.faults, &f)
}

// HandleRoot adds a handler consulted for paths that no Mux pattern takes
// (those whose shape a ServeMux pattern cannot express, such as
// /{owner}/{name}.git/info/lfs/...). It returns false to pass.
func (s *Server) HandleRoot(h func(http.ResponseWriter, *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rootHandlers = append(s.rootHandlers, h)
}

// Requests returns a copy of the requests recorded so far.
func (s *Server) Requests() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

// Downloads returns the revision of every file download from repository
// id of type typ ("model" or "dataset"), in order: the REV of each
// GET .../resolve/REV/PATH the Hub host received. A test of a pinned
// reference checks that each is the pinned commit.
func (s *Server) Downloads(typ, id string) []string {
	prefix := "/" + id + "/resolve/"
	if typ != "model" {
		prefix = "/" + typ + "s" + prefix
	}
	var revs []string
	for _, r := range s.Requests() {
		if rest, ok := strings.CutPrefix(r.Path, prefix); ok && r.Host == HubHost && r.Method == http.MethodGet {
			rev, _, _ := strings.Cut(rest, "/")
			revs = append(revs, rev)
		}
	}
	return revs
}

// DownloadedOnlyAt returns an error unless files of repository id were
// downloaded, every one at revision rev (see Downloads).
func (s *Server) DownloadedOnlyAt(typ, id, rev string) error {
	revs := s.Downloads(typ, id)
	if len(revs) == 0 {
		return fmt.Errorf("no file of %s downloaded", id)
	}
	for _, r := range revs {
		if r != rev {
			return fmt.Errorf("a file of %s downloaded at %s, want %s (all: %v)", id, r, rev, revs)
		}
	}
	return nil
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = nil
}

// wrap records each request and applies faults before h.
func (s *Server) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		s.mu.Lock()
		s.records = append(s.records, Record{
			Host: host, Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(),
			RawQuery: r.URL.RawQuery, Header: r.Header.Clone(),
		})
		var fault *Fault
		for _, f := range s.faults {
			if f.Times > 0 && (f.Match == nil || f.Match(r)) {
				f.Times--
				fault = f
				break
			}
		}
		s.mu.Unlock()
		if fault != nil && fault.Delay > 0 {
			select {
			case <-time.After(fault.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if fault != nil && fault.Status != 0 {
			for k, vs := range fault.Header {
				w.Header()[k] = vs
			}
			w.WriteHeader(fault.Status)
			return
		}
		if fault != nil && fault.DropAfter > 0 {
			w = &dropWriter{ResponseWriter: w, left: fault.DropAfter}
		}
		if fault != nil && fault.StallAfter > 0 {
			w = &dropWriter{ResponseWriter: w, left: fault.StallAfter, stall: r.Context().Done()}
		}
		h.ServeHTTP(w, r)
	})
}

// dropWriter passes left bytes through, then aborts the connection (after
// waiting for stall to close, when set).
type dropWriter struct {
	http.ResponseWriter
	left  int64
	stall <-chan struct{}
}

func (d *dropWriter) Write(p []byte) (int, error) {
	if int64(len(p)) >= d.left {
		n, _ := d.ResponseWriter.Write(p[:d.left])
		if f, ok := d.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		d.left = 0
		_ = n
		if d.stall != nil {
			<-d.stall
		}
		panic(http.ErrAbortHandler)
	}
	d.left -= int64(len(p))
	return d.ResponseWriter.Write(p)
}

// WriteError answers as the Hub does: X-Error-Code and X-Error-Message
// headers and a JSON body {"error": message}.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	if message != "" {
		w.Header().Set("X-Error-Message", message)
	}
	w.Header().Set("X-Request-Id", "Root=1-fake-request")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": message})
}

// WriteJSON answers 200 with v as JSON.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// File is one file in a commit.
type File struct {
	Data []byte
	// LFS files are listed with an "lfs" object and served by a redirect to
	// the CDN, as the Hub does for files tracked by Git LFS (or Xet).
	LFS bool
}

// OID is the file's git blob id (sha1 of "blob <size>\0" and the content).
func (f File) OID() string { return GitBlobOID(f.Data) }

// SHA256 is the hex sha256 of the content (the LFS oid).
func (f File) SHA256() string {
	h := sha256.Sum256(f.Data)
	return hex.EncodeToString(h[:])
}

// GitBlobOID returns git's object id of a blob with content data.
func GitBlobOID(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// Repo is an in-memory Hub repository. Its methods are safe for concurrent use.
type Repo struct {
	Type string // "model" or "dataset"
	ID   string // "owner/name"

	s       *Server
	private bool
	gated   bool
	granted bool
	refs    map[string]string // branch or tag -> commit sha
	commits map[string]map[string]File
	order   []string // commit shas, oldest first
}

// Change is the content of one commit.
type Change struct {
	Add     map[string]File
	Delete  []string
	Message string
}

func repoKey(typ, id string) string { return typ + ":" + id }

// AddRepo creates an empty repository (no commits, no branches). typ is
// "model" or "dataset".
func (s *Server) AddRepo(typ, id string) *Repo {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &Repo{Type: typ, ID: id, s: s, refs: map[string]string{}, commits: map[string]map[string]File{}}
	s.repos[repoKey(typ, id)] = r
	return r
}

// Repo returns the repository, or nil.
func (s *Server) Repo(typ, id string) *Repo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repos[repoKey(typ, id)]
}

// SetPrivate makes the repository visible only with the server's Token.
func (r *Repo) SetPrivate(v bool) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.private = v
}

// SetGated gates the repository; granted says whether Token has been given access.
func (r *Repo) SetGated(gated, granted bool) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.gated, r.granted = gated, granted
}

// Commit applies ch on top of branch (created if absent) and returns the
// new commit's sha.
func (r *Repo) Commit(branch string, ch Change) string {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	files := map[string]File{}
	parent := r.refs[branch]
	for p, f := range r.commits[parent] {
		files[p] = f
	}
	for _, p := range ch.Delete {
		delete(files, p)
	}
	for p, f := range ch.Add {
		files[p] = f
		if f.LFS {
			r.s.blobs[f.SHA256()] = f.Data
		}
	}
	h := sha1.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s", r.ID, parent, len(r.order), ch.Message)
	paths := sortedKeys(files)
	for _, p := range paths {
		fmt.Fprintf(h, "%s\x00%s\x00", p, files[p].OID())
	}
	sha := hex.EncodeToString(h.Sum(nil))
	r.commits[sha] = files
	r.order = append(r.order, sha)
	r.refs[branch] = sha
	return sha
}

// CommitFiles commits the given contents on branch; paths ending in
// .parquet, .safetensors, .bin or .gguf are stored as LFS files.
func (r *Repo) CommitFiles(branch string, files map[string][]byte) string {
	add := map[string]File{}
	for p, d := range files {
		add[p] = File{Data: d, LFS: isLFSPath(p)}
	}
	return r.Commit(branch, Change{Add: add, Message: "add files"})
}

func isLFSPath(p string) bool {
	for _, ext := range []string{".parquet", ".safetensors", ".bin", ".gguf", ".pt"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

// SetRef points a branch or tag at a commit.
func (r *Repo) SetRef(name, sha string) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.refs[name] = sha
}

// Ref returns the commit a branch or tag points at.
func (r *Repo) Ref(name string) (string, bool) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	sha, ok := r.refs[name]
	return sha, ok
}

// Files returns the files at a revision (branch, tag or commit sha).
func (r *Repo) Files(rev string) (sha string, files map[string]File, ok bool) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.resolveLocked(rev)
}

func (r *Repo) resolveLocked(rev string) (string, map[string]File, bool) {
	sha, ok := r.refs[rev]
	if !ok {
		sha = rev
	}
	files, ok := r.commits[sha]
	return sha, files, ok
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// AuthorizeRead finds the repository for a request and checks the
// request's token against its visibility as the Hub does: an unknown or
// private repository is 401 RepoNotFound without a token (404 with one), a
// gated one is 401/403 GatedRepo until access is granted, and a wrong token
// is 401. It writes the error response and returns nil when access is denied.
func (s *Server) AuthorizeRead(w http.ResponseWriter, r *http.Request, typ, id string) *Repo {
	auth := r.Header.Get("Authorization")
	hasToken := auth != ""
	if hasToken && auth != "Bearer "+s.Token {
		WriteError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
		return nil
	}
	repo := s.Repo(typ, id)
	s.mu.Lock()
	private, gated, granted := false, false, false
	if repo != nil {
		private, gated, granted = repo.private, repo.gated, repo.granted
	}
	s.mu.Unlock()
	if repo == nil || (private && !hasToken) {
		status := http.StatusNotFound
		if !hasToken {
			status = http.StatusUnauthorized
		}
		WriteError(w, status, "RepoNotFound", "Repository not found")
		return nil
	}
	if gated && (!hasToken || !granted) {
		status := http.StatusForbidden
		if !hasToken {
			status = http.StatusUnauthorized
		}
		WriteError(w, status, "GatedRepo", fmt.Sprintf("Access to %s %s is restricted. You must have access to it and be authenticated to access it. Please log in.", typ, id))
		return nil
	}
	return repo
}

func (s *Server) registerDownload() {
	s.Mux.HandleFunc("GET /api/{types}/{owner}/{name}", s.serveInfo)
	s.Mux.HandleFunc("GET /api/{types}/{owner}/{name}/revision/{rev}", s.serveInfo)
	s.Mux.HandleFunc("GET /api/{types}/{owner}/{name}/tree/{rev}", s.serveTree)
	s.Mux.HandleFunc("GET /api/{types}/{owner}/{name}/tree/{rev}/{path...}", s.serveTree)
	s.Mux.HandleFunc("GET /api/datasets/{owner}/{name}/parquet", s.serveParquetList)
	s.Mux.HandleFunc("GET /api/datasets/{owner}/{name}/parquet/{subset}/{split}", s.serveParquetList)
	s.Mux.HandleFunc("GET /api/datasets/{owner}/{name}/parquet/{subset}/{split}/{file}", s.serveParquetFile)
	s.Mux.HandleFunc("/", s.serveRoot)
}

func repoTypeOf(types string) (string, bool) {
	switch types {
	case "models":
		return "model", true
	case "datasets":
		return "dataset", true
	case "spaces":
		return "space", true
	}
	return "", false
}

func (s *Server) repoFor(w http.ResponseWriter, r *http.Request) *Repo {
	typ, ok := repoTypeOf(r.PathValue("types"))
	if !ok {
		WriteError(w, http.StatusNotFound, "", "Not Found")
		return nil
	}
	return s.AuthorizeRead(w, r, typ, r.PathValue("owner")+"/"+r.PathValue("name"))
}

// resolve finds a revision's commit, answering 404 RevisionNotFound.
func (s *Server) resolve(w http.ResponseWriter, repo *Repo, rev string) (string, map[string]File, bool) {
	if rev == "" {
		rev = "main"
	}
	sha, files, ok := repo.Files(rev)
	if !ok {
		WriteError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
	}
	return sha, files, ok
}

func (s *Server) serveInfo(w http.ResponseWriter, r *http.Request) {
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	sha, files, ok := s.resolve(w, repo, r.PathValue("rev"))
	if !ok {
		return
	}
	siblings := []map[string]string{}
	for _, p := range sortedKeys(files) {
		siblings = append(siblings, map[string]string{"rfilename": p})
	}
	s.mu.Lock()
	private, gated := repo.private, repo.gated
	s.mu.Unlock()
	var g any = false
	if gated {
		g = "manual"
	}
	WriteJSON(w, map[string]any{
		"_id": "fake" + sha[:8], "id": repo.ID, "sha": sha, "private": private, "gated": g,
		"disabled": false, "lastModified": s.now.Format(time.RFC3339), "siblings": siblings,
	})
}

// TreeEntry is one item of the tree listing, as the Hub returns it.
type TreeEntry struct {
	Type string   `json:"type"`
	OID  string   `json:"oid"`
	Size int64    `json:"size"`
	Path string   `json:"path"`
	LFS  *TreeLFS `json:"lfs,omitempty"`
}

// TreeLFS is the "lfs" object of a tree entry.
type TreeLFS struct {
	OID         string `json:"oid"`
	Size        int64  `json:"size"`
	PointerSize int64  `json:"pointerSize"`
}

func (s *Server) serveTree(w http.ResponseWriter, r *http.Request) {
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	_, files, ok := s.resolve(w, repo, r.PathValue("rev"))
	if !ok {
		return
	}
	base := strings.Trim(r.PathValue("path"), "/")
	recursive := r.URL.Query().Get("recursive") == "true" || r.URL.Query().Get("recursive") == "True"
	var entries []TreeEntry
	dirs := map[string]bool{}
	found := base == ""
	for _, p := range sortedKeys(files) {
		rel := p
		if base != "" {
			if !strings.HasPrefix(p, base+"/") {
				continue
			}
			rel = strings.TrimPrefix(p, base+"/")
		}
		found = true
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			if !recursive && i > 1 {
				break
			}
			d := strings.Join(parts[:i], "/")
			if base != "" {
				d = base + "/" + d
			}
			if !dirs[d] {
				dirs[d] = true
				entries = append(entries, TreeEntry{Type: "directory", OID: GitBlobOID([]byte(d)), Path: d})
			}
		}
		if !recursive && len(parts) > 1 {
			continue
		}
		f := files[p]
		e := TreeEntry{Type: "file", OID: f.OID(), Size: int64(len(f.Data)), Path: p}
		if f.LFS {
			e.LFS = &TreeLFS{OID: f.SHA256(), Size: int64(len(f.Data)), PointerSize: 134}
		}
		entries = append(entries, e)
	}
	if !found {
		WriteError(w, http.StatusNotFound, "EntryNotFound", fmt.Sprintf("%s does not exist on %q", base, r.PathValue("rev")))
		return
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	s.mu.Lock()
	size := s.treePageSize
	s.mu.Unlock()
	start := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		fmt.Sscanf(c, "%d", &start)
	}
	end := min(start+size, len(entries))
	if start > len(entries) {
		start = end
	}
	if end < len(entries) {
		q := r.URL.Query()
		q.Set("cursor", fmt.Sprint(end))
		next := s.URL + r.URL.EscapedPath() + "?" + q.Encode()
		w.Header().Set("Link", fmt.Sprintf("<%s>; rel=\"next\"", next))
	}
	page := entries[start:end]
	if page == nil {
		page = []TreeEntry{}
	}
	WriteJSON(w, page)
}

// ParquetRef is the branch where the Hub keeps a dataset's parquet
// conversion, laid out as {subset}/{split}/NNNN.parquet.
const ParquetRef = "refs/convert/parquet"

// parquetFiles groups the parquet conversion's files by subset and split,
// each file as {split dir}/{name}.
func (s *Server) parquetFiles(repo *Repo) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	_, files, ok := repo.Files(ParquetRef)
	if !ok {
		return out
	}
	for _, p := range sortedKeys(files) {
		parts := strings.Split(p, "/")
		if len(parts) != 3 || !strings.HasSuffix(p, ".parquet") {
			continue
		}
		if out[parts[0]] == nil {
			out[parts[0]] = map[string][]string{}
		}
		// A split too large to convert whole lives in partial-{split} and
		// is listed under its own name.
		split := strings.TrimPrefix(parts[1], "partial-")
		out[parts[0]][split] = append(out[parts[0]][split], parts[1]+"/"+parts[2])
	}
	return out
}

func (s *Server) serveParquetList(w http.ResponseWriter, r *http.Request) {
	repo := s.AuthorizeRead(w, r, "dataset", r.PathValue("owner")+"/"+r.PathValue("name"))
	if repo == nil {
		return
	}
	all := s.parquetFiles(repo)
	urls := func(subset, split string) []string {
		var out []string
		for i := range all[subset][split] {
			out = append(out, fmt.Sprintf("%s/api/datasets/%s/parquet/%s/%s/%d.parquet", s.URL, repo.ID, url.PathEscape(subset), url.PathEscape(split), i))
		}
		return out
	}
	subset, split := r.PathValue("subset"), r.PathValue("split")
	if subset == "" {
		res := map[string]map[string][]string{}
		for c, splits := range all {
			res[c] = map[string][]string{}
			for sp := range splits {
				res[c][sp] = urls(c, sp)
			}
		}
		WriteJSON(w, res)
		return
	}
	if len(all[subset][split]) == 0 {
		WriteError(w, http.StatusNotFound, "", fmt.Sprintf("Not found: subset %s split %s", subset, split))
		return
	}
	WriteJSON(w, urls(subset, split))
}

func (s *Server) serveParquetFile(w http.ResponseWriter, r *http.Request) {
	repo := s.AuthorizeRead(w, r, "dataset", r.PathValue("owner")+"/"+r.PathValue("name"))
	if repo == nil {
		return
	}
	subset, split := r.PathValue("subset"), r.PathValue("split")
	var n int
	if _, err := fmt.Sscanf(r.PathValue("file"), "%d.parquet", &n); err != nil {
		WriteError(w, http.StatusNotFound, "", "Not found")
		return
	}
	names := s.parquetFiles(repo)[subset][split]
	if n < 0 || n >= len(names) {
		WriteError(w, http.StatusNotFound, "", "Not found")
		return
	}
	loc := fmt.Sprintf("%s/datasets/%s/resolve/%s/%s/%s", s.URL, repo.ID, url.PathEscape(ParquetRef), url.PathEscape(subset), names[n])
	http.Redirect(w, r, loc, http.StatusFound)
}

// serveRoot takes the routes a ServeMux pattern cannot tell apart: file
// downloads, /{owner}/{name}/resolve/{rev}/{path} for models and
// /datasets/{owner}/{name}/resolve/{rev}/{path} for datasets (revision
// escaped as one segment, refs%2Fpr%2F1), and then any HandleRoot handlers.
func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	typ := "model"
	if len(segs) > 0 && (segs[0] == "datasets" || segs[0] == "spaces") {
		typ = strings.TrimSuffix(segs[0], "s")
		segs = segs[1:]
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && len(segs) >= 5 && segs[2] == "resolve" {
		unescape := func(p string) string {
			u, err := url.PathUnescape(p)
			if err != nil {
				return p
			}
			return u
		}
		id := unescape(segs[0]) + "/" + unescape(segs[1])
		var parts []string
		for _, p := range segs[4:] {
			parts = append(parts, unescape(p))
		}
		s.serveResolve(w, r, typ, id, unescape(segs[3]), strings.Join(parts, "/"))
		return
	}
	s.mu.Lock()
	handlers := slices.Clone(s.rootHandlers)
	s.mu.Unlock()
	for _, h := range handlers {
		if h(w, r) {
			return
		}
	}
	WriteError(w, http.StatusNotFound, "", "Not Found")
}

func (s *Server) serveResolve(w http.ResponseWriter, r *http.Request, typ, id, rev, path string) {
	repo := s.AuthorizeRead(w, r, typ, id)
	if repo == nil {
		return
	}
	sha, files, ok := s.resolve(w, repo, rev)
	if !ok {
		return
	}
	f, ok := files[path]
	if !ok {
		WriteError(w, http.StatusNotFound, "EntryNotFound", "Entry not found")
		return
	}
	w.Header().Set("X-Repo-Commit", sha)
	if f.LFS {
		w.Header().Set("X-Linked-Etag", `"`+f.SHA256()+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(f.Data)))
		w.Header().Set("ETag", `"`+f.OID()+`"`)
		loc := fmt.Sprintf("%s/repos/%s?X-Amz-Signature=fakesig&response-content-disposition=%s",
			s.CDNURL, f.SHA256(), url.QueryEscape("attachment; filename="+path))
		http.Redirect(w, r, loc, http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+f.OID()+`"`)
	http.ServeContent(w, r, "", s.now, bytes.NewReader(f.Data))
}

// serveCDN serves LFS content by sha256, like a signed CDN URL: the
// signature is required and an Authorization header is refused (S3 rejects
// requests carrying both).
func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("X-Amz-Signature") == "" {
		http.Error(w, "missing signature", http.StatusForbidden)
		return
	}
	if r.Header.Get("Authorization") != "" {
		http.Error(w, "Only one auth mechanism allowed", http.StatusBadRequest)
		return
	}
	oid := strings.TrimPrefix(r.URL.Path, "/repos/")
	s.mu.Lock()
	data, ok := s.blobs[oid]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "NoSuchKey", http.StatusNotFound)
		return
	}
	w.Header().Set("ETag", `"`+oid+`"`)
	http.ServeContent(w, r, "", s.now, bytes.NewReader(data))
}
