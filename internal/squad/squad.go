// Package squad scores extractive answers the way the SQuAD v1.1 evaluation
// script does: exact match and token F1 after normalisation (lower case, no
// punctuation, no articles, single spaces), each the best over the accepted
// answers, averaged into a Score.
package squad

import "strings"

// asciiPunctuation is Python's string.punctuation, which SQuAD strips.
const asciiPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// Normalize lower-cases s, drops punctuation and the articles a, an, the,
// and folds white space, as SQuAD's normalize_answer does.
func Normalize(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if strings.ContainsRune(asciiPunctuation, r) {
			return -1
		}
		return r
	}, s)
	fields := strings.Fields(s)
	out := fields[:0]
	for _, f := range fields {
		if f != "a" && f != "an" && f != "the" {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}

// ExactMatch is 1 when the normalised prediction equals one of the
// normalised answers, else 0.
func ExactMatch(prediction string, answers ...string) float64 {
	p := Normalize(prediction)
	for _, a := range answers {
		if p == Normalize(a) {
			return 1
		}
	}
	return 0
}

// F1 is the best token-overlap F1 between the prediction and an answer.
func F1(prediction string, answers ...string) float64 {
	best := 0.0
	pt := strings.Fields(Normalize(prediction))
	for _, a := range answers {
		if f := tokenF1(pt, strings.Fields(Normalize(a))); f > best {
			best = f
		}
	}
	return best
}

func tokenF1(pred, gold []string) float64 {
	if len(pred) == 0 || len(gold) == 0 {
		// SQuAD v2 convention: both empty is a match, one empty is not.
		if len(pred) == len(gold) {
			return 1
		}
		return 0
	}
	counts := make(map[string]int, len(gold))
	for _, g := range gold {
		counts[g]++
	}
	same := 0
	for _, p := range pred {
		if counts[p] > 0 {
			counts[p]--
			same++
		}
	}
	if same == 0 {
		return 0
	}
	precision := float64(same) / float64(len(pred))
	recall := float64(same) / float64(len(gold))
	return 2 * precision * recall / (precision + recall)
}

// Score accumulates exact match and F1 over a set of questions.
type Score struct {
	N         int
	exact, f1 float64
}

// Add scores one prediction against its accepted answers.
func (s *Score) Add(prediction string, answers ...string) {
	s.N++
	s.exact += ExactMatch(prediction, answers...)
	s.f1 += F1(prediction, answers...)
}

// ExactMatch is the mean exact match, in [0, 1]; 0 when nothing was added.
func (s *Score) ExactMatch() float64 {
	if s.N == 0 {
		return 0
	}
	return s.exact / float64(s.N)
}

// F1 is the mean token F1, in [0, 1]; 0 when nothing was added.
func (s *Score) F1() float64 {
	if s.N == 0 {
		return 0
	}
	return s.f1 / float64(s.N)
}
