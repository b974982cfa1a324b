package squad

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		assert.Equal(t, c.em, ExactMatch(c.pred, c.answers...), "ExactMatch(%q, %q)", c.pred, c.answers)
		assert.InDelta(t, c.f1, F1(c.pred, c.answers...), 1e-12, "F1(%q, %q)", c.pred, c.answers)
		s.Add(c.pred, c.answers...)
		em += c.em
		f1 += c.f1
	}
	require.Equal(t, len(cases), s.N)
	assert.InDelta(t, em/5, s.ExactMatch(), 1e-12)
	assert.InDelta(t, f1/5, s.F1(), 1e-12)
	var empty Score
	assert.Zero(t, empty.ExactMatch())
	assert.Zero(t, empty.F1())
}
