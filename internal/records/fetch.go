package records

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/kfllm/kfllm/internal/hub"
)

// FetchOptions configures Fetch. Source and OutputDir are required; Hub is
// required for hf:// and http(s) sources.
type FetchOptions struct {
	// Source is hf://datasets/OWNER/NAME[@REV][/PATH], an http(s) URL, a
	// local file or directory, or a file:// URL.
	Source    string
	OutputDir string
	Format    Format // FormatAuto (or empty): from file names
	Split     string // empty: "train"
	Subset    string // hf:// only: the subset (config)
	Revision  string // hf:// only: branch, tag or commit; empty: main
	Task      Task   // empty: qa
	// Fields overrides the source path of record fields, e.g.
	// {"answer": "answers.text[0]"}; unset fields use DefaultFields.
	Fields map[string]string
	// MaxBadRows bounds the skipped rows; the zero value means
	// DefaultMaxBadRows.
	MaxBadRows BadRowLimit
	// MaxBytes bounds the bytes downloaded or read, over all files; 0: no
	// limit.
	MaxBytes int64
	// MaxLineBytes bounds a line (JSONL), record (CSV) or array element
	// (JSON) of a source file; 0: DefaultMaxLineBytes. Longer ones fail
	// the step with ErrLineTooLong.
	MaxLineBytes int64
	Hub          *hub.Client
	// WorkDir holds downloads while fetch runs; empty: a temporary directory.
	WorkDir string
	// Progress, if set, is told of download progress.
	Progress func(file string, done, total int64)
	// RowProgress, if set, is called every 100,000 rows read and once at
	// the end of each file.
	RowProgress func(file string, read, written int64)
	Logger      *slog.Logger
}

// Errors Fetch returns for the caller to map to exit codes.
var (
	// ErrSource: the source is malformed or cannot be found.
	ErrSource = errors.New("bad source")
	// ErrTooManyBadRows: more rows were skipped than --max-bad-rows allows.
	ErrTooManyBadRows = errors.New("too many bad rows")
	// ErrNoRecords: no row became a record.
	ErrNoRecords = errors.New("no records")
)

// Fetch reads the source's rows, maps them to records of the task and
// writes a Records artifact (data.jsonl and metadata.json) to OutputDir.
// On error nothing is left at OutputDir that looks complete.
func Fetch(ctx context.Context, o FetchOptions) (*Metadata, error) {
	f, err := newFetcher(o)
	if err != nil {
		return nil, err
	}
	defer f.cleanup()
	return f.run(ctx)
}

type fetcher struct {
	o         FetchOptions
	mapping   *Mapping
	log       *slog.Logger
	work      string
	ownWork   bool
	budget    int64 // bytes left under MaxBytes; -1: none
	downloads int
	meta      Metadata
}

type localFile struct {
	path   string // on disk
	name   string // for metadata: repo path, URL or local path
	url    string
	size   int64
	sha256 string
	format Format
	commit string // X-Repo-Commit of a Hub download
}

func newFetcher(o FetchOptions) (*fetcher, error) {
	if o.Source == "" {
		return nil, fmt.Errorf("%w: --source is required", ErrSource)
	}
	if o.OutputDir == "" {
		return nil, errors.New("--output-dataset is required")
	}
	if o.Task == "" {
		o.Task = TaskQA
	}
	if o.Format == "" {
		o.Format = FormatAuto
	}
	if o.MaxBadRows == (BadRowLimit{}) {
		o.MaxBadRows, _ = ParseBadRowLimit(DefaultMaxBadRows)
	}
	m, err := NewMapping(o.Task, o.Fields)
	if err != nil {
		return nil, err
	}
	f := &fetcher{o: o, mapping: m, log: o.Logger, budget: -1}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if o.MaxBytes > 0 {
		f.budget = o.MaxBytes
	}
	f.meta = Metadata{Source: redactSource(o.Source), Task: o.Task, Fields: m.Describe(), SkippedByReason: map[string]int64{},
		MaxBadRows: o.MaxBadRows.String(), Split: o.Split}
	return f, nil
}

