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
type sampler struct {
	temperature, topP, penalty float64
	topK                       int
	rng                        *rand.Rand
	seen                       []bool // tokens in prompt or output, for the penalty
	idx                        []int  // scratch
	probs                      []float64
}

func newSampler(o GenerateOptions, vocab int, prompt []int) *sampler {
	sm := &sampler{temperature: o.Temperature, topP: o.TopP, penalty: o.RepetitionPenalty, topK: o.TopK,
		rng: rand.New(rand.NewPCG(uint64(o.Seed), 0x73616d706c65))}
	if sm.penalty != 0 && sm.penalty != 1 {
		sm.seen = make([]bool, vocab)
		for _, t := range prompt {
			sm.seen[t] = true
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

// next picks a token from logits (modified in place).
func (sm *sampler) next(logits []float32) int {
	if sm.seen != nil {
		p := float32(sm.penalty)
		for t, s := range sm.seen {
			if !s {
				continue
			}
			if logits[t] < 0 {
				logits[t] *= p
			} else {
				logits[t] /= p
			}
		}
	}
	if sm.temperature <= 0 {
		return argmax(logits)
	}
	inv := float32(1 / sm.temperature)
	for i := range logits {
		logits[i] *= inv
	}
	n := len(logits)
	if cap(sm.idx) < n {
		sm.idx = make([]int, n)
		sm.probs = make([]float64, n)
	}
	idx := sm.idx[:n]
	for i := range idx {
		idx[i] = i
	}
	keep := n
	if sm.topK > 0 && sm.topK < n {
		// transformers keeps every token scoring at least the k-th score.
		kth := kthLargest(logits, sm.topK)
		keep = 0
		for i, v := range logits {
			if v >= kth {
				idx[keep] = i
				keep++
			}
		}
	}
	idx = idx[:keep]
	// Softmax over the candidates.
	probs := sm.probs[:keep]
	maxv := float64(logits[idx[0]])
	for _, t := range idx {
		maxv = max(maxv, float64(logits[t]))
	}
	var sum float64
	for i, t := range idx {
		probs[i] = math.Exp(float64(logits[t]) - maxv)
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
	return idx[len(idx)-1]
}

func argmax(v []float32) int {
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
func kthLargest(v []float32, k int) float32 {
	h := make([]float32, 0, k)
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
