package model

import (
	"encoding/binary"
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
	if sm.scores[1] != 5.0/3 || sm.scores[3] != -6 {
		t.Errorf("penalised logits %v", sm.scores)
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
	v := []float64{3, 9, 1, 9, 4, 7, 2}
	for k, want := range map[int]float64{1: 9, 2: 9, 3: 7, 4: 4, 7: 1} {
		if got := kthLargest(v, k); got != want {
			t.Errorf("k=%d: %v, want %v", k, got, want)
		}
	}
}

// TestSamplerExtremeParameters: parameters the server accepts, however
// small or large, give the token they tend to, never garbage. Before the
// arithmetic moved to float64, 1/1e-45 overflowed float32 to +Inf, every
// weight became NaN and the draw fell through to the last token (the worst
// one here), and a penalty of 1e-300 became 0 in float32 (5/0 = +Inf).
func TestSamplerExtremeParameters(t *testing.T) {
	logits := []float32{1, 5, 3, -2}
	for _, c := range []struct {
		name   string
		o      GenerateOptions
		prompt []int
		want   int
	}{
		{"temperature 1e-45", GenerateOptions{Temperature: 1e-45}, nil, 1},
		{"temperature 5e-324", GenerateOptions{Temperature: 5e-324}, nil, 1},
		{"temperature 1e-45, top-k 2", GenerateOptions{Temperature: 1e-45, TopK: 2}, nil, 1},
		{"temperature 1e-45, top-p 0.5", GenerateOptions{Temperature: 1e-45, TopP: 0.5}, nil, 1},
		// A tiny penalty makes repeating irresistible: token 2's 3 is no
		// match for 3/1e-300.
		{"penalty 1e-300", GenerateOptions{Temperature: 1, RepetitionPenalty: 1e-300}, []int{2, 3}, 2},
		{"penalty 5e-324", GenerateOptions{Temperature: 1, RepetitionPenalty: 5e-324}, []int{2, 3}, 2},
		{"penalty 1e-300, greedy", GenerateOptions{RepetitionPenalty: 1e-300}, []int{2, 3}, 2},
		// A huge one makes it impossible: token 1 falls to 5e-300.
		{"penalty 1e300", GenerateOptions{Temperature: 1e-3, RepetitionPenalty: 1e300}, []int{1}, 2},
		{"penalty 1e-300, temperature 1e-45", GenerateOptions{Temperature: 1e-45, RepetitionPenalty: 1e-300}, []int{0}, 0},
	} {
		sm := newSampler(c.o, len(logits), c.prompt)
		for i := range 200 {
			if got := sm.next(slices.Clone(logits)); got != c.want {
				t.Errorf("%s: draw %d picked %d, want %d", c.name, i, got, c.want)
				break
			}
		}
	}
	// A NaN or -Inf score from the model is never picked.
	bad := []float32{float32(math.NaN()), 1, float32(math.Inf(-1)), 2}
	for _, o := range []GenerateOptions{{}, {Temperature: 1}, {Temperature: 1e-45}, {Temperature: 1e300}} {
		sm := newSampler(o, len(bad), nil)
		for range 200 {
			if got := sm.next(slices.Clone(bad)); got != 1 && got != 3 {
				t.Errorf("%+v: picked %d (NaN or -Inf)", o, got)
				break
			}
		}
	}
}

// FuzzSampler: for any parameters the server accepts (temperature >= 0,
// top_p in (0, 1], top_k >= 0, repetition_penalty > 0) and any logits, the
// token picked is in range, not a NaN or -Inf score while a real one
// exists, inside top-k, and the best token when the temperature is so low
// that nothing else has any weight.
// Run longer with: go test -fuzz FuzzSampler ./internal/model
func FuzzSampler(f *testing.F) {
	le := func(v ...float32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return b
	}
	f.Add(1e-45, 0.0, 1e-300, 0, uint64(1), []byte{2, 3}, le(1, 5, 3, -2))
	f.Add(0.7, 0.9, 1.3, 2, uint64(2), []byte{1}, le(1, 5, 3, -2, 4))
	f.Add(1e300, 1.0, 1e300, 1, uint64(3), []byte{0, 1}, le(0, 0, float32(math.Inf(1)), float32(math.NaN())))
	f.Add(0.0, 0.5, 5e-324, 0, uint64(4), []byte{3}, le(-1e38, 3e38, 7, 7))
	f.Fuzz(func(t *testing.T, temp, topP, penalty float64, topK int, seed uint64, prompt, raw []byte) {
		if temp < 0 || topP < 0 || topP > 1 || penalty <= 0 || topK < 0 ||
			math.IsNaN(temp) || math.IsInf(temp, 0) || math.IsNaN(penalty) || math.IsInf(penalty, 0) || math.IsNaN(topP) {
			return // the server refuses these (JSON has no NaN or Inf)
		}
		n := len(raw) / 4
		if n == 0 || n > 64 {
			return
		}
		logits := make([]float32, n)
		for i := range logits {
			logits[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		ids := make([]int, len(prompt))
		for i, b := range prompt {
			ids[i] = int(b) % n
		}
		o := GenerateOptions{Temperature: temp, TopP: topP, TopK: topK, RepetitionPenalty: penalty, Seed: int64(seed)}
		sm := newSampler(o, n, ids)
		got := sm.next(slices.Clone(logits))
		if got < 0 || got >= n {
			t.Fatalf("picked %d of %d", got, n)
		}
		// The scores as the sampler saw them: float64, NaN as -Inf, and
		// the penalty applied once to each token of the prompt.
		scores := make([]float64, n)
		seen := make([]bool, n)
		for _, id := range ids {
			seen[id] = true
		}
		best, second := math.Inf(-1), math.Inf(-1)
		for i, l := range logits {
			s := float64(l)
			if math.IsNaN(s) {
				s = math.Inf(-1)
			}
			if seen[i] && penalty != 1 {
				if s < 0 {
					s *= penalty
				} else {
					s /= penalty
				}
			}
			scores[i] = s
			if s > best {
				best, second = s, best
			} else if s > second {
				second = s
			}
		}
		if !math.IsInf(best, -1) && math.IsInf(scores[got], -1) {
			t.Fatalf("%+v %v: picked %d, a NaN or -Inf score", o, logits, got)
		}
		if temp > 0 && topK > 0 && topK < n {
			sorted := slices.Clone(scores)
			slices.Sort(sorted)
			if kth := sorted[n-topK]; scores[got] < kth {
				t.Fatalf("%+v %v: picked %d (score %g) outside the top %d (>= %g)", o, logits, got, scores[got], topK, kth)
			}
		}
		// So cold that only the best token has weight: (second-best)/temp
		// is below -1e6, exp of which is 0.
		if (temp == 0 || (best-second)/temp > 1e6) && !math.IsInf(best, 0) && scores[got] != best {
			t.Fatalf("%+v %v: picked %d (score %g), the best is %g", o, logits, got, scores[got], best)
		}
	})
}
