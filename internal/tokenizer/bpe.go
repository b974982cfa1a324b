package tokenizer

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	sugar "github.com/sugarme/tokenizer"
)

// BPE is a byte-pair-encoding model with the options of Hugging Face's
// models::bpe::BPE that sugarme v0.3.0 lacks: byte_fallback (unknown
// characters become <0xNN> byte tokens), ignore_merges (a word found whole in
// the vocabulary is not split) and fuse_unk. Merges are applied lowest rank
// first, leftmost first among equal ranks, as HF's priority queue does.
type BPE struct {
	vocab        map[string]int
	tokens       []string // id -> token ("" where the id is unused)
	merges       pairTable
	unk          string
	hasUnk       bool
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string         // continuing_subword_prefix
	suffix       string         // end_of_word_suffix
	byteIDs      [256]int32     // <0xNN> token ids for byte_fallback, -1 if none
	runeIDs      []int32        // id of single-rune tokens for runes < len(runeIDs), -1 if none
	wideRuneIDs  map[rune]int32 // the other single-rune tokens
	cache        *wordCache
}

var _ sugar.Model = (*BPE)(nil)

type mergeRule struct {
	rank  int32
	newID int32
}

// bpeConfig is HF's "model" object for type BPE.
type bpeConfig struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// parseMerges accepts both HF layouts: ["a b", ...] and [["a","b"], ...].
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, m := range strs {
			a, b, ok := strings.Cut(m, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("merge %d %q: want two tokens separated by one space", i, m)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("merges: want strings or pairs: %w", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("merge %d: want a pair, got %d items", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

func newBPE(cfg bpeConfig, merges [][2]string) (*BPE, error) {
	if cfg.Dropout != nil && *cfg.Dropout > 0 {
		return nil, fmt.Errorf("bpe dropout %v is not supported (it makes encoding random)", *cfg.Dropout)
	}
	if len(cfg.Vocab) == 0 {
		return nil, fmt.Errorf("bpe: empty vocab")
	}
	m := &BPE{
		vocab:        cfg.Vocab,
		merges:       newPairTable(len(merges)),
		fuseUnk:      cfg.FuseUnk,
		byteFallback: cfg.ByteFallback,
		ignoreMerges: cfg.IgnoreMerges,
		cache:        newWordCache(),
	}
	if cfg.ContinuingSubwordPrefix != nil {
		m.prefix = *cfg.ContinuingSubwordPrefix
	}
	if cfg.EndOfWordSuffix != nil {
		m.suffix = *cfg.EndOfWordSuffix
	}
	maxID := 0
	for tok, id := range cfg.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("bpe: token %q has negative id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	m.tokens = make([]string, maxID+1)
	for tok, id := range cfg.Vocab {
		m.tokens[id] = tok
	}
	if cfg.UnkToken != nil {
		if _, ok := cfg.Vocab[*cfg.UnkToken]; !ok {
			return nil, fmt.Errorf("bpe: unk_token %q is not in the vocab", *cfg.UnkToken)
		}
		m.unk, m.hasUnk = *cfg.UnkToken, true
	}
	for rank, p := range merges {
		a, okA := cfg.Vocab[p[0]]
		b, okB := cfg.Vocab[p[1]]
		if !okA || !okB {
			return nil, fmt.Errorf("bpe: merge %d (%q %q) uses a token not in the vocab", rank, p[0], p[1])
		}
		right := p[1]
		if m.prefix != "" {
			right = strings.TrimPrefix(right, m.prefix)
		}
		n, ok := cfg.Vocab[p[0]+right]
		if !ok {
			return nil, fmt.Errorf("bpe: merge %d result %q is not in the vocab", rank, p[0]+right)
		}
		m.merges.putIfAbsent(pairKey(int32(a), int32(b)), mergeRule{rank: int32(rank), newID: int32(n)})
	}
	m.runeIDs = make([]int32, 0x400)
	for r := range m.runeIDs {
		m.runeIDs[r] = -1
	}
	m.wideRuneIDs = map[rune]int32{}
	for tok, id := range cfg.Vocab {
		r, n := utf8.DecodeRuneInString(tok)
		if n != len(tok) || r == utf8.RuneError {
			continue
		}
		if int(r) < len(m.runeIDs) {
			m.runeIDs[r] = int32(id)
		} else {
			m.wideRuneIDs[r] = int32(id)
		}
	}
	for b := range m.byteIDs {
		m.byteIDs[b] = -1
		if id, ok := cfg.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok && m.byteFallback {
			m.byteIDs[b] = int32(id)
		}
	}
	return m, nil
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// symbol is one piece of a word during merging, in a doubly linked list.
type symbol struct {
	id         int32
	prev, next int32
	size       int32 // bytes of the original word covered; 0 once merged away
}

type mergeItem struct {
	pos   int32
	rank  int32
	newID int32
}

// mergeQueue is a binary min-heap of merges by (rank, pos), typed to avoid
// container/heap's boxing.
type mergeQueue []mergeItem

func (q mergeQueue) less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}

func (q *mergeQueue) push(it mergeItem) {
	*q = append(*q, it)
	h := *q
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *mergeQueue) pop() mergeItem {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h.less(l, m) {
			m = l
		}
		if r < n && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

// appendIDs appends the ids of word to dst.
func (m *BPE) appendIDs(dst []int, word string) []int {
	if word == "" {
		return dst
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(dst, id)
		}
	}
	cacheable := len(word) < maxCachedWord
	if cacheable {
		if ids, ok := m.cache.get(word); ok {
			for _, id := range ids {
				dst = append(dst, int(id))
			}
			return dst
		}
	}
	syms := m.initialSymbols(word)
	syms = m.mergeAll(syms)
	start := len(dst)
	for i := 0; i != -1 && i < len(syms); i = int(syms[i].next) {
		if syms[i].size == 0 {
			continue
		}
		dst = append(dst, int(syms[i].id))
	}
	if cacheable {
		ids := make([]int32, len(dst)-start)
		for k, id := range dst[start:] {
			ids[k] = int32(id)
		}
		m.cache.put(word, ids)
	}
	return dst
}

const maxCachedWord = 256

// initialSymbols splits word into characters and looks each up, as HF's
// BPE::merge_word does before merging.
func (m *BPE) initialSymbols(word string) []symbol {
	syms := make([]symbol, 0, len(word))
	var unkID, unkLen int32 = -1, 0
	add := func(id, size int32) {
		n := int32(len(syms))
		syms = append(syms, symbol{id: id, prev: n - 1, next: n + 1, size: size})
	}
	plain := m.prefix == "" && m.suffix == ""
	for i := 0; i < len(word); {
		r, n := utf8.DecodeRuneInString(word[i:])
		end := i + n
		var id int32 = -1
		if plain && n == utf8.RuneLen(r) {
			if int(r) < len(m.runeIDs) {
				id = m.runeIDs[r]
			} else if v, ok := m.wideRuneIDs[r]; ok {
				id = v
			}
		}
		if id < 0 {
			s := word[i:end]
			if i > 0 && m.prefix != "" {
				s = m.prefix + s
			}
			if end == len(word) && m.suffix != "" {
				s += m.suffix
			}
			if v, ok := m.vocab[s]; ok {
				id = int32(v)
			} else if m.byteFallback {
				// HF falls back to unk unless every byte has a <0xNN> token.
				if m.allBytesKnown(s) {
					for k := 0; k < len(s); k++ {
						add(m.byteIDs[s[k]], 1)
					}
					i = end
					continue
				}
			}
		}
		if id >= 0 {
			if unkID >= 0 {
				add(unkID, unkLen)
				unkID = -1
			}
			add(id, int32(n))
		} else if m.hasUnk {
			u := int32(m.vocab[m.unk])
			switch {
			case unkID >= 0 && m.fuseUnk:
				unkLen += int32(n)
			case unkID >= 0:
				add(unkID, unkLen)
				unkID, unkLen = u, int32(n)
			default:
				unkID, unkLen = u, int32(n)
			}
		}
		i = end
	}
	if unkID >= 0 {
		add(unkID, unkLen)
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	return syms
}

func (m *BPE) allBytesKnown(s string) bool {
	for i := 0; i < len(s); i++ {
		if m.byteIDs[s[i]] < 0 {
			return false
		}
	}
	return len(s) > 0
}

// mergeAll applies merges as HF's Word::merge_all does.
func (m *BPE) mergeAll(syms []symbol) []symbol {
	if len(syms) < 2 {
		return syms
	}
	if len(syms) <= 24 {
		return m.mergeSmall(syms)
	}
	q := make(mergeQueue, 0, len(syms))
	for i := 0; i+1 < len(syms); i++ {
		if r, ok := m.merges.get(pairKey(syms[i].id, syms[i+1].id)); ok {
			q = append(q, mergeItem{pos: int32(i), rank: r.rank, newID: r.newID})
		}
	}
	// Built in index order, so it is already a valid heap only if sorted;
	// re-heapify by pushing.
	items := q
	q = make(mergeQueue, 0, len(items))
	for _, it := range items {
		q.push(it)
	}
	for len(q) > 0 {
		top := q.pop()
		cur := &syms[top.pos]
		if cur.size == 0 || cur.next == -1 {
			continue
		}
		nextPos := cur.next
		right := syms[nextPos]
		r, ok := m.merges.get(pairKey(cur.id, right.id))
		if !ok || r.newID != top.newID {
			continue
		}
		cur.id = top.newID
		cur.size += right.size
		cur.next = right.next
		syms[nextPos].size = 0
		if right.next >= 0 && int(right.next) < len(syms) {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if r, ok := m.merges.get(pairKey(syms[cur.prev].id, cur.id)); ok {
				q.push(mergeItem{pos: cur.prev, rank: r.rank, newID: r.newID})
			}
		}
		if cur.next >= 0 {
			if r, ok := m.merges.get(pairKey(cur.id, syms[cur.next].id)); ok {
				q.push(mergeItem{pos: top.pos, rank: r.rank, newID: r.newID})
			}
		}
	}
	return syms
}

// mergeSmall is mergeAll for short words: repeatedly merge the pair of lowest
// rank, leftmost first, which is the order HF's queue yields.
func (m *BPE) mergeSmall(syms []symbol) []symbol {
	ids := make([]int32, len(syms))
	for i := range syms {
		ids[i] = syms[i].id
	}
	for len(ids) > 1 {
		best, bestRank, bestID := -1, int32(0), int32(0)
		for i := 0; i+1 < len(ids); i++ {
			if r, ok := m.merges.get(pairKey(ids[i], ids[i+1])); ok && (best < 0 || r.rank < bestRank) {
				best, bestRank, bestID = i, r.rank, r.newID
			}
		}
		if best < 0 {
			break
		}
		ids[best] = bestID
		ids = append(ids[:best+1], ids[best+2:]...)
	}
	out := syms[:len(ids)]
	for i, id := range ids {
		out[i] = symbol{id: id, prev: int32(i - 1), next: int32(i + 1), size: 1}
	}
	out[len(out)-1].next = -1
	return out
}

// Tokenize implements sugarme's tokenizer.Model.
func (m *BPE) Tokenize(sequence string) ([]sugar.Token, error) {
	ids := m.appendIDs(nil, sequence)
	toks := make([]sugar.Token, len(ids))
	// Offsets are approximate (the fast path needs none); they stay within the
	// sequence so that sugarme's encoding bookkeeping accepts them.
	off := 0
	for i, id := range ids {
		v, _ := m.IdToToken(id)
		end := min(off+len(v), len(sequence))
		toks[i] = sugar.NewToken(id, v, []int{off, end})
		off = end
	}
	return toks, nil
}

// TokenToId implements sugarme's tokenizer.Model.
func (m *BPE) TokenToId(token string) (int, bool) {
	id, ok := m.vocab[token]
	return id, ok
}

// IdToToken implements sugarme's tokenizer.Model.
func (m *BPE) IdToToken(id int) (string, bool) {
	if id < 0 || id >= len(m.tokens) || m.tokens[id] == "" {
		return "", false
	}
	return m.tokens[id], true
}

// GetVocab implements sugarme's tokenizer.Model.
func (m *BPE) GetVocab() map[string]int {
	out := make(map[string]int, len(m.vocab))
	for k, v := range m.vocab {
		out[k] = v
	}
	return out
}

// GetVocabSize implements sugarme's tokenizer.Model.
func (m *BPE) GetVocabSize() int { return len(m.vocab) }

// Save implements sugarme's tokenizer.Model: it writes vocab.json and
// merges.txt (the names transformers' GPT2Tokenizer reads) into dir.
func (m *BPE) Save(dir string, prefixOpt ...string) error {
	prefix := ""
	if len(prefixOpt) > 0 && prefixOpt[0] != "" {
		prefix = prefixOpt[0] + "-"
	}
	vb, err := json.Marshal(m.vocab)
	if err != nil {
		return fmt.Errorf("save bpe vocab: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, prefix+"vocab.json"), vb, 0o644); err != nil {
		return fmt.Errorf("save bpe vocab: %w", err)
	}
	var b strings.Builder
	b.WriteString("#version: 0.2\n")
	for _, p := range m.mergeList() {
		b.WriteString(p[0] + " " + p[1] + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, prefix+"merges.txt"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("save bpe merges: %w", err)
	}
	return nil
}

// mergeList returns the merges in rank order.
func (m *BPE) mergeList() [][2]string {
	out := make([][2]string, m.merges.maxRank+1)
	for i, k := range m.merges.keys {
		if k == 0 {
			continue
		}
		k--
		out[m.merges.vals[i].rank] = [2]string{m.tokens[int32(k>>32)], m.tokens[int32(uint32(k))]}
	}
	// Duplicate merges in the source keep only their first rank, which leaves
	// holes; drop them.
	j := 0
	for _, p := range out {
		if p[0] != "" || p[1] != "" {
			out[j] = p
			j++
		}
	}
	return out[:j]
}

// wordCache memoizes word -> ids, sharded so that EncodeBatch workers rarely
// contend. Like HF's cache it stops inserting once full.
type wordCache struct {
	seed   maphash.Seed
	shards [64]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string][]int32
}

const cacheShardCap = 10000 / 64 * 4

func newWordCache() *wordCache {
	c := &wordCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[string][]int32)
	}
	return c
}

func (c *wordCache) shard(s string) *cacheShard {
	return &c.shards[maphash.String(c.seed, s)%uint64(len(c.shards))]
}

func (c *wordCache) get(s string) ([]int32, bool) {
	sh := c.shard(s)
	sh.mu.RLock()
	v, ok := sh.m[s]
	sh.mu.RUnlock()
	return v, ok
}

func (c *wordCache) put(s string, ids []int32) {
	sh := c.shard(s)
	sh.mu.Lock()
	if len(sh.m) < cacheShardCap {
		sh.m[strings.Clone(s)] = ids
	}
	sh.mu.Unlock()
}

// pairTable is an open-addressing hash table from a token pair to its merge,
// about twice as fast as a Go map on this hot path. Keys are stored plus one
// so that zero marks an empty slot.
type pairTable struct {
	keys    []uint64
	vals    []mergeRule
	shift   uint
	maxRank int32
}

func newPairTable(n int) pairTable {
	size, shift := 16, uint(60)
	for size < 2*n {
		size *= 2
		shift--
	}
	return pairTable{keys: make([]uint64, size), vals: make([]mergeRule, size), shift: shift, maxRank: -1}
}

func (t *pairTable) slot(k uint64) int { return int((k * 0x9E3779B97F4A7C15) >> t.shift) }

func (t *pairTable) putIfAbsent(k uint64, v mergeRule) {
	k++
	mask := len(t.keys) - 1
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case 0:
			t.keys[i], t.vals[i] = k, v
			t.maxRank = max(t.maxRank, v.rank)
			return
		case k:
			return
		}
	}
}

func (t *pairTable) get(k uint64) (mergeRule, bool) {
	k++
	mask := len(t.keys) - 1
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case k:
			return t.vals[i], true
		case 0:
			return mergeRule{}, false
		}
	}
}