// redactSource drops the user info and query of a URL source: a signed
// URL carries credentials there, and metadata.json is no place for them.
func redactSource(src string) string {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		return src
	}
	u, err := url.Parse(src)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func (f *fetcher) cleanup() {
	if f.ownWork {
		os.RemoveAll(f.work)
	}
}

func (f *fetcher) workDir() (string, error) {
	if f.work != "" {
		return f.work, nil
	}
	if f.o.WorkDir != "" {
		f.work = f.o.WorkDir
		return f.work, os.MkdirAll(f.work, 0o755)
	}
	d, err := os.MkdirTemp("", "kfllm-fetch-")
	if err != nil {
		return "", err
	}
	f.work, f.ownWork = d, true
	return d, nil
}

func (f *fetcher) run(ctx context.Context) (*Metadata, error) {
	files, err := f.acquire(ctx)
	if err != nil {
		return nil, err
	}
	w, err := CreateRecords(f.o.OutputDir, f.o.Task)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()
	for _, lf := range files {
		sf := SourceFile{Path: lf.name, URL: lf.url, Size: lf.size, SHA256: lf.sha256}
		err := ReadRows(lf.path, lf.format, ReadOptions{Split: f.o.Split, MaxLineBytes: f.o.MaxLineBytes}, func(row any, bad string) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			sf.RowsRead++
			f.meta.RowsRead++
			if f.o.RowProgress != nil && f.meta.RowsRead%100_000 == 0 {
				f.o.RowProgress(lf.name, f.meta.RowsRead, w.Count())
			}
			if bad == "" {
				var rec Record
				rec, bad = f.mapping.Extract(row)
				if bad == "" {
					sf.RowsWritten++
					return w.Write(rec)
				}
			}
			f.meta.RowsSkipped++
			f.meta.SkippedByReason[bad]++
			if f.o.MaxBadRows.ExceededEarly(f.meta.RowsSkipped) {
				return f.badRowsError()
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", lf.name, err)
		}
		f.meta.Files = append(f.meta.Files, sf)
		if f.o.RowProgress != nil {
			f.o.RowProgress(lf.name, f.meta.RowsRead, w.Count())
		}
	}
	f.meta.RowsWritten = w.Count()
	if f.o.MaxBadRows.Exceeded(f.meta.RowsSkipped, f.meta.RowsRead) {
		return nil, f.badRowsError()
	}
	if f.meta.RowsWritten == 0 {
		return nil, fmt.Errorf("%w: %d rows read, none usable (skipped: %s); check the field mapping (%s)",
			ErrNoRecords, f.meta.RowsRead, reasons(f.meta.SkippedByReason), describeFields(f.meta.Fields))
	}
	if err := w.Commit(&f.meta); err != nil {
		return nil, err
	}
	committed = true
	return &f.meta, nil
}

func (f *fetcher) badRowsError() error {
	return fmt.Errorf("%w: %d of %d rows read were skipped (%s), over --max-bad-rows=%s; fix the field mapping (%s) or raise the limit",
		ErrTooManyBadRows, f.meta.RowsSkipped, f.meta.RowsRead, reasons(f.meta.SkippedByReason), f.o.MaxBadRows, describeFields(f.meta.Fields))
}

func reasons(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func describeFields(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+" <- "+m[k])
	}
	return strings.Join(parts, "; ")
}

