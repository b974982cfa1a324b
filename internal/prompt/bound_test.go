package prompt

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// countingEncoder passes through to a real tokenizer and remembers the
// longest text it was asked to encode.
type countingEncoder struct {
	Encoder
	Bounded
	mu      sync.Mutex
	longest int
}

func (c *countingEncoder) Encode(text string, addSpecial bool) ([]int, error) {
	c.mu.Lock()
	c.longest = max(c.longest, len(text))
	c.mu.Unlock()
	return c.Encoder.Encode(text, addSpecial)
}

// A 4 MB context with max length 128 is cut without tokenizing more than
// 128 tokens' worth of bytes: work and memory follow max length, not the
// record (before, Build tokenized the whole context, then halves of it).
func TestBuildTokenizesBoundedText(t *testing.T) {
	for _, name := range []string{"llama2", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			tok := loadTok(t, name)
			n, ok := tok.MaxBytesPerToken()
			if !ok {
				t.Fatal("no bound")
			}
			enc := &countingEncoder{Encoder: tok, Bounded: tok}
			long := rec
			long.Context = strings.Repeat("The tower is made of wrought iron. ", 4<<20/35)
			const maxLength = 128
			ex, err := Build(enc, long, maxLength)
			if err != nil {
				t.Fatal(err)
			}
			if !ex.Truncated || len(ex.InputIDs) > maxLength || len(ex.InputIDs) < maxLength-10 {
				t.Fatalf("Truncated=%v, %d ids, want a tight cut to %d", ex.Truncated, len(ex.InputIDs), maxLength)
			}
			if bound := maxLength * n; enc.longest > bound {
				t.Fatalf("encoded a text of %d bytes of a %d-byte context, want at most %d (%d tokens x %d bytes)",
					enc.longest, len(long.Context), bound, maxLength, n)
			}
		})
	}
}

// A question longer than max length is rejected without tokenizing it.
func TestBuildTooLongQuestionUntokenized(t *testing.T) {
	tok := loadTok(t, "llama3")
	enc := &countingEncoder{Encoder: tok, Bounded: tok}
	long := rec
	long.Question = strings.Repeat("why ", 1<<20)
	if _, err := Build(enc, long, 64); !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
	if enc.longest != 0 {
		t.Fatalf("tokenized %d bytes to reject a %d-byte question", enc.longest, len(long.Question))
	}
}

// pieces of records: words, runs, white space, CJK, emoji, combining marks,
// Hangul jamo, a mathematical letter, an added token's text, a '{'.
var pieces = []string{"the ", "tower ", "Paris", "1889", "a", "aaaaaaaa", " ", "   ", "\n", "東京", "🙂", "e\u0301",
	"\u1100\u1161\u11a8", "𝐀", "<|endoftext|>", "<s>", "{context}", "----", "é", "\u212a"}

func randomText(r *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// checkSameAsBefore compares Build with the algorithm it replaced, which
// tokenized the whole context and every candidate cut.
func checkSameAsBefore(t *testing.T, tok Encoder, r Record, maxLength int) {
	t.Helper()
	want, wantErr := buildBefore(tok, r, maxLength)
	got, gotErr := Build(tok, r, maxLength)
	if errors.Is(wantErr, ErrTooLong) != errors.Is(gotErr, ErrTooLong) || (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("maxLength %d, context %d bytes, question %d, answer %d: err %v, before %v",
			maxLength, len(r.Context), len(r.Question), len(r.Answer), gotErr, wantErr)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("maxLength %d, context %d bytes: Build differs from before (-before +now):\n%s", maxLength, len(r.Context), d)
	}
}

// Property: for random records, many cut by the byte bound, Build returns
// exactly what the unbounded search returned, on all four tokenizers.
func TestBuildSameAsUnboundedSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for _, name := range []string{"gpt2", "llama2", "llama3", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			tok := loadTok(t, name)
			n, _ := tok.MaxBytesPerToken()
			cut := 0
			for i := 0; i < 40; i++ {
				maxLength := 4 + r.IntN(60)
				rc := Record{
					Question: randomText(r, 1+r.IntN(40)),
					Answer:   randomText(r, 1+r.IntN(30)),
					// Up to twice the bound, so that the bound decides some cuts.
					Context: randomText(r, r.IntN(2*maxLength*n+1)),
				}
				if r.IntN(8) == 0 {
					rc.Question = randomText(r, maxLength*n+r.IntN(100))
				}
				if len(rc.Context) > maxLength*n {
					cut++
				}
				checkSameAsBefore(t, tok, rc, maxLength)
			}
			if cut == 0 {
				t.Fatal("no record was longer than the bound")
			}
		})
	}
}

// FuzzBuildSameAsUnboundedSearch checks the property on llama2, whose bound
// (48 bytes a token) lets short inputs cross it.
func FuzzBuildSameAsUnboundedSearch(f *testing.F) {
	f.Add("The Eiffel Tower was completed in 1889 and stands in Paris.", "When?", "1889", uint8(20))
	f.Add(strings.Repeat("東京 ", 400), "Where?", "東京", uint8(12))
	f.Add(strings.Repeat("e\u0301", 300), "q", "a", uint8(4))
	f.Fuzz(func(t *testing.T, context, question, answer string, maxLength uint8) {
		tok := loadTok(t, "llama2")
		checkSameAsBefore(t, tok, Record{Context: context, Question: question, Answer: answer}, int(maxLength))
	})
}

// buildBefore is Build as it was before the byte bound, kept verbatim as the
// reference.
func buildBefore(tok Encoder, rec Record, maxLength int) (Example, error) {
	eos, ok := tok.EOS()
	if !ok {
		return Example{}, ErrNoEOS
	}
	ex, err := build(tok, rec, eos)
	if err != nil || maxLength <= 0 || len(ex.InputIDs) <= maxLength {
		return ex, err
	}
	// Binary search on the number of context bytes kept; lo always fits.
	short := rec
	short.Context = ""
	best, err := build(tok, short, eos)
	if err != nil {
		return Example{}, err
	}
	if len(best.InputIDs) > maxLength {
		return Example{}, fmt.Errorf("%w (%d tokens without context, max %d)", ErrTooLong, len(best.InputIDs), maxLength)
	}
	lo, hi := 0, len(rec.Context)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		for mid > lo && !utf8.RuneStart(rec.Context[mid]) {
			mid--
		}
		if mid == lo {
			break
		}
		short.Context = rec.Context[:mid]
		ex, err := build(tok, short, eos)
		if err != nil {
			return Example{}, err
		}
		if len(ex.InputIDs) <= maxLength {
			lo, best = mid, ex
		} else {
			hi = mid
		}
	}
	best.Truncated = true
	return best, nil
}
