package scheduler

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"
)

// bytesTok decodes ids as raw bytes, as a byte-level BPE does before its
// text is complete; withFFFD shows an incomplete character as one U+FFFD
// per byte instead, as Hugging Face tokenizers do.
type bytesTok struct{ withFFFD bool }

func (bytesTok) Encode(text string, _ bool) ([]int, error) {
	ids := make([]int, len(text))
	for i := range len(text) {
		ids[i] = int(text[i])
	}
	return ids, nil
}

func (t bytesTok) Decode(ids []int, _ bool) (string, error) {
	b := make([]byte, len(ids))
	for i, id := range ids {
		b[i] = byte(id)
	}
	text := string(b)
	if !t.withFFFD {
		return text, nil
	}
	n := incompleteTail(text)
	return text[:len(text)-n] + strings.Repeat("\uFFFD", n), nil
}

// oneSeq hands the scheduler the token it is told to.
type oneSeq struct{ last int }

func (s *oneSeq) Last() int  { return s.last }
func (s *oneSeq) Done() bool { return false }
func (s *oneSeq) Release()   {}

// streamPieces feeds answer to the scheduler's advance one byte-token at a
// time, as the loop does after each decoding step, and returns the pieces
// a caller draining after every step would receive, and the result.
func streamPieces(t *testing.T, tok Tokenizer, answer string, stops []string) ([]string, *Result) {
	s := &Scheduler{tok: tok, eos: map[int]bool{256: true}, opts: Options{Logger: slog.Default()}}
	j := &job{ctx: context.Background(), req: Request{Stop: stops}, maxNew: len(answer) + 1, wake: make(chan struct{}, 1)}
	sq := &oneSeq{}
	j.seq = sq
	var pieces []string
	drain := func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		if p := j.pending.String(); p != "" {
			pieces = append(pieces, p)
		}
		j.pending.Reset()
	}
	s.active.Add(1)
	for i := 0; i <= len(answer); i++ {
		sq.last = 256 // EOS after the answer
		if i < len(answer) {
			sq.last = int(answer[i])
		}
		goOn := s.advance(j)
		drain()
		if !goOn {
			break
		}
	}
	if j.err != nil {
		t.Fatalf("%q: %v", answer, j.err)
	}
	return pieces, j.final
}

// checkStream: every piece is valid UTF-8 (when the answer is) and the
// pieces add up to the result's text.
func checkStream(t *testing.T, answer string, stops []string) {
	t.Helper()
	for _, tok := range []bytesTok{{false}, {true}} {
		pieces, res := streamPieces(t, tok, answer, stops)
		if res == nil {
			t.Fatalf("%q (stops %q, FFFD %v): no result", answer, stops, tok.withFFFD)
		}
		if got := strings.Join(pieces, ""); got != res.Text {
			t.Fatalf("%q (stops %q, FFFD %v): streamed %q, result %q", answer, stops, tok.withFFFD, got, res.Text)
		}
		if !utf8.ValidString(answer) {
			continue
		}
		for _, p := range pieces {
			if !utf8.ValidString(p) {
				t.Fatalf("%q (stops %q, FFFD %v): streamed piece %q splits a character (pieces %q)", answer, stops, tok.withFFFD, p, pieces)
			}
		}
	}
}

// TestStreamNeverSplitsACharacter is the deterministic form of the flake
// TestGenerateStreamsWholeAnswer showed (17 of 300 runs under -race): a
// caller that drains after every step got the first byte of "é" alone
// (with no stop string pending the incomplete tail was streamed).
func TestStreamNeverSplitsACharacter(t *testing.T) {
	for _, c := range []struct {
		answer string
		stops  []string
	}{
		{"héllo wörld ✓", nil},
		{"héllo wörld ✓", []string{"STOP"}},
		{"a✓b😀c", []string{"😀"}},
		{"日本語のテキスト", []string{"\n\n"}},
		{"ends mid-word é", []string{"é!"}},
	} {
		checkStream(t, c.answer, c.stops)
	}
}

// FuzzStream: whatever the answer and stop string, the streamed pieces are
// valid UTF-8 and add up to the returned text.
// Run longer with: go test -fuzz FuzzStream ./internal/scheduler
func FuzzStream(f *testing.F) {
	f.Add("héllo wörld ✓", "")
	f.Add("a✓b😀c", "😀")
	f.Add("x STOP y", "STOP")
	f.Add("\xe2\x9c", "")
	f.Fuzz(func(t *testing.T, answer, stop string) {
		// Stop strings come from JSON, which makes them valid UTF-8; a
		// valid one can only match on character boundaries.
		if len(answer) > 256 || !utf8.ValidString(stop) {
			return
		}
		var stops []string
		if stop != "" {
			stops = []string{stop}
		}
		checkStream(t, answer, stops)
	})
}