// acquire brings the source's data files to local paths.
func (f *fetcher) acquire(ctx context.Context) ([]localFile, error) {
	src := f.o.Source
	switch {
	case strings.HasPrefix(src, "hf://"):
		return f.acquireHub(ctx, src)
	case strings.HasPrefix(src, "https://"), strings.HasPrefix(src, "http://"):
		return f.acquireURL(ctx, src)
	case strings.HasPrefix(src, "file://"):
		u, err := url.Parse(src)
		if err != nil || (u.Host != "" && u.Host != "localhost") {
			return nil, fmt.Errorf("%w: %q: want file:///absolute/path", ErrSource, src)
		}
		return f.acquireLocal(ctx, u.Path)
	case strings.Contains(src, "://"):
		return nil, fmt.Errorf("%w: %q: want hf://datasets/OWNER/NAME, an https:// URL, a local path or a file:// URL", ErrSource, src)
	}
	return f.acquireLocal(ctx, src)
}

func (f *fetcher) acquireLocal(ctx context.Context, p string) ([]localFile, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSource, err)
	}
	var paths []string
	if st.IsDir() {
		var rels []string
		err := filepath.WalkDir(p, func(fp string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && strings.HasPrefix(d.Name(), ".") && fp != p {
				return filepath.SkipDir
			}
			if !d.IsDir() {
				rel, _ := filepath.Rel(p, fp)
				rels = append(rels, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSource, err)
		}
		chosen, err := selectDataFiles(rels, "", f.split(), f.o.Format)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrSource, p, err)
		}
		for _, r := range chosen {
			paths = append(paths, filepath.Join(p, filepath.FromSlash(r)))
		}
		f.meta.Split = f.split()
	} else {
		paths = []string{p}
	}
	var out []localFile
	for _, fp := range paths {
		format, err := f.formatFor(fp)
		if err != nil {
			return nil, err
		}
		lf, err := f.readLocal(ctx, fp)
		if err != nil {
			return nil, err
		}
		if err := f.spend(lf.size, fp); err != nil {
			return nil, err
		}
		lf.format = format
		out = append(out, lf)
	}
	f.meta.Format = out[0].format
	return out, nil
}

func (f *fetcher) formatFor(name string) (Format, error) {
	if f.o.Format != FormatAuto {
		return f.o.Format, nil
	}
	if ft, ok := FormatOf(name); ok {
		return ft, nil
	}
	return "", fmt.Errorf("%w: cannot tell the format of %s from its name; pass --format", ErrSource, name)
}

func (f *fetcher) spend(n int64, name string) error {
	if f.budget < 0 {
		return nil
	}
	if n > f.budget {
		return fmt.Errorf("%s: %w: %d bytes, %d left under --max-bytes=%d", name, hub.ErrTooLarge, n, f.budget, f.o.MaxBytes)
	}
	f.budget -= n
	return nil
}

func (f *fetcher) split() string {
	if f.o.Split == "" {
		return "train"
	}
	return f.o.Split
}

// readLocal hashes the local file at p, reading no more than the bytes
// left under MaxBytes and stopping when ctx ends. A file that cannot be
// read twice (a FIFO, a device such as /dev/stdin) is copied into the work
// directory as it is hashed, and its rows are read from the copy.
func (f *fetcher) readLocal(ctx context.Context, p string) (localFile, error) {
	st, err := os.Stat(p)
	if err != nil {
		return localFile{}, fmt.Errorf("%w: %v", ErrSource, err)
	}
	lf := localFile{path: p, name: p}
	if st.Mode().IsRegular() && f.budget >= 0 && st.Size() > f.budget {
		return localFile{}, fmt.Errorf("%s: %w: %d bytes, %d left under --max-bytes=%d", p, hub.ErrTooLarge, st.Size(), f.budget, f.o.MaxBytes)
	}
	file, err := openContext(ctx, p)
	if err != nil {
		return localFile{}, err
	}
	defer file.Close()
	// Closing the file ends a read that waits on a pipe with no data.
	defer context.AfterFunc(ctx, func() { file.Close() })()
	h := sha256.New()
	var dst io.Writer = h
	if !st.Mode().IsRegular() {
		dir, err := f.workDir()
		if err != nil {
			return localFile{}, err
		}
		f.downloads++
		lf.path = filepath.Join(dir, fmt.Sprintf("%03d-%s", f.downloads, safeName(filepath.Base(p))))
		cp, err := os.Create(lf.path)
		if err != nil {
			return localFile{}, err
		}
		defer cp.Close()
		dst = io.MultiWriter(h, cp)
	}
	var src io.Reader = file
	if f.budget >= 0 {
		src = io.LimitReader(file, f.budget+1)
	}
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return localFile{}, fmt.Errorf("read %s: %w", p, err)
		}
		n, err := src.Read(buf)
		if n > 0 {
			lf.size += int64(n)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return localFile{}, fmt.Errorf("copy %s: %w", p, werr)
			}
			if f.budget >= 0 && lf.size > f.budget {
				return localFile{}, fmt.Errorf("%s: %w: over %d bytes left under --max-bytes=%d", p, hub.ErrTooLarge, f.budget, f.o.MaxBytes)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				err = cerr
			}
			return localFile{}, fmt.Errorf("read %s: %w", p, err)
		}
	}
	lf.sha256 = hex.EncodeToString(h.Sum(nil))
	return lf, nil
}

