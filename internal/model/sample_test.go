package model

import (
	"math"
	"slices"
	"testing"
)

func TestSamplerGreedyAndPenalty(t *testing.T) {
	logits := []float32{1, 5, 3, -2}
	sm := newSampler(GenerateOptions{}, 4, nil)
	if got := sm.next(slices.Clone(logits)); got != 1 {
		t.Errorf("greedy picked %d, want 1", got)
	}
	// transformers' RepetitionPenaltyLogitsProcessor: positive scores are
	// divided, negative ones multiplied. 5/3 < 3 makes token 2 win.
	sm = newSampler(GenerateOptions{RepetitionPenalty: 3}, 4, []int{1, 3})
	l := slices.Clone(logits)
	if got := sm.next(l); got != 2 {
		t.Errorf("with penalty picked %d, want 2", got)
	}
	if l[1] != 5.0/3 || l[3] != -6 {
		t.Errorf("penalised logits %v", l)
	}
	sm.observe(2)
	// Now 2 is penalised too (3/3 = 1), and 1 (5/3) leads again.
	if got := sm.next(slices.Clone(logits)); got != 1 {
		t.Errorf("after 2 was generated, picked %d, want 1", got)
	}
}

// sampleCounts draws n tokens and counts them.
func sampleCounts(o GenerateOptions, logits []float32, n int) []int {
	sm := newSampler(o, len(logits), nil)
	counts := make([]int, len(logits))
	for i := 0; i < n; i++ {
		counts[sm.next(slices.Clone(logits))]++
	}
	return counts
}

func TestSamplerDistribution(t *testing.T) {
	logits := []float32{0, float32(math.Log(2)), float32(math.Log(3)), float32(math.Log(4))} // p = 1,2,3,4 / 10
	const n = 20000
	c := sampleCounts(GenerateOptions{Temperature: 1, Seed: 1}, logits, n)
	for i, want := range []float64{0.1, 0.2, 0.3, 0.4} {
		if got := float64(c[i]) / n; math.Abs(got-want) > 0.015 {
			t.Errorf("token %d drawn %.3f of the time, want %.1f", i, got, want)
		}
	}
	// top-k 2 keeps tokens 3 and 2 (renormalised 4:3).
	c = sampleCounts(GenerateOptions{Temperature: 1, TopK: 2, Seed: 2}, logits, n)
	if c[0] != 0 || c[1] != 0 || math.Abs(float64(c[3])/n-4.0/7) > 0.015 {
		t.Errorf("top-k 2 counts %v", c)
	}
	// top-p 0.6: 0.4 + 0.3 reaches it, so tokens 3 and 2 remain.
	c = sampleCounts(GenerateOptions{Temperature: 1, TopP: 0.6, Seed: 3}, logits, n)
	if c[0] != 0 || c[1] != 0 || c[2] == 0 {
		t.Errorf("top-p 0.6 counts %v", c)
	}
	// A low temperature sharpens towards the argmax.
	c = sampleCounts(GenerateOptions{Temperature: 0.05, Seed: 4}, logits, 2000)
	if c[3] < 1990 {
		t.Errorf("temperature 0.05 counts %v", c)
	}
	// The same seed gives the same draws; another seed other draws.
	a := sampleCounts(GenerateOptions{Temperature: 1, Seed: 9}, logits, 50)
	b := sampleCounts(GenerateOptions{Temperature: 1, Seed: 9}, logits, 50)
	if !slices.Equal(a, b) {
		t.Errorf("seed 9 twice: %v vs %v", a, b)
	}
}

func TestKthLargest(t *testing.T) {
	v := []float32{3, 9, 1, 9, 4, 7, 2}
	for k, want := range map[int]float32{1: 9, 2: 9, 3: 7, 4: 4, 7: 1} {
		if got := kthLargest(v, k); got != want {
			t.Errorf("k=%d: %v, want %v", k, got, want)
		}
	}
}
