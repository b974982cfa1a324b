package hubtest

// The upload side of the fake Hub, following huggingface_hub's client
// (hf_api.py create_repo / preupload / create_commit, _commit_api.py,
// lfs.py) and the git-lfs batch API:
//
//	POST /api/repos/create                              {name, organization, private, type}; 409 when it exists
//	POST /api/{type}s/{owner}/{name}/preupload/{rev}    {files:[{path, sample, size}]} -> uploadMode, shouldIgnore
//	POST /api/{type}s/{owner}/{name}/branch/{branch}    create a branch from main
//	POST /api/{type}s/{owner}/{name}/commit/{rev}       application/x-ndjson: header, file, lfsFile, deletedFile
//	POST /[{type}s/]{owner}/{name}.git/info/lfs/objects/batch    basic or multipart upload actions
//	POST /[{type}s/]{owner}/{name}.git/info/lfs/objects/verify   the verify action
//
// LFS content goes to StorageHost, a stand-in for S3 that is not a
// subdomain of the Hub, so a test sees whether the token leaks there:
//
//	PUT  /lfs/{oid}?X-Amz-Signature=..                  basic transfer
//	PUT  /lfs/{oid}/part/{n}?uploadId=..&X-Amz-Signature=..   one multipart part; answers an ETag
//	POST /lfs/{oid}/complete                            {oid, parts:[{partNumber, etag}]}
//
// Bodies are hashed as they arrive, so a multi-GB upload keeps the fake's
// memory flat; content is kept for objects up to Uploads.KeepLimit bytes.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// StorageHost is where LFS upload URLs point, standing in for S3.
const StorageHost = "s3.storage.test"

// DefaultGitattributes is the .gitattributes a new Hub repository's first
// commit holds (shortened).
const DefaultGitattributes = "*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"

// Uploads is the upload state of one fake Hub: its LFS store, its settings
// and what it received. Get it with Server.Uploads.
type Uploads struct {
	s  *Server
	mu sync.Mutex

	// ReadOnlyToken is accepted for reads and refused (403) for writes,
	// like a Hub token with the "read" role.
	ReadOnlyToken string
	// LFSThreshold is the size from which preupload answers "lfs"
	// (binary samples and *.safetensors/*.bin/... always are); default 10 MiB.
	LFSThreshold int64
	// PartSize, when positive, offers multipart transfer with this chunk
	// size for objects larger than it; otherwise basic transfer.
	PartSize int64
	// Verify adds a verify action to every upload.
	Verify bool
	// KeepLimit is the largest object whose content is kept (and so
	// appears in the repository's files); default 64 MiB.
	KeepLimit int64
	// DropPart, when non-nil, is asked before each part or basic PUT
	// (part 0 for basic); a positive answer n makes the storage read n
	// bytes of the body and then drop the connection.
	DropPart func(oid string, part int) int64

	objects map[string]*lfsObject
	batches []BatchRecord
	parts   []PartRecord
	commits []CommitRecord
	verify  []string
}

// BatchRecord is one LFS batch request as received.
type BatchRecord struct {
	Repo      string
	Operation string
	Transfers []string
	HashAlgo  string
	Ref       string
	Objects   []BatchObject
}

// BatchObject is an {oid, size} of a batch request.
type BatchObject struct {
	OID  string `json:"oid"`
	Size int64  `json:"size"`
}

// PartRecord is one completed PUT to the storage (Part 0: basic transfer).
type PartRecord struct {
	OID           string
	Part          int
	Size          int64
	ETag          string
	Authorization string // the Authorization header it carried, if any
}

// CommitRecord is one commit request: its NDJSON lines as sent.
type CommitRecord struct {
	Repo     string
	Revision string
	Lines    []string
	SHA      string // the commit made; empty when refused
}

type lfsObject struct {
	size     int64
	complete bool
	data     []byte
	keep     bool
	// states[i] is the sha256 state and length after i parts.
	states []partState
	etags  map[int]string
}

type partState struct {
	h []byte
	n int64
}

var uploads sync.Map // *Server -> *Uploads

