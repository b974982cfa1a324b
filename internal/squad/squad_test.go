package squad

import (
	"math"
	"testing"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"The Eiffel Tower!":    "eiffel tower",
		"  an   Apple, a day ": "apple day",
		"1,987":                "1987",
		"Théâtre":              "théâtre",
		"":                     "",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// The cases follow SQuAD v1.1's evaluate-v1.1.py on the same strings.
func TestScores(t *testing.T) {
	cases := []struct {
		pred    string
		answers []string
		em, f1  float64
	}{
		{"Denver Broncos", []string{"Denver Broncos", "The Denver Broncos"}, 1, 1},
		{"the Broncos", []string{"Denver Broncos"}, 0, 2 * 1.0 * 0.5 / 1.5},
		{"Paris", []string{"London"}, 0, 0},
		{"in 1990", []string{"1990"}, 0, 2 * 0.5 * 1 / 1.5},
		{"", []string{"1990"}, 0, 0},
	}
	var s Score
	var em, f1 float64
	for _, c := range cases {
		if got := ExactMatch(c.pred, c.answers...); got != c.em {
			t.Errorf("ExactMatch(%q, %q) = %v, want %v", c.pred, c.answers, got, c.em)
		}
		if got := F1(c.pred, c.answers...); math.Abs(got-c.f1) > 1e-12 {
			t.Errorf("F1(%q, %q) = %v, want %v", c.pred, c.answers, got, c.f1)
		}
		s.Add(c.pred, c.answers...)
		em += c.em
		f1 += c.f1
	}
	if s.N != len(cases) || math.Abs(s.ExactMatch()-em/5) > 1e-12 || math.Abs(s.F1()-f1/5) > 1e-12 {
		t.Errorf("Score = %d %v %v, want %d %v %v", s.N, s.ExactMatch(), s.F1(), len(cases), em/5, f1/5)
	}
	var empty Score
	if empty.ExactMatch() != 0 || empty.F1() != 0 {
		t.Error("empty score is not zero")
	}
}
