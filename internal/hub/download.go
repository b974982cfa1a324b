package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrTooLarge means a download exceeded DownloadOptions.MaxBytes.
var ErrTooLarge = errors.New("exceeds the size limit")

// ErrChecksum means downloaded content did not match its expected size or sha256.
var ErrChecksum = errors.New("checksum mismatch")

// DownloadOptions tunes DownloadFile.
type DownloadOptions struct {
	// MaxBytes fails the download (ErrTooLarge) once the file is known to
	// be, or has grown, larger than this; 0 means no limit.
	MaxBytes int64
	// ExpectedSize and ExpectedSHA256 (hex), when set, are checked before
	// the file is moved into place.
	ExpectedSize   int64
	ExpectedSHA256 string
	// Progress, if set, is called as bytes arrive with the bytes on disk
	// so far and the total (-1 while unknown).
	Progress func(done, total int64)
	// StallTimeout abandons a response whose body sends nothing for this
	// long and resumes with a new request; 0 means DefaultStallTimeout.
	StallTimeout time.Duration
}

// DefaultStallTimeout is how long a download waits for the next bytes of a
// response before it reconnects.
const DefaultStallTimeout = 2 * time.Minute

var errStalled = errors.New("no data received within the stall timeout")

// Downloaded describes a finished download.
type Downloaded struct {
	Path   string // the destination path
	Size   int64  // bytes
	SHA256 string // hex sha256 of the content
	Commit string // X-Repo-Commit, when the Hub sent it
	ETag   string // X-Linked-Etag or ETag, unquoted
}

// DownloadFile streams rawURL to dest. Bytes go to dest+".incomplete"
// first, which a later call resumes from; when the connection drops mid-body
// the download resumes with a Range request (and starts over if the server
// answers 200 instead of 206). Only a complete file whose size and sha256
// check out is renamed to dest.
func (c *Client) DownloadFile(ctx context.Context, rawURL, dest string, opts DownloadOptions) (*Downloaded, error) {
	d := &download{c: c, url: rawURL, dest: dest, opts: opts, part: dest + ".incomplete", total: -1}
	res, err := d.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", redactString(rawURL), err)
	}
	return res, nil
}

type download struct {
	c      *Client
	url    string
	dest   string
	part   string
	opts   DownloadOptions
	f      *os.File
	offset int64
	total  int64
	hash   hash.Hash
	res    Downloaded
}

// errRestart asks the loop to discard the partial file and start over.
var errRestart = errors.New("restart")

func (d *download) run(ctx context.Context) (*Downloaded, error) {
	f, err := os.OpenFile(d.part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	d.f = f
	defer func() {
		if d.f != nil {
			d.f.Close()
		}
	}()
	d.hash = sha256.New()
	// Resume: hash what an earlier attempt left.
	n, err := io.Copy(d.hash, f)
	if err != nil {
		return nil, fmt.Errorf("read partial file: %w", err)
	}
	d.offset = n
	if d.opts.ExpectedSize > 0 {
		d.total = d.opts.ExpectedSize
		if d.offset > d.total {
			if err := d.restart(); err != nil {
				return nil, err
			}
		}
	}
	failures, restarts := 0, 0
	for {
		if d.total >= 0 && d.offset == d.total && d.offset > 0 {
			break // an earlier attempt got it all
		}
		got, err := d.attempt(ctx)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, errRestart):
			if restarts++; restarts > d.c.maxRetries {
				return nil, fmt.Errorf("the server's answers to range requests do not fit together; gave up after %d restarts", restarts-1)
			}
			if err := d.restart(); err != nil {
				return nil, err
			}
		case errors.Is(err, ErrTooLarge):
			d.discard()
			return nil, err
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			var herr *Error
			var werr *writeError
			if errors.As(err, &herr) || errors.As(err, &werr) {
				return nil, err
			}
		}
		if got > 0 {
			failures = 0
		} else {
			failures++
		}
		if failures > d.c.maxRetries {
			return nil, fmt.Errorf("giving up after %d attempts at %d of %s bytes: %w", failures, d.offset, sizeString(d.total), err)
		}
		if !errors.Is(err, errRestart) {
			wait := d.c.backoff(failures)
			d.c.log.Warn("download interrupted, resuming", "url", redactString(d.url), "offset", d.offset, "err", err, "wait", wait)
			if err := sleep(ctx, wait); err != nil {
				return nil, err
			}
		}
	}
	if d.opts.ExpectedSize > 0 && d.offset != d.opts.ExpectedSize {
		d.discard()
		return nil, fmt.Errorf("%w: got %d bytes, want %d", ErrChecksum, d.offset, d.opts.ExpectedSize)
	}
	sum := hex.EncodeToString(d.hash.Sum(nil))
	if want := strings.ToLower(d.opts.ExpectedSHA256); want != "" && sum != want {
		d.discard()
		return nil, fmt.Errorf("%w: sha256 %s, want %s", ErrChecksum, sum, want)
	}
	if err := d.f.Sync(); err != nil {
		return nil, err
	}
	if err := d.f.Close(); err != nil {
		d.f = nil
		return nil, err
	}
	d.f = nil
	if err := os.Rename(d.part, d.dest); err != nil {
		return nil, err
	}
	d.res.Path, d.res.Size, d.res.SHA256 = d.dest, d.offset, sum
	return &d.res, nil
}

