package prompt

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Template is the plain question-answering prompt. Its placeholders are
// f-string style: with langchaingo use
// prompts.PromptTemplate{Template: Template, InputVariables: []string{"context", "question"},
// TemplateFormat: prompts.TemplateFormatFString} (NewPromptTemplate defaults
// to Go templates, which would leave the placeholders as they are).
const Template = "Answer the question using the context.\n\nContext: {context}\nQuestion: {question}\nAnswer:"

// TemplateName names Template in artifacts (the token shards' metadata), so
// that a change of template is visible.
const TemplateName = "kfllm-qa-v1"

// IgnoreIndex is the label of positions that carry no loss (PyTorch's
// CrossEntropyLoss ignore_index, which transformers uses).
const IgnoreIndex = -100

// Render fills Template.
func Render(context, question string) string {
	return strings.NewReplacer("{context}", context, "{question}", question).Replace(Template)
}

// Target is the text the model learns to produce after the prompt: a space
// and the answer (EOS follows it as a token).
func Target(answer string) string { return " " + answer }

// Record is one question-answering example.
type Record struct {
	Context, Question, Answer string
}

// Encoder is the part of a tokenizer that Build needs
// (*tokenizer.Tokenizer implements it).
type Encoder interface {
	// Encode tokenizes text; addSpecial applies the post-processor (BOS).
	Encode(text string, addSpecial bool) ([]int, error)
	// EOS returns the end-of-sequence id.
	EOS() (int, bool)
}

// Example is one training sequence: the ids the model sees and, per
// position, the id it must predict there (IgnoreIndex where no loss is
// taken). Labels are aligned with InputIDs; the trainer shifts them.
type Example struct {
	InputIDs, Labels []int
	// Truncated reports that the context was cut to fit.
	Truncated bool
}

// ErrTooLong is returned by Build when even an empty context leaves the
// question and answer longer than maxLength; such records are skipped.
var ErrTooLong = errors.New("question and answer do not fit in max length")

// ErrNoEOS is returned when the tokenizer has no end-of-sequence token.
var ErrNoEOS = errors.New("tokenizer has no EOS token (eos_token in tokenizer_config.json); training needs one to end answers")

// Bounded is implemented by encoders that can bound how many bytes of input
// one token stands for (*tokenizer.Tokenizer does): a text longer than k*n
// bytes encodes to more than k tokens; ok is false when no bound holds.
type Bounded interface {
	MaxBytesPerToken() (n int, ok bool)
}

// Build turns rec into an Example of at most maxLength tokens (0: no limit).
//
// The ids are what the model sees at inference followed by EOS: the
// tokenization of the whole text Render(context, question) + " " + answer,
// with the tokenizer's post-processor (e.g. BOS), then EOS. Prompt and answer
// are not tokenized apart, because for SentencePiece-style tokenizers the
// tokens at the boundary differ. The labels are IgnoreIndex on the tokens the
// prompt alone tokenizes to (the longest common prefix of the two
// tokenizations) and the ids elsewhere, EOS included.
//
// When the example is too long the context is cut (at a character boundary,
// keeping its start), never the question or the answer; if an empty context
// is not enough, Build returns ErrTooLong. The cut is a binary search on the
// number of context bytes kept. With a Bounded encoder, a text longer than
// maxLength times its bytes per token is known not to fit without being
// tokenized, so Build never tokenizes more than about that many bytes: work
// and memory follow maxLength, not the length of the record, and the result
// is the one the search would reach by tokenizing every candidate.
func Build(tok Encoder, rec Record, maxLength int) (Example, error) {
	eos, ok := tok.EOS()
	if !ok {
		return Example{}, ErrNoEOS
	}
	// tooLong(n) reports, without tokenizing, that the text with a context
	// of n bytes cannot fit; -1 bytes of text may always be tokenized.
	textBytes := len(Template) - len("{context}") - len("{question}") + len(rec.Question) + len(Target(rec.Answer))
	tooLong := func(contextBytes int) bool { return false }
	if b, ok := tok.(Bounded); ok && maxLength > 0 {
		if n, ok := b.MaxBytesPerToken(); ok {
			// The ids are the text's tokens plus EOS: more than maxLength*n
			// bytes make more than maxLength tokens before EOS.
			tooLong = func(contextBytes int) bool { return textBytes+contextBytes > maxLength*n }
		}
	}
	if maxLength <= 0 || !tooLong(len(rec.Context)) {
		ex, err := build(tok, rec, eos)
		if err != nil || maxLength <= 0 || len(ex.InputIDs) <= maxLength {
			return ex, err
		}
	}
	// Binary search on the number of context bytes kept; lo always fits.
	short := rec
	short.Context = ""
	if tooLong(0) {
		return Example{}, fmt.Errorf("%w (%d bytes without context, over %d tokens' worth)", ErrTooLong, textBytes, maxLength)
	}
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
		if tooLong(mid) {
			hi = mid
			continue
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

func build(tok Encoder, rec Record, eos int) (Example, error) {
	p := Render(rec.Context, rec.Question)
	full, err := tok.Encode(p+Target(rec.Answer), true)
	if err != nil {
		return Example{}, fmt.Errorf("encode prompt and answer: %w", err)
	}
	prompt, err := tok.Encode(p, true)
	if err != nil {
		return Example{}, fmt.Errorf("encode prompt: %w", err)
	}
	n := 0
	for n < len(prompt) && n < len(full) && prompt[n] == full[n] {
		n++
	}
	ids := make([]int, len(full)+1)
	copy(ids, full)
	ids[len(full)] = eos
	labels := make([]int, len(ids))
	for i := range labels {
		if i < n {
			labels[i] = IgnoreIndex
		} else {
			labels[i] = ids[i]
		}
	}
	return Example{InputIDs: ids, Labels: labels}, nil
}