// openContext opens p for reading. Opening a FIFO waits for a writer; when
// ctx ends first, openContext returns and the open, left waiting, closes
// what it gets.
func openContext(ctx context.Context, p string) (*os.File, error) {
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.Open(p)
		ch <- opened{f, err}
	}()
	select {
	case o := <-ch:
		return o.f, o.err
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.f != nil {
				o.f.Close()
			}
		}()
		return nil, fmt.Errorf("open %s: %w", p, ctx.Err())
	}
}

func (f *fetcher) download(ctx context.Context, rawURL, name string, expected *hub.TreeEntry) (localFile, error) {
	dir, err := f.workDir()
	if err != nil {
		return localFile{}, err
	}
	if f.o.Hub == nil {
		return localFile{}, errors.New("no Hub client configured")
	}
	f.downloads++
	dest := filepath.Join(dir, fmt.Sprintf("%03d-%s", f.downloads, safeName(name)))
	opts := hub.DownloadOptions{}
	if f.budget >= 0 {
		opts.MaxBytes = f.budget
		if opts.MaxBytes == 0 {
			return localFile{}, fmt.Errorf("%s: %w: --max-bytes=%d used up", name, hub.ErrTooLarge, f.o.MaxBytes)
		}
	}
	if expected != nil {
		opts.ExpectedSize = expected.Size
		if expected.LFS != nil {
			opts.ExpectedSHA256 = expected.LFS.OID
		}
	}
	if f.o.Progress != nil {
		opts.Progress = func(done, total int64) { f.o.Progress(name, done, total) }
	}
	res, err := f.o.Hub.DownloadFile(ctx, rawURL, dest, opts)
	if err != nil {
		return localFile{}, err
	}
	if f.budget >= 0 {
		f.budget -= res.Size
	}
	return localFile{path: dest, name: name, size: res.Size, sha256: res.SHA256, commit: res.Commit}, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string {
	s = unsafeChars.ReplaceAllString(s, "_")
	if len(s) > 100 {
		s = s[len(s)-100:]
	}
	return s
}

func (f *fetcher) acquireURL(ctx context.Context, raw string) ([]localFile, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: %q is not a URL", ErrSource, raw)
	}
	format, err := f.formatFor(u.Path)
	if err != nil {
		return nil, err
	}
	clean := *u
	clean.RawQuery, clean.Fragment, clean.User = "", "", nil
	lf, err := f.download(ctx, raw, clean.String(), nil)
	if err != nil {
		return nil, err
	}
	lf.format, lf.url = format, ""
	f.meta.Format = format
	f.meta.Commit = lf.commit // set when the URL is a file on the Hub
	return []localFile{lf}, nil
}

