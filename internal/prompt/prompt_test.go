package prompt

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tmc/langchaingo/prompts"

	"github.com/kfllm/kfllm/internal/tokenizer"
)

var loaded sync.Map // name -> *tokenizer.Tokenizer

func loadTok(t testing.TB, name string) *tokenizer.Tokenizer {
	t.Helper()
	if tok, ok := loaded.Load(name); ok {
		return tok.(*tokenizer.Tokenizer)
	}
	base := os.Getenv("KFLLM_TOKENIZERS")
	if base == "" {
		t.Fatal("KFLLM_TOKENIZERS is not set: run make setup (and source .kfllm/env)")
	}
	tok, err := tokenizer.Load(filepath.Join(base, name))
	if err != nil {
		t.Fatal(err)
	}
	loaded.Store(name, tok)
	return tok
}

func TestRenderMatchesLangchaingo(t *testing.T) {
	ctx, q := "Paris is the capital of {France}.", "What is the capital of France?"
	want := "Answer the question using the context.\n\nContext: Paris is the capital of {France}.\nQuestion: What is the capital of France?\nAnswer:"
	if got := Render(ctx, q); got != want {
		t.Fatalf("Render = %q, want %q", got, want)
	}
	pt := prompts.PromptTemplate{Template: Template, InputVariables: []string{"context", "question"}, TemplateFormat: prompts.TemplateFormatFString}
	lc, err := pt.Format(map[string]any{"context": ctx, "question": q})
	if err != nil {
		t.Fatal(err)
	}
	if lc != want {
		t.Fatalf("langchaingo formats the template as %q, Render as %q", lc, want)
	}
}

var rec = Record{
	Context:  "The Eiffel Tower was completed in 1889 and stands in Paris.",
	Question: "When was the Eiffel Tower completed?",
	Answer:   "In 1889.",
}

// On Llama 2 (SentencePiece-style BPE) the prompt and the answer tokenized
// apart differ from the whole text tokenized at once; Build must use the
// latter, which is what the model sees at inference.
func TestBuildUsesWholeTextTokenization(t *testing.T) {
	tok := loadTok(t, "llama2")
	p := Render(rec.Context, rec.Question)
	whole, err := tok.Encode(p+" "+rec.Answer, true)
	if err != nil {
		t.Fatal(err)
	}
	pIDs, _ := tok.Encode(p, true)
	aIDs, _ := tok.Encode(" "+rec.Answer, false)
	if slices.Equal(append(pIDs, aIDs...), whole) {
		t.Fatalf("expected the apart tokenization to differ at the boundary on llama2; both are %v", whole)
	}
	ex, err := Build(tok, rec, 0)
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.EOS()
	if want := append(slices.Clone(whole), eos); !slices.Equal(ex.InputIDs, want) {
		t.Fatalf("InputIDs = %v, want whole-text ids + EOS %v", ex.InputIDs, want)
	}
	if bos, _ := tok.BOS(); ex.InputIDs[0] != bos {
		t.Fatalf("first id %d, want BOS %d", ex.InputIDs[0], bos)
	}
	checkLabels(t, tok, ex, rec.Answer)
}

// checkLabels: -100 on a prefix, ids from there on, and the labelled tokens
// decode to the answer followed by EOS.
func checkLabels(t *testing.T, tok *tokenizer.Tokenizer, ex Example, answer string) {
	t.Helper()
	if len(ex.Labels) != len(ex.InputIDs) {
		t.Fatalf("%d labels for %d ids", len(ex.Labels), len(ex.InputIDs))
	}
	first := slices.IndexFunc(ex.Labels, func(l int) bool { return l != IgnoreIndex })
	if first <= 0 {
		t.Fatalf("labels %v: want -100 on the prompt", ex.Labels)
	}
	for i := first; i < len(ex.Labels); i++ {
		if ex.Labels[i] != ex.InputIDs[i] {
			t.Fatalf("label %d = %d, want id %d", i, ex.Labels[i], ex.InputIDs[i])
		}
	}
	eos, _ := tok.EOS()
	if ex.Labels[len(ex.Labels)-1] != eos {
		t.Fatalf("last label %d, want EOS %d", ex.Labels[len(ex.Labels)-1], eos)
	}
	got, err := tok.Decode(ex.Labels[first:], true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(got) != answer {
		t.Fatalf("labelled tokens decode to %q, want the answer %q", got, answer)
	}
	prompt, _ := tok.Decode(ex.InputIDs[:first], true)
	if !strings.HasSuffix(strings.TrimSpace(prompt), "Answer:") {
		t.Fatalf("unlabelled tokens decode to %q, want the prompt", prompt)
	}
}

func TestBuildAllTokenizers(t *testing.T) {
	for _, name := range []string{"gpt2", "llama2", "llama3", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			tok := loadTok(t, name)
			ex, err := Build(tok, rec, 0)
			if err != nil {
				t.Fatal(err)
			}
			if ex.Truncated {
				t.Fatal("truncated without a limit")
			}
			checkLabels(t, tok, ex, rec.Answer)
		})
	}
}

func TestBuildTruncatesContextOnly(t *testing.T) {
	tok := loadTok(t, "llama2")
	long := rec
	long.Context = strings.Repeat("The tower is made of wrought iron. ", 60)
	full, err := Build(tok, long, 0)
	if err != nil {
		t.Fatal(err)
	}
	const max = 80
	if len(full.InputIDs) <= max {
		t.Fatalf("test record has only %d tokens", len(full.InputIDs))
	}
	ex, err := Build(tok, long, max)
	if err != nil {
		t.Fatal(err)
	}
	if !ex.Truncated || len(ex.InputIDs) > max {
		t.Fatalf("Truncated=%v len=%d, want true and <= %d", ex.Truncated, len(ex.InputIDs), max)
	}
	if len(ex.InputIDs) < max-10 {
		t.Fatalf("kept only %d of %d tokens: the cut is far from tight", len(ex.InputIDs), max)
	}
	text, _ := tok.Decode(ex.InputIDs, true)
	if !strings.Contains(text, "Question: "+long.Question+"\nAnswer: "+long.Answer) {
		t.Fatalf("question or answer damaged: %q", text)
	}
	ctx := text[strings.Index(text, "Context: ")+len("Context: ") : strings.Index(text, "\nQuestion:")]
	if ctx == "" || !strings.HasPrefix(long.Context, ctx) {
		t.Fatalf("kept context %q is not a prefix of the original", ctx)
	}
	checkLabels(t, tok, ex, long.Answer)
}

func TestBuildTooLong(t *testing.T) {
	tok := loadTok(t, "gpt2")
	long := rec
	long.Answer = strings.Repeat("very long answer ", 50)
	_, err := Build(tok, long, 40)
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
}

// noEOS is a tokenizer without an EOS token.
type noEOS struct{}

func (noEOS) Encode(string, bool) ([]int, error) { return []int{1}, nil }
func (noEOS) EOS() (int, bool)                   { return 0, false }

func TestBuildNeedsEOS(t *testing.T) {
	if _, err := Build(noEOS{}, rec, 0); !errors.Is(err, ErrNoEOS) {
		t.Fatalf("err = %v, want ErrNoEOS", err)
	}
}
