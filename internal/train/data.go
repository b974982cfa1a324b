package train

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"

	"github.com/kfllm/kfllm/internal/shards"
)

// shard is one token shard (train.safetensors or eval.safetensors) held in
// memory: int32 input_ids, labels (-100 = no loss) and attention_mask, all
// [n, length] row-major.
type shard struct {
	n, length int
	ids       []int32
	labels    []int32
	mask      []int32
}

// readShard reads dir/name as docs/design.md §3 defines token shards.
func readShard(dir, name string) (*shard, error) {
	p := filepath.Join(dir, name)
	s, err := shards.ReadShard(p)
	if err != nil {
		return nil, fmt.Errorf("read token shard: %w", err)
	}
	if s.N == 0 || s.L < 2 {
		return nil, fmt.Errorf("read token shard %s: shape [%d %d] holds no trainable example", p, s.N, s.L)
	}
	return &shard{ids: s.InputIDs, labels: s.Labels, mask: s.AttentionMask, n: s.N, length: s.L}, nil
}

// batch is a micro-batch ready for ForwardAt: ids and mask [b*t] (mask nil
// when every row is right-padded, which causal attention makes equivalent
// to no mask for the positions that carry loss), the flattened positions
// whose next-token label is not -100, and those labels.
type batch struct {
	b, t    int
	ids     []int64
	mask    []int64
	at      []int64
	targets []int64
	tokens  int // input tokens (attention mask ones), for tokens/s
}

// makeBatch gathers rows of sh. Columns past the last real token of every
// row are trimmed; labels are shifted by one as in transformers' causal LM
// loss (the logits at position j predict labels[j+1]).
func (sh *shard) makeBatch(rows []int) *batch {
	L := sh.length
	t := 1
	rightPadded := true
	for _, r := range rows {
		last := -1
		seenPad := false
		for j := 0; j < L; j++ {
			i := r*L + j
			if sh.mask[i] != 0 {
				last = j
				if seenPad {
					rightPadded = false
				}
			} else {
				seenPad = true
			}
			if sh.labels[i] != -100 && j > last {
				last = j
			}
		}
		t = max(t, last+1)
	}
	bt := &batch{b: len(rows), t: t, ids: make([]int64, len(rows)*t)}
	if !rightPadded {
		bt.mask = make([]int64, len(rows)*t)
	}
	for k, r := range rows {
		for j := 0; j < t; j++ {
			i := r*L + j
			bt.ids[k*t+j] = int64(sh.ids[i])
			if sh.mask[i] != 0 {
				bt.tokens++
			}
			if bt.mask != nil {
				bt.mask[k*t+j] = int64(sh.mask[i])
			}
			if j+1 < t {
				if lab := sh.labels[i+1]; lab != -100 {
					bt.at = append(bt.at, int64(k*t+j))
					bt.targets = append(bt.targets, int64(lab))
				}
			}
		}
	}
	return bt
}

// order is the epoch's row order: a permutation seeded by (seed, epoch),
// so that any step's batch can be found again after a restart.
func order(n int, seed int64, epoch int) []int {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(epoch)+0x9e3779b97f4a7c15))
	return rng.Perm(n)
}

// plan maps optimizer steps to micro-batches: each epoch has
// ceil(n/batchSize) micro-batches, grouped gradAccum at a time (the last
// group of an epoch may be shorter, as the Hugging Face Trainer steps on
// it too).
type plan struct {
	n, batchSize, gradAccum int
	seed                    int64
	shuffle                 bool
}

func (p plan) microPerEpoch() int { return (p.n + p.batchSize - 1) / p.batchSize }

func (p plan) stepsPerEpoch() int { return (p.microPerEpoch() + p.gradAccum - 1) / p.gradAccum }

// step returns the epoch of a 0-based optimizer step and the row lists of
// its micro-batches.
func (p plan) step(s int, cache map[int][]int) (epoch int, micro [][]int) {
	spe := p.stepsPerEpoch()
	epoch = s / spe
	perm, ok := cache[epoch]
	if !ok {
		if p.shuffle {
			perm = order(p.n, p.seed, epoch)
		} else {
			perm = make([]int, p.n)
			for i := range perm {
				perm[i] = i
			}
		}
		clear(cache)
		cache[epoch] = perm
	}
	first := (s % spe) * p.gradAccum
	for m := first; m < first+p.gradAccum && m < p.microPerEpoch(); m++ {
		lo, hi := m*p.batchSize, min((m+1)*p.batchSize, p.n)
		micro = append(micro, perm[lo:hi])
	}
	return epoch, micro
}
