package synth

import (
	"reflect"
	"strings"
	"testing"
)

func TestGenerateIsDeterministic(t *testing.T) {
	a1, b1 := Generate(Options{Seed: 7, Train: 50, Eval: 20})
	a2, b2 := Generate(Options{Seed: 7, Train: 50, Eval: 20})
	if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(b1, b2) {
		t.Fatal("same seed gave different records")
	}
	a3, _ := Generate(Options{Seed: 8, Train: 50, Eval: 20})
	if reflect.DeepEqual(a1, a3) {
		t.Fatal("different seeds gave the same records")
	}
}

func TestAnswersAreSpansAndHeldOutIsUnseen(t *testing.T) {
	train, eval := Generate(Options{Seed: 1, Train: 3000, Eval: 300})
	if len(train) != 3000 || len(eval) != 300 {
		t.Fatalf("got %d/%d records", len(train), len(eval))
	}
	trainText := map[string]bool{}
	sentences := map[string]bool{}
	relations := map[string]int{}
	for _, r := range train {
		if !strings.Contains(r.Context, r.Answer) || r.Answer == "" {
			t.Fatalf("answer %q not a span of %q", r.Answer, r.Context)
		}
		for _, w := range strings.Fields(r.Context + " " + r.Question) {
			trainText[strings.Trim(w, ".,?")] = true
		}
		for _, s := range strings.SplitAfter(r.Context, ". ") {
			sentences[shape(s)] = true
		}
		relations[r.Relation]++
	}
	if len(relations) != len(rel()) {
		t.Fatalf("training asks about %d relations, want %d", len(relations), len(rel()))
	}
	for _, r := range eval {
		if !strings.Contains(r.Context, r.Answer) {
			t.Fatalf("held-out answer %q not a span of %q", r.Answer, r.Context)
		}
		// Names, places and companies of the held-out set never occur in
		// training text (numbers and years may).
		if !isNumber(r.Answer) {
			for _, w := range strings.Fields(r.Answer) {
				if trainText[w] && !isCommon(w) {
					t.Errorf("held-out answer word %q occurs in training text", w)
				}
			}
		}
		for _, s := range strings.SplitAfter(r.Context, ". ") {
			if sentences[shape(s)] {
				t.Errorf("held-out sentence %q has a training template", s)
			}
		}
	}
}

func rel() []relation { return relations }

// shape is a sentence with capitalised words and numbers blanked, close
// enough to its template to compare templates.
func shape(s string) string {
	f := strings.Fields(s)
	for i, w := range f {
		if w[0] >= 'A' && w[0] <= 'Z' && i > 0 || isNumber(strings.Trim(w, ".,")) {
			f[i] = "_"
		}
	}
	return strings.Join(f[1:], " ")
}

func isNumber(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// isCommon allows the company kind words (Labs, Motors, ...), shared by both
// sides on purpose.
func isCommon(w string) bool {
	for _, c := range corp {
		if w == c {
			return true
		}
	}
	return false
}
