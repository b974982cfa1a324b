package linewriter_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kfllm/kfllm/internal/linewriter"
)

// TestPrefixed: lines written in any pieces come out whole and prefixed;
// a progress bar's redraws leave their last state; the unterminated end
// waits for Flush.
func TestPrefixed(t *testing.T) {
	var out bytes.Buffer
	p := linewriter.NewPrefixed(&out, "[step] ")
	for _, piece := range []string{"hel", "lo\nwor", "ld\n", "10%\r50%\r100%\r\n", "no newline"} {
		if n, err := p.Write([]byte(piece)); n != len(piece) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", piece, n, err)
		}
	}
	want := "[step] hello\n[step] world\n[step] 100%\n"
	if out.String() != want {
		t.Fatalf("before Flush: %q, want %q", out.String(), want)
	}
	p.Flush()
	p.Flush()
	if want += "[step] no newline\n"; out.String() != want {
		t.Errorf("after Flush: %q, want %q", out.String(), want)
	}
	out.Reset()
	long := strings.Repeat("x", 70<<10)
	p.Write([]byte(long))
	if out.Len() != len("[step] ")+len(long)+1 {
		t.Errorf("a line past 64 KiB without a newline is held back (%d bytes out)", out.Len())
	}
}

// TestLockedKeepsLinesWhole: Prefixed writers of several goroutines sharing
// one Locked log never interleave their lines.
func TestLockedKeepsLinesWhole(t *testing.T) {
	var out bytes.Buffer
	log := linewriter.Locked(&out)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := linewriter.NewPrefixed(log, fmt.Sprintf("[%d] ", g))
			for i := range 200 {
				fmt.Fprintf(p, "line %d of goroutine %d\n", i, g)
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*200 {
		t.Fatalf("%d lines, want %d", len(lines), 8*200)
	}
	for _, l := range lines {
		var g, i, g2 int
		if n, err := fmt.Sscanf(l, "[%d] line %d of goroutine %d", &g, &i, &g2); n != 3 || err != nil || g != g2 {
			t.Fatalf("torn line %q", l)
		}
	}
}
