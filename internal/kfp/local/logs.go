package local

import (
	"bytes"
	"io"
	"sync"
)

// prefixWriter writes each complete line to w with a prefix, and keeps the
// last n lines for a failure report.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
	tail   []string
	n      int
}

func newPrefixWriter(w io.Writer, prefix string, n int) *prefixWriter {
	return &prefixWriter{w: w, prefix: prefix, n: n}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.line(p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	// A progress bar redraws with '\r' and no newline: don't hold a huge line.
	if len(p.buf) > 64<<10 {
		p.line(p.buf)
		p.buf = p.buf[:0]
	}
	return len(b), nil
}

func (p *prefixWriter) line(l []byte) {
	l = bytes.TrimRight(l, "\r")
	if i := bytes.LastIndexByte(l, '\r'); i >= 0 {
		l = l[i+1:] // keep what a terminal would show
	}
	io.WriteString(p.w, p.prefix+string(l)+"\n")
	p.tail = append(p.tail, string(l))
	if len(p.tail) > p.n {
		p.tail = p.tail[len(p.tail)-p.n:]
	}
}

// Flush writes a final unterminated line.
func (p *prefixWriter) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.line(p.buf)
		p.buf = nil
	}
}

// Tail returns the last lines written.
func (p *prefixWriter) Tail() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tail...)
}