// Uploads returns the server's upload state.
func (s *Server) Uploads() *Uploads {
	v, _ := uploads.LoadOrStore(s, &Uploads{s: s, LFSThreshold: 10 << 20, KeepLimit: 64 << 20, objects: map[string]*lfsObject{}})
	return v.(*Uploads)
}

// Batches returns the LFS batch requests received.
func (u *Uploads) Batches() []BatchRecord {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]BatchRecord(nil), u.batches...)
}

// Parts returns the storage PUTs that completed.
func (u *Uploads) Parts() []PartRecord {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]PartRecord(nil), u.parts...)
}

// Commits returns the commit requests received.
func (u *Uploads) Commits() []CommitRecord {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]CommitRecord(nil), u.commits...)
}

// Verified returns the oids the verify action was called for.
func (u *Uploads) Verified() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.verify...)
}

// HasObject reports whether the LFS store holds oid completely.
func (u *Uploads) HasObject(oid string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	o := u.objects[oid]
	return o != nil && o.complete
}

// UploadHTTPClient is HTTPClient that also reaches StorageHost.
func (s *Server) UploadHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, p, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if host == HubHost || host == CDNHost || host == StorageHost {
				addr = net.JoinHostPort("127.0.0.1", p)
			}
			return d.DialContext(ctx, network, addr)
		},
		WriteBufferSize: 256 << 10, // large bodies: fewer syscalls on loopback
	}
	return &http.Client{Transport: tr}
}

func init() { RegisterExtension(registerUpload) }

func registerUpload(s *Server) {
	u := s.Uploads()
	s.Mux.HandleFunc("POST /api/repos/create", u.serveCreate)
	s.Mux.HandleFunc("POST /api/{types}/{owner}/{name}/preupload/{rev}", u.servePreupload)
	s.Mux.HandleFunc("POST /api/{types}/{owner}/{name}/branch/{rev}", u.serveBranch)
	s.Mux.HandleFunc("POST /api/{types}/{owner}/{name}/commit/{rev}", u.serveCommit)
	s.Mux.HandleFunc("PUT "+StorageHost+"/lfs/{oid}", u.servePut)
	s.Mux.HandleFunc("PUT "+StorageHost+"/lfs/{oid}/part/{n}", u.servePut)
	s.Mux.HandleFunc("POST "+StorageHost+"/lfs/{oid}/complete", u.serveComplete)
	s.HandleRoot(u.serveLFS)
}

// authorizeWrite checks the token as the Hub does for writes: none or an
// unknown one is 401, a read-only one 403.
func (u *Uploads) authorizeWrite(w http.ResponseWriter, r *http.Request, what string) bool {
	auth := r.Header.Get("Authorization")
	u.mu.Lock()
	ro := u.ReadOnlyToken
	u.mu.Unlock()
	switch {
	case auth == "Bearer "+u.s.Token:
		return true
	case ro != "" && auth == "Bearer "+ro:
		WriteError(w, http.StatusForbidden, "", "You don't have the rights to "+what)
	default:
		WriteError(w, http.StatusUnauthorized, "", "Invalid username or password.")
	}
	return false
}

func (u *Uploads) repoFor(w http.ResponseWriter, r *http.Request) *Repo {
	typ, ok := repoTypeOf(r.PathValue("types"))
	if !ok {
		WriteError(w, http.StatusNotFound, "", "Not Found")
		return nil
	}
	id := r.PathValue("owner") + "/" + r.PathValue("name")
	if !u.authorizeWrite(w, r, "write to "+id) {
		return nil
	}
	repo := u.s.Repo(typ, id)
	if repo == nil {
		WriteError(w, http.StatusNotFound, "RepoNotFound", "Repository not found")
	}
	return repo
}

