package tokenizer

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kfllm/kfllm/internal/synth"
)

func TestTrainBPE(t *testing.T) {
	train, eval := synth.Generate(synth.Options{Seed: 3, Train: 400, Eval: 50})
	var texts []string
	for _, r := range train {
		texts = append(texts, r.Context, r.Question, r.Answer)
	}
	tok, err := TrainBPE(texts, 600)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 600 {
		t.Fatalf("vocab size %d, want 600", tok.VocabSize())
	}
	eos, ok := tok.EOS()
	if !ok || eos != 599 {
		t.Fatalf("EOS = %d, %v; want 599 (<|endoftext|> last)", eos, ok)
	}
	// Unseen text (held-out entities) still round-trips and is compressed.
	var bytes, ids int
	for _, r := range eval {
		got, err := tok.Encode(r.Context, false)
		if err != nil {
			t.Fatal(err)
		}
		back, err := tok.Decode(got, false)
		if err != nil {
			t.Fatal(err)
		}
		if back != r.Context {
			t.Fatalf("round trip: %q -> %q", r.Context, back)
		}
		bytes += len(r.Context)
		ids += len(got)
	}
	if ratio := float64(bytes) / float64(ids); ratio < 1.5 {
		t.Errorf("%.2f bytes per token on held-out text; merges should at least halve the ids of byte-level", ratio)
	}
	// The same corpus gives the same tokenizer, and what Save writes loads
	// back with the same ids.
	again, err := TrainBPE(texts, 600)
	if err != nil {
		t.Fatal(err)
	}
	if again.SHA256() != tok.SHA256() {
		t.Error("training twice gave different tokenizers")
	}
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatalf("Save wrote no tokenizer.json: %v", err)
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tok.Encode(eval[0].Context, false)
	b, _ := loaded.Encode(eval[0].Context, false)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("saved tokenizer encodes differently: %v vs %v", a, b)
	}
	if _, err := TrainBPE(nil, 600); err == nil {
		t.Error("training on nothing gave no error")
	}
	if _, err := TrainBPE(texts, 100); err == nil {
		t.Error("a vocab below 257 gave no error")
	}
}
