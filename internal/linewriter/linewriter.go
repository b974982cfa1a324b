// Package linewriter copies the output of programs that run side by side
// (the demo's pipeline steps and servers, the rehearsal's containers) into
// one log, line by line: Prefixed tags each complete line with where it
// came from, and Locked keeps the writes of several goroutines whole.
package linewriter

import (
	"bytes"
	"io"
	"sync"
)

// Locked returns a writer that serialises writes to w, so that whole writes
// from different goroutines never interleave.
func Locked(w io.Writer) io.Writer { return &locked{w: w} }

type locked struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *locked) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// maxLine is the longest line held back waiting for its newline; a longer
// one is written as it is.
const maxLine = 64 << 10

// Prefixed writes each complete line to w with a prefix, in one Write per
// line. A line redrawn with carriage returns (a progress bar) is written as
// a terminal would show it, its last redraw; a line past 64 KiB is written
// without waiting for its end. Flush writes what is left of an unterminated
// last line. It is safe for concurrent use.
type Prefixed struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

var _ io.Writer = (*Prefixed)(nil)

// NewPrefixed returns a Prefixed writer to w.
func NewPrefixed(w io.Writer, prefix string) *Prefixed { return &Prefixed{w: w, prefix: prefix} }

// Write takes any piece of output; complete lines go to w.
func (p *Prefixed) Write(b []byte) (int, error) {
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
	if len(p.buf) > maxLine {
		p.line(p.buf)
		p.buf = p.buf[:0]
	}
	return len(b), nil
}

// Flush writes an unterminated last line, if any.
func (p *Prefixed) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.line(p.buf)
		p.buf = nil
	}
}

func (p *Prefixed) line(l []byte) {
	l = bytes.TrimRight(l, "\r")
	if i := bytes.LastIndexByte(l, '\r'); i >= 0 {
		l = l[i+1:]
	}
	out := make([]byte, 0, len(p.prefix)+len(l)+1)
	out = append(append(append(out, p.prefix...), l...), '\n')
	p.w.Write(out) // a log line that cannot be written has nowhere else to go
}