func (d *download) restart() error {
	if err := d.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate partial file: %w", err)
	}
	if _, err := d.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	d.offset = 0
	d.hash.Reset()
	return nil
}

func (d *download) discard() {
	d.f.Close()
	d.f = nil
	os.Remove(d.part)
}

type writeError struct{ err error }

func (e *writeError) Error() string { return "write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// attempt makes one request from d.offset and copies what arrives. It
// returns the bytes it added.
func (d *download) attempt(ctx context.Context) (int64, error) {
	h := http.Header{"Accept-Encoding": {"identity"}}
	if d.offset > 0 {
		h.Set("Range", fmt.Sprintf("bytes=%d-", d.offset))
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	resp, err := d.c.Do(actx, &Request{URL: d.url, Header: h})
	if err != nil {
		var herr *Error
		if errors.As(err, &herr) && herr.StatusCode == http.StatusRequestedRangeNotSatisfiable && d.offset > 0 {
			return 0, errRestart // our partial file is not a prefix of this file
		}
		return 0, err
	}
	defer resp.Body.Close()
	if d.res.Commit == "" {
		d.res.Commit = resp.Header.Get("X-Repo-Commit")
	}
	if d.res.ETag == "" {
		d.res.ETag = unquoteETag(firstNonEmpty(resp.Header.Get("X-Linked-Etag"), resp.Header.Get("ETag")))
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if d.offset > 0 {
			// Range ignored: the body is the whole file again.
			if err := d.restart(); err != nil {
				return 0, err
			}
		}
		if resp.ContentLength >= 0 {
			d.total = resp.ContentLength
		}
	case http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != d.offset {
			return 0, errRestart
		}
		d.total = total
	default:
		return 0, fmt.Errorf("unexpected status %s", resp.Status)
	}
	if d.opts.MaxBytes > 0 && d.total > d.opts.MaxBytes {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, d.total, d.opts.MaxBytes)
	}
	// A connection that stays open but sends nothing would hang the
	// download forever: cancel it after StallTimeout without bytes.
	stall := d.opts.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	watchdog := time.AfterFunc(stall, func() { cancel(errStalled) })
	defer watchdog.Stop()
	var added int64
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		watchdog.Reset(stall)
		if n > 0 {
			if d.opts.MaxBytes > 0 && d.offset+int64(n) > d.opts.MaxBytes {
				return added, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, d.opts.MaxBytes)
			}
			if _, err := d.f.Write(buf[:n]); err != nil {
				return added, &writeError{err}
			}
			d.hash.Write(buf[:n])
			d.offset += int64(n)
			added += int64(n)
			if d.opts.Progress != nil {
				d.opts.Progress(d.offset, d.total)
			}
		}
		if rerr == io.EOF {
			if d.total >= 0 && d.offset < d.total {
				return added, io.ErrUnexpectedEOF
			}
			if d.total >= 0 && d.offset > d.total {
				return added, errRestart
			}
			return added, nil
		}
		if rerr != nil {
			if errors.Is(context.Cause(actx), errStalled) {
				return added, errStalled
			}
			return added, rerr
		}
	}
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*").
func parseContentRange(v string) (start, total int64, ok bool) {
	v, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, false
	}
	s, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

func unquoteETag(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	return strings.Trim(s, `"`)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func sizeString(n int64) string {
	if n < 0 {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}

// redactString renders a URL string without its query (signed CDN URLs
// carry credentials there).
func redactString(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if i := strings.Index(raw, "://"); i >= 0 {
		if j := strings.Index(raw[i+3:], "@"); j >= 0 && !strings.Contains(raw[i+3:i+3+j], "/") {
			raw = raw[:i+3] + raw[i+3+j+1:]
		}
	}
	return raw
}

// ProgressLines returns a progress function (for DownloadOptions.Progress
// through a closure, or SnapshotOptions.Progress) that writes plain lines
// to w, as log collectors want them: when a file starts, about every 5%
// (at most 64 MiB apart) and when it completes, e.g.
// "fetch: data/train.parquet 12.0 MiB / 40.0 MiB (30%)".
func ProgressLines(w io.Writer, prefix string) func(file string, done, total int64) {
	var mu sync.Mutex
	last := map[string]int64{}
	return func(file string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		prev, seen := last[file]
		step := int64(64 << 20)
		if total > 0 {
			step = min(step, max(total/20, 1))
		}
		if seen && done-prev < step && done != total {
			return
		}
		if seen && done == prev {
			return
		}
		last[file] = done
		if total > 0 {
			fmt.Fprintf(w, "%s: %s %s / %s (%d%%)\n", prefix, file, fmtBytes(done), fmtBytes(total), done*100/total)
		} else {
			fmt.Fprintf(w, "%s: %s %s\n", prefix, file, fmtBytes(done))
		}
	}
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
