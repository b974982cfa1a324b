package model

import (
	"math"
	"math/rand/v2"
	"sort"
)

// sampler picks the next token from a row of logits as transformers'
// generate() does: repetition penalty, then temperature, top-k and top-p,
// then a draw (or argmax when Temperature <= 0). It runs in Go on the one
// row copied out of libtorch, with its own RNG, so that a seed reproduces a
// sequence whatever else is in its batch.
//
// The arithmetic is float64 and written so that no parameter a request
// can give (a temperature of 1e-45, a penalty of 1e-300) turns a score
// into NaN: a tiny temperature draws among the best tokens, as greedy
// decoding picks the best one, and a NaN logit is never picked.
type sampler struct {
	temperature, topP, penalty float64
	topK                       int
	rng                        *rand.Rand
	seen                       []bool    // tokens in prompt or output, for the penalty
	scores                     []float64 // scratch: the penalised logits
	idx                        []int     // scratch
	probs                      []float64
}

func newSampler(o GenerateOptions, vocab int, prompt []int) *sampler {
	sm := &sampler{temperature: o.Temperature, topP: o.TopP, penalty: o.RepetitionPenalty, topK: o.TopK,
		rng: rand.New(rand.NewPCG(uint64(o.Seed), 0x73616d706c65))}
	if sm.penalty > 0 && sm.penalty != 1 && !math.IsInf(sm.penalty, 0) {
		sm.seen = make([]bool, vocab)
		for _, t := range prompt {
			if t >= 0 && t < vocab {
				sm.seen[t] = true
			}
		}
	}
	return sm
}

// observe records a generated token for the repetition penalty.
func (sm *sampler) observe(tok int) {
	if sm.seen != nil && tok >= 0 && tok < len(sm.seen) {
		sm.seen[tok] = true
	}
}

// greedy reports that next is the first largest logit (NaN as -Inf), so
// that a caller holding that index already may skip next.
func (sm *sampler) greedy() bool { return !(sm.temperature > 0) && sm.seen == nil }

// next picks a token from logits.
func (sm *sampler) next(logits []float32) int {
	n := len(logits)
	if n == 0 {
		return 0
	}
	if cap(sm.scores) < n {
		sm.scores = make([]float64, n)
		sm.idx = make([]int, n)
		sm.probs = make([]float64, n)
	}
	scores := sm.scores[:n]
	for i, l := range logits {
		scores[i] = float64(l)
		if math.IsNaN(scores[i]) {
			scores[i] = math.Inf(-1)
		}
	}
	if sm.seen != nil {
		for t, s := range sm.seen[:min(len(sm.seen), n)] {
			if !s {
				continue
			}
			if scores[t] < 0 {
				scores[t] *= sm.penalty
			} else {
				scores[t] /= sm.penalty
			}
		}
	}
	if !(sm.temperature > 0) { // 0 (greedy), or NaN from a caller that is not the server
		return argmax(scores)
	}
	idx := sm.idx[:n]
	for i := range idx {
		idx[i] = i
	}
	keep := n
	if sm.topK > 0 && sm.topK < n {
		// transformers keeps every token scoring at least the k-th score.
		// Dividing by the temperature keeps the order, so compare before.
		kth := kthLargest(scores, sm.topK)
		keep = 0
		for i, v := range scores {
			if v >= kth {
				idx[keep] = i
				keep++
			}
		}
	}
	idx = idx[:keep]
	// Softmax over the candidates, exp((score - max) / temperature). The
	// best scores get exactly 1 (also when they are +Inf) and the others
	// at most 1, so the sum is at least 1 and no weight is NaN.
	probs := sm.probs[:keep]
	maxv := math.Inf(-1)
	for _, t := range idx {
		maxv = max(maxv, scores[t])
	}
	var sum float64
	for i, t := range idx {
		d := 0.0
		if scores[t] != maxv {
			d = scores[t] - maxv
		}
		probs[i] = math.Exp(d / sm.temperature)
		if math.IsNaN(probs[i]) { // -Inf / +Inf: an infinitely hot -Inf score
			probs[i] = 0
		}
		sum += probs[i]
	}
	if sm.topP > 0 && sm.topP < 1 {
		// Keep the most likely tokens until their mass reaches top_p.
		sort.Stable(byProb{idx, probs})
		var cum float64
		cut := len(idx)
		for i, pr := range probs {
			cum += pr / sum
			if cum >= sm.topP {
				cut = i + 1
				break
			}
		}
		idx, probs = idx[:cut], probs[:cut]
		sum = 0
		for _, pr := range probs {
			sum += pr
		}
	}
	u := sm.rng.Float64() * sum
	var cum float64
	for i, pr := range probs {
		cum += pr
		if u < cum {
			return idx[i]
		}
	}
	// Rounding left u at the very top: the last token with any weight.
	for i := len(probs) - 1; i > 0; i-- {
		if probs[i] > 0 {
			return idx[i]
		}
	}
	return idx[0]
}

// argmax is the index of the first largest value of v.
func argmax[F float32 | float64](v []F) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// kthLargest returns the k-th largest value of v in O(len(v) log k), with
// a min-heap of the k largest seen so far.
func kthLargest(v []float64, k int) float64 {
	h := make([]float64, 0, k)
	down := func(i int) {
		for {
			l, small := 2*i+1, i
			if l < len(h) && h[l] < h[small] {
				small = l
			}
			if r := l + 1; r < len(h) && h[r] < h[small] {
				small = r
			}
			if small == i {
				return
			}
			h[i], h[small] = h[small], h[i]
			i = small
		}
	}
	for _, x := range v {
		if len(h) < k {
			h = append(h, x)
			for i := len(h) - 1; i > 0 && h[(i-1)/2] > h[i]; i = (i - 1) / 2 {
				h[i], h[(i-1)/2] = h[(i-1)/2], h[i]
			}
		} else if x > h[0] {
			h[0] = x
			down(0)
		}
	}
	return h[0]
}

// byProb sorts candidate ids by descending probability.
type byProb struct {
	idx   []int
	probs []float64
}

func (b byProb) Len() int           { return len(b.idx) }
func (b byProb) Less(i, j int) bool { return b.probs[i] > b.probs[j] }
func (b byProb) Swap(i, j int) {
	b.idx[i], b.idx[j] = b.idx[j], b.idx[i]
	b.probs[i], b.probs[j] = b.probs[j], b.probs[i]
}