func (u *Uploads) serveCreate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name         string `json:"name"`
		Organization string `json:"organization"`
		Private      bool   `json:"private"`
		Type         string `json:"type"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" {
		WriteError(w, http.StatusBadRequest, "", "bad request body")
		return
	}
	owner := req.Organization
	if owner == "" {
		owner = "me"
	}
	if !u.authorizeWrite(w, r, fmt.Sprintf("create a model under the namespace %q", owner)) {
		return
	}
	typ := req.Type
	if typ == "" {
		typ = "model"
	}
	id := owner + "/" + req.Name
	url := u.s.URL + "/" + id
	if typ != "model" {
		url = u.s.URL + "/" + typ + "s/" + id
	}
	if u.s.Repo(typ, id) != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(map[string]string{"error": "You already created this " + typ + " repo", "url": url})
		return
	}
	repo := u.s.AddRepo(typ, id)
	repo.SetPrivate(req.Private)
	repo.Commit("main", Change{Add: map[string]File{".gitattributes": {Data: []byte(DefaultGitattributes)}}, Message: "initial commit"})
	WriteJSON(w, map[string]string{"url": url, "name": id})
}

func (u *Uploads) servePreupload(w http.ResponseWriter, r *http.Request) {
	repo := u.repoFor(w, r)
	if repo == nil {
		return
	}
	if _, _, ok := u.s.resolve(w, repo, r.PathValue("rev")); !ok {
		return
	}
	var req struct {
		Files []struct {
			Path   string `json:"path"`
			Sample string `json:"sample"`
			Size   int64  `json:"size"`
		} `json:"files"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		WriteError(w, http.StatusBadRequest, "", "bad request body")
		return
	}
	u.mu.Lock()
	threshold := u.LFSThreshold
	u.mu.Unlock()
	type out struct {
		Path         string `json:"path"`
		UploadMode   string `json:"uploadMode"`
		ShouldIgnore bool   `json:"shouldIgnore"`
	}
	var files []out
	for _, f := range req.Files {
		sample, err := base64.StdEncoding.DecodeString(f.Sample)
		if err != nil || len(sample) > 512 {
			WriteError(w, http.StatusBadRequest, "", "bad sample for "+f.Path)
			return
		}
		mode := "regular"
		if f.Size >= threshold || bytes.IndexByte(sample, 0) >= 0 || isLFSPath(f.Path) {
			mode = "lfs"
		}
		files = append(files, out{Path: f.Path, UploadMode: mode, ShouldIgnore: strings.HasPrefix(f.Path, ".git/")})
	}
	WriteJSON(w, map[string]any{"files": files})
}

func (u *Uploads) serveBranch(w http.ResponseWriter, r *http.Request) {
	repo := u.repoFor(w, r)
	if repo == nil {
		return
	}
	if _, ok := repo.Ref(r.PathValue("rev")); ok {
		WriteError(w, http.StatusConflict, "", "Reference already exists")
		return
	}
	head, ok := repo.Ref("main")
	if !ok {
		WriteError(w, http.StatusBadRequest, "", "no main branch to start from")
		return
	}
	repo.SetRef(r.PathValue("rev"), head)
	WriteJSON(w, map[string]string{})
}

var lfsPathRe = regexp.MustCompile(`^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)\.git/info/lfs/objects/(batch|verify)$`)