// ParseHubSource splits hf://datasets/OWNER/NAME[@REV][/PATH] into its parts.
func ParseHubSource(src string) (repoID, revision, pathInRepo string, err error) {
	rest, ok := strings.CutPrefix(src, "hf://datasets/")
	if !ok {
		return "", "", "", fmt.Errorf("%w: %q: want hf://datasets/OWNER/NAME (only dataset repositories hold data)", ErrSource, src)
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 2 {
		return "", "", "", fmt.Errorf("%w: %q: want hf://datasets/OWNER/NAME", ErrSource, src)
	}
	name := parts[1]
	if n, rev, has := strings.Cut(name, "@"); has {
		name, revision = n, rev
		if rev == "" {
			return "", "", "", fmt.Errorf("%w: %q: empty revision after @", ErrSource, src)
		}
		// A revision such as refs/pr/3 is written refs%2Fpr%2F3 in hf:// paths.
		if r, err := url.PathUnescape(rev); err == nil {
			revision = r
		}
	}
	repoID = parts[0] + "/" + name
	if err := hub.ValidateRepoID(repoID); err != nil {
		return "", "", "", fmt.Errorf("%w: %v", ErrSource, err)
	}
	if len(parts) == 3 {
		pathInRepo = strings.Trim(parts[2], "/")
	}
	return repoID, revision, pathInRepo, nil
}

func (f *fetcher) acquireHub(ctx context.Context, src string) ([]localFile, error) {
	repoID, rev, sub, err := ParseHubSource(src)
	if err != nil {
		return nil, err
	}
	if rev != "" && f.o.Revision != "" && rev != f.o.Revision {
		return nil, fmt.Errorf("%w: revision %q in the source and --revision %q differ", ErrSource, rev, f.o.Revision)
	}
	if rev == "" {
		rev = f.o.Revision
	}
	if rev == "" {
		rev = "main"
	}
	c := f.o.Hub
	if c == nil {
		return nil, errors.New("no Hub client configured")
	}
	f.meta.Repo, f.meta.Revision = repoID, rev
	sha, err := c.ResolveRevision(ctx, "dataset", repoID, rev)
	if err != nil {
		return nil, err
	}
	f.meta.Commit = sha
	entries, err := c.ListTree(ctx, "dataset", repoID, sha, "", true)
	if err != nil {
		return nil, err
	}
	byPath := map[string]hub.TreeEntry{}
	var paths []string
	for _, e := range entries {
		if e.Type != "file" {
			continue
		}
		if sub != "" && e.Path != sub && !strings.HasPrefix(e.Path, sub+"/") && !globMatch(sub, e.Path) {
			continue
		}
		byPath[e.Path] = e
		paths = append(paths, e.Path)
	}
	if sub != "" && len(paths) == 0 {
		return nil, fmt.Errorf("%w: %s has no file %q at %s", hub.ErrEntryNotFound, repoID, sub, rev)
	}
	split := f.split()
	var chosen []string
	if len(paths) == 1 && sub != "" {
		chosen = paths // one file named in the source: take it as is
	} else {
		chosen, err = selectDataFiles(paths, f.o.Subset, split, f.o.Format)
	}
	if (err != nil || len(chosen) == 0) && (sub != "" || (f.o.Format != FormatAuto && f.o.Format != FormatParquet)) {
		// A path or a format was asked for: no substitute will do.
		return nil, fmt.Errorf("%w: %s@%s: %v", ErrSource, repoID, rev, err)
	}
	if err != nil || len(chosen) == 0 {
		// No raw file fits: the Hub's parquet conversion knows subsets and
		// splits of every dataset it could load.
		files, perr := f.acquireParquetConversion(ctx, repoID, split)
		if perr != nil {
			if err != nil {
				return nil, fmt.Errorf("%w: %v; and the parquet conversion: %w", ErrSource, err, perr)
			}
			return nil, perr
		}
		return files, nil
	}
	f.meta.Subset, f.meta.Split = f.o.Subset, split
	return f.downloadChosen(ctx, repoID, sha, chosen, byPath, f.formatFor)
}

// downloadChosen downloads the chosen files of a dataset repo at commit sha
// (within the size budget), each with the format format gives it, and
// records the first one's format in the metadata.
func (f *fetcher) downloadChosen(ctx context.Context, repoID, sha string, chosen []string, byPath map[string]hub.TreeEntry, format func(string) (Format, error)) ([]localFile, error) {
	if err := f.checkSizes(chosen, byPath); err != nil {
		return nil, err
	}
	var out []localFile
	for _, p := range chosen {
		e := byPath[p]
		fileURL := f.o.Hub.FileURL("dataset", repoID, sha, p)
		lf, err := f.download(ctx, fileURL, p, &e)
		if err != nil {
			return nil, err
		}
		if lf.format, err = format(p); err != nil {
			return nil, err
		}
		lf.url = fileURL
		out = append(out, lf)
	}
	f.meta.Format = out[0].format
	return out, nil
}

func (f *fetcher) checkSizes(chosen []string, byPath map[string]hub.TreeEntry) error {
	if f.budget < 0 {
		return nil
	}
	var total int64
	for _, p := range chosen {
		total += byPath[p].Size
	}
	if total > f.budget {
		return fmt.Errorf("%w: the %d selected files hold %d bytes, over --max-bytes=%d", hub.ErrTooLarge, len(chosen), total, f.o.MaxBytes)
	}
	return nil
}

func (f *fetcher) acquireParquetConversion(ctx context.Context, repoID, split string) ([]localFile, error) {
	c := f.o.Hub
	listing, err := c.ListParquet(ctx, repoID)
	if err != nil {
		return nil, err
	}
	subset := f.o.Subset
	if subset == "" {
		subset, err = pickOne(keys(listing), "default", "subset", "--subset")
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrSource, repoID, err)
		}
	}
	splits, ok := listing[subset]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no subset %q (subsets: %s)", ErrSource, repoID, subset, strings.Join(keys(listing), ", "))
	}
	if _, ok := splits[split]; !ok {
		alt := ""
		for _, s := range keys(splits) {
			if splitGroup(s) == splitGroup(split) && splitGroup(s) != "" {
				alt = s
			}
		}
		if alt == "" {
			return nil, fmt.Errorf("%w: %s subset %s has no split %q (splits: %s)", ErrSource, repoID, subset, split, strings.Join(keys(splits), ", "))
		}
		split = alt
	}
	// Pin the conversion's branch to a commit and list its files there, so
	// every file comes from one commit.
	sha, err := c.ResolveRevision(ctx, "dataset", repoID, hub.ParquetRevision)
	if err != nil {
		return nil, err
	}
	entries, err := c.ListTree(ctx, "dataset", repoID, sha, subset+"/"+split, false)
	if errors.Is(err, hub.ErrEntryNotFound) {
		// Splits too large to convert whole are kept as partial-{split}.
		entries, err = c.ListTree(ctx, "dataset", repoID, sha, subset+"/partial-"+split, false)
	}
	if err != nil {
		return nil, err
	}
	byPath := map[string]hub.TreeEntry{}
	var chosen []string
	for _, e := range entries {
		if e.Type == "file" && strings.HasSuffix(e.Path, ".parquet") {
			byPath[e.Path] = e
			chosen = append(chosen, e.Path)
		}
	}
	if len(chosen) == 0 {
		return nil, fmt.Errorf("%w: %s: the parquet conversion of %s/%s holds no file", ErrSource, repoID, subset, split)
	}
	f.meta.Revision, f.meta.Commit, f.meta.ParquetConversion = hub.ParquetRevision, sha, true
	f.meta.Subset, f.meta.Split = subset, split
	return f.downloadChosen(ctx, repoID, sha, chosen, byPath, func(string) (Format, error) { return FormatParquet, nil })
}