func (u *Uploads) serveLFS(w http.ResponseWriter, r *http.Request) bool {
	m := lfsPathRe.FindStringSubmatch(r.URL.Path)
	if m == nil || r.Method != http.MethodPost {
		return false
	}
	typ := "model"
	if m[1] != "" {
		typ = strings.TrimSuffix(m[1], "s")
	}
	id := m[2] + "/" + m[3]
	if !u.authorizeWrite(w, r, "write to "+id) {
		return true
	}
	if u.s.Repo(typ, id) == nil {
		WriteError(w, http.StatusNotFound, "RepoNotFound", "Repository not found")
		return true
	}
	if r.Header.Get("Content-Type") != lfsMediaType || r.Header.Get("Accept") != lfsMediaType {
		WriteError(w, http.StatusNotAcceptable, "", "want "+lfsMediaType)
		return true
	}
	if m[4] == "verify" {
		u.serveVerify(w, r)
		return true
	}
	var req struct {
		Operation string        `json:"operation"`
		Transfers []string      `json:"transfers"`
		Objects   []BatchObject `json:"objects"`
		HashAlgo  string        `json:"hash_algo"`
		Ref       *struct {
			Name string `json:"name"`
		} `json:"ref"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Operation != "upload" {
		WriteError(w, http.StatusBadRequest, "", "bad batch request")
		return true
	}
	rec := BatchRecord{Repo: id, Operation: req.Operation, Transfers: req.Transfers, HashAlgo: req.HashAlgo, Objects: req.Objects}
	if req.Ref != nil {
		rec.Ref = req.Ref.Name
	}
	type action struct {
		Href   string            `json:"href"`
		Header map[string]string `json:"header,omitempty"`
	}
	type object struct {
		OID     string            `json:"oid"`
		Size    int64             `json:"size"`
		Actions map[string]action `json:"actions,omitempty"`
	}
	multipartOK := false
	for _, t := range req.Transfers {
		multipartOK = multipartOK || t == "multipart"
	}
	storage := "http://" + StorageHost + ":" + port(u.s.URL)
	resp := struct {
		Transfer string   `json:"transfer"`
		Objects  []object `json:"objects"`
	}{Transfer: "basic"}
	u.mu.Lock()
	u.batches = append(u.batches, rec)
	for _, o := range req.Objects {
		if len(o.OID) != 64 || o.Size < 0 {
			u.mu.Unlock()
			WriteError(w, http.StatusUnprocessableEntity, "", "bad object "+o.OID)
			return true
		}
		ob := object{OID: o.OID, Size: o.Size}
		if have := u.objects[o.OID]; have == nil || !have.complete {
			u.objects[o.OID] = &lfsObject{size: o.Size, keep: o.Size <= u.KeepLimit, states: []partState{initialState()}, etags: map[int]string{}}
			if u.PartSize > 0 && o.Size > u.PartSize && multipartOK {
				resp.Transfer = "multipart"
				h := map[string]string{"chunk_size": strconv.FormatInt(u.PartSize, 10)}
				for i := int64(1); (i-1)*u.PartSize < o.Size; i++ {
					h[strconv.FormatInt(i, 10)] = fmt.Sprintf("%s/lfs/%s/part/%d?uploadId=up-%s&X-Amz-Signature=sig", storage, o.OID, i, o.OID[:8])
				}
				ob.Actions = map[string]action{"upload": {Href: storage + "/lfs/" + o.OID + "/complete", Header: h}}
			} else {
				ob.Actions = map[string]action{"upload": {Href: storage + "/lfs/" + o.OID + "?X-Amz-Signature=sig"}}
			}
			if u.Verify {
				prefix := ""
				if typ != "model" {
					prefix = typ + "s/"
				}
				ob.Actions["verify"] = action{Href: u.s.URL + "/" + prefix + id + ".git/info/lfs/objects/verify"}
			}
		}
		resp.Objects = append(resp.Objects, ob)
	}
	u.mu.Unlock()
	w.Header().Set("Content-Type", lfsMediaType)
	json.NewEncoder(w).Encode(resp)
	return true
}

const lfsMediaType = "application/vnd.git-lfs+json"

func initialState() partState {
	b, _ := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	return partState{h: b}
}

func restore(st partState) hash.Hash {
	h := sha256.New()
	_ = h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.h)
	return h
}

// servePut takes a basic PUT (/lfs/{oid}) or one part (/lfs/{oid}/part/{n}).
// Parts must come in order (a retried part may come again); each is hashed
// into the object's running sha256.
func (u *Uploads) servePut(w http.ResponseWriter, r *http.Request) {
	oid := r.PathValue("oid")
	part := 0
	if s := r.PathValue("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			http.Error(w, "bad part number", http.StatusBadRequest)
			return
		}
		part = n
	}
	if r.URL.Query().Get("X-Amz-Signature") == "" {
		http.Error(w, "missing signature", http.StatusForbidden)
		return
	}
	if r.Header.Get("Authorization") != "" {
		http.Error(w, "Only one auth mechanism allowed", http.StatusBadRequest)
		return
	}
	u.mu.Lock()
	o := u.objects[oid]
	partSize := u.PartSize
	drop := u.DropPart
	u.mu.Unlock()
	if o == nil {
		http.Error(w, "NoSuchUpload", http.StatusNotFound)
		return
	}
	idx := max(part-1, 0)
	u.mu.Lock()
	if idx >= len(o.states) {
		u.mu.Unlock()
		http.Error(w, "parts out of order (the fake storage takes them in sequence)", http.StatusBadRequest)
		return
	}
	st := o.states[idx]
	u.mu.Unlock()
	want := o.size
	if part > 0 {
		want = min(partSize, o.size-int64(idx)*partSize)
	}
	if r.ContentLength != want {
		http.Error(w, fmt.Sprintf("Content-Length %d, want %d", r.ContentLength, want), http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if drop != nil {
		if n := drop(oid, part); n > 0 {
			io.CopyN(io.Discard, r.Body, n)
			panic(http.ErrAbortHandler) // the connection drops mid-body
		}
	}
	h := restore(st)
	ph := sha256.New()
	var keep bytes.Buffer
	dst := io.MultiWriter(h, ph)
	if o.keep {
		dst = io.MultiWriter(h, ph, &keep)
	}
	n, err := io.Copy(dst, body)
	if err != nil || n != want {
		http.Error(w, "short body", http.StatusBadRequest)
		return
	}
	state, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	etag := `"` + hex.EncodeToString(ph.Sum(nil)[:16]) + `"`
	u.mu.Lock()
	defer u.mu.Unlock()
	if o.keep {
		o.data = append(o.data[:st.n], keep.Bytes()...)
	}
	o.states = append(o.states[:idx+1], partState{h: state, n: st.n + n})
	u.parts = append(u.parts, PartRecord{OID: oid, Part: part, Size: n, ETag: etag, Authorization: r.Header.Get("Authorization")})
	if part == 0 {
		if hex.EncodeToString(h.Sum(nil)) != oid {
			o.states = o.states[:1]
			http.Error(w, "content does not match the oid", http.StatusBadRequest)
			return
		}
		o.complete = true
	} else {
		o.etags[part] = etag
	}
	w.Header().Set("ETag", etag)
}

func (u *Uploads) serveComplete(w http.ResponseWriter, r *http.Request) {
	oid := r.PathValue("oid")
	var req struct {
		OID   string `json:"oid"`
		Parts []struct {
			PartNumber int    `json:"partNumber"`
			ETag       string `json:"etag"`
		} `json:"parts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.OID != oid {
		http.Error(w, "bad completion body", http.StatusBadRequest)
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	o := u.objects[oid]
	if o == nil {
		http.Error(w, "NoSuchUpload", http.StatusNotFound)
		return
	}
	if len(req.Parts) != len(o.states)-1 {
		http.Error(w, fmt.Sprintf("%d parts listed, %d uploaded", len(req.Parts), len(o.states)-1), http.StatusBadRequest)
		return
	}
	for i, p := range req.Parts {
		if p.PartNumber != i+1 || o.etags[p.PartNumber] != p.ETag {
			http.Error(w, fmt.Sprintf("InvalidPart %d", p.PartNumber), http.StatusBadRequest)
			return
		}
	}
	last := o.states[len(o.states)-1]
	if last.n != o.size || hex.EncodeToString(restore(last).Sum(nil)) != oid {
		http.Error(w, "content does not match the oid", http.StatusBadRequest)
		return
	}
	o.complete = true
	WriteJSON(w, map[string]string{})
}

func (u *Uploads) serveVerify(w http.ResponseWriter, r *http.Request) {
	var req BatchObject
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		WriteError(w, http.StatusBadRequest, "", "bad verify body")
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	o := u.objects[req.OID]
	if o == nil || !o.complete || o.size != req.Size {
		WriteError(w, http.StatusNotFound, "", "object not found")
		return
	}
	u.verify = append(u.verify, req.OID)
	w.Header().Set("Content-Type", lfsMediaType)
	w.Write([]byte("{}"))
}

func (u *Uploads) serveCommit(w http.ResponseWriter, r *http.Request) {
	repo := u.repoFor(w, r)
	if repo == nil {
		return
	}
	rev := r.PathValue("rev")
	head, ok := repo.Ref(rev)
	if !ok {
		WriteError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	if r.Header.Get("Content-Type") != "application/x-ndjson" {
		WriteError(w, http.StatusBadRequest, "", "want application/x-ndjson")
		return
	}
	rec := CommitRecord{Repo: repo.ID, Revision: rev}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		rec.Lines = append(rec.Lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		WriteError(w, http.StatusBadRequest, "", "read body: "+err.Error())
		return
	}
	sha, status, msg := u.applyCommit(repo, rev, head, rec.Lines)
	rec.SHA = sha
	u.mu.Lock()
	u.commits = append(u.commits, rec)
	u.mu.Unlock()
	if status != 0 {
		WriteError(w, status, "", msg)
		return
	}
	WriteJSON(w, map[string]any{"commitUrl": u.s.URL + "/" + repo.ID + "/commit/" + sha, "commitOid": sha, "commitMessage": msg, "success": true, "hookOutput": ""})
}

// applyCommit checks the NDJSON lines as the Hub would and commits them.
// It returns the new sha, or an error status and message.
func (u *Uploads) applyCommit(repo *Repo, rev, head string, lines []string) (string, int, string) {
	type line struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	ch := Change{Add: map[string]File{}}
	for i, l := range lines {
		var ln line
		d := json.NewDecoder(strings.NewReader(l))
		d.DisallowUnknownFields()
		if err := d.Decode(&ln); err != nil {
			return "", http.StatusBadRequest, fmt.Sprintf("line %d: %v", i+1, err)
		}
		if (i == 0) != (ln.Key == "header") {
			return "", http.StatusBadRequest, fmt.Sprintf("line %d: the header must come first, once", i+1)
		}
		var err error
		switch ln.Key {
		case "header":
			var h struct {
				Summary      string `json:"summary"`
				Description  string `json:"description"`
				ParentCommit string `json:"parentCommit"`
			}
			err = strictJSON(ln.Value, &h)
			if err == nil && h.ParentCommit != "" && h.ParentCommit != head {
				return "", http.StatusPreconditionFailed, "A commit has happened since. Please refresh and try again."
			}
			ch.Message = h.Summary
		case "file":
			var f struct {
				Content  string `json:"content"`
				Path     string `json:"path"`
				Encoding string `json:"encoding"`
			}
			if err = strictJSON(ln.Value, &f); err == nil {
				var data []byte
				if f.Encoding != "base64" {
					err = errors.New("encoding must be base64")
				} else if data, err = base64.StdEncoding.DecodeString(f.Content); err == nil {
					if int64(len(data)) >= u.LFSThreshold {
						return "", http.StatusBadRequest, f.Path + ": files larger than 10 MiB must be stored with Git LFS"
					}
					ch.Add[f.Path] = File{Data: data}
				}
			}
		case "lfsFile":
			var f struct {
				Path string `json:"path"`
				Algo string `json:"algo"`
				OID  string `json:"oid"`
				Size int64  `json:"size"`
			}
			if err = strictJSON(ln.Value, &f); err == nil {
				u.mu.Lock()
				o := u.objects[f.OID]
				u.mu.Unlock()
				if f.Algo != "sha256" || o == nil || !o.complete || o.size != f.Size {
					return "", http.StatusBadRequest, fmt.Sprintf("%s: LFS pointer pointed to a file that does not exist: %s", f.Path, f.OID)
				}
				ch.Add[f.Path] = File{Data: o.data, LFS: true}
			}
		case "deletedFile":
			var f struct {
				Path string `json:"path"`
			}
			if err = strictJSON(ln.Value, &f); err == nil {
				ch.Delete = append(ch.Delete, f.Path)
			}
		default:
			err = fmt.Errorf("unknown key %q", ln.Key)
		}
		if err != nil {
			return "", http.StatusBadRequest, fmt.Sprintf("line %d: %v", i+1, err)
		}
	}
	if len(lines) == 0 {
		return "", http.StatusBadRequest, "empty commit body"
	}
	return repo.Commit(rev, ch), 0, ch.Message
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
