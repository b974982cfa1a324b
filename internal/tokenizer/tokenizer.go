package tokenizer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/renameio/v2"
	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/normalizer"
	"github.com/sugarme/tokenizer/pretrained"
)

// Tokenizer encodes text to token ids and decodes ids to text with the
// results of Hugging Face's `tokenizers` for the same tokenizer files. It is
// safe for concurrent use.
type Tokenizer struct {
	sugar   *sugar.Tokenizer // sugarme pipeline: model, normalizer, pre-tokenizer, decoder
	model   sugar.Model
	bpe     *BPE             // == model when it is a BPE (fast path possible)
	fast    bool             // every stage has a string form
	norm    stringNormalizer // fast path (nil: none)
	pre     stringPreTokenizer
	post    postProcessor
	decoder sugar.Decoder
	added   *addedVocab
	// bytesPerToken is MaxBytesPerToken's bound (0: none).
	bytesPerToken int

	bos, eos, pad int // -1 when absent
	vocabSize     int

	dir  string
	src  []string    // source files, as found in dir
	save []namedFile // what Save writes
	sha  string
}

type namedFile struct {
	name string
	data []byte
}

type options struct {
	slow bool
}

// Option configures Load.
type Option func(*options)

// withSugarmePipeline forces every encode through sugarme's own pipeline (the
// path used for components without a string form); tests compare the two.
func withSugarmePipeline() Option { return func(o *options) { o.slow = true } }

// copiedFiles are the tokenizer files Save carries over from a directory with
// a tokenizer.json, when present.
var copiedFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.model", "vocab.json", "merges.txt"}

// Load reads a tokenizer from a directory holding tokenizer.json (with
// tokenizer_config.json / special_tokens_map.json for BOS, EOS and PAD) or
// GPT-2's encoder.json + vocab.bpe. A tokenizer on the Hub is resolved to a
// directory first (hub.ParseRef, Ref.Resolve with hub.TokenizerFiles).
func Load(dir string, opts ...Option) (*Tokenizer, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if fi, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load tokenizer %s: no such directory: %w", dir, err)
		}
		return nil, fmt.Errorf("load tokenizer %s: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("load tokenizer %s: not a directory", dir)
	}
	t, err := loadDir(dir, o)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", dir, err)
	}
	return t, nil
}

func readIfExists(p string) ([]byte, bool, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

func loadDir(dir string, o options) (*Tokenizer, error) {
	var (
		cfgJSON     []byte
		tokCfg      []byte
		specialsMap []byte
		src         []string
		save        []namedFile
	)
	tj, ok, err := readIfExists(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	if ok {
		cfgJSON = tj
		for _, name := range copiedFiles {
			b, ok, err := readIfExists(filepath.Join(dir, name))
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			src = append(src, filepath.Join(dir, name))
			save = append(save, namedFile{name, b})
			switch name {
			case "tokenizer_config.json":
				tokCfg = b
			case "special_tokens_map.json":
				specialsMap = b
			}
		}
	} else {
		enc, okE, err := readIfExists(filepath.Join(dir, "encoder.json"))
		if err != nil {
			return nil, err
		}
		merges, okM, err := readIfExists(filepath.Join(dir, "vocab.bpe"))
		if err != nil {
			return nil, err
		}
		if !okE || !okM {
			return nil, fmt.Errorf("no tokenizer.json, nor encoder.json + vocab.bpe, in %s", dir)
		}
		g, err := gpt2Files(enc, merges)
		if err != nil {
			return nil, err
		}
		cfgJSON, tokCfg, specialsMap = g.tokenizerJSON, g.tokenizerConfig, g.specialTokensMap
		src = []string{filepath.Join(dir, "encoder.json"), filepath.Join(dir, "vocab.bpe")}
		save = g.files()
	}
	t, err := build(cfgJSON, o)
	if err != nil {
		return nil, err
	}
	if err := t.resolveSpecials(tokCfg, specialsMap); err != nil {
		return nil, err
	}
	sort.Slice(save, func(i, j int) bool { return save[i].name < save[j].name })
	h := sha256.New()
	for _, f := range save {
		fmt.Fprintf(h, "%s\x00%d\x00", f.name, len(f.data))
		h.Write(f.data)
	}
	t.dir, t.src, t.save, t.sha = dir, src, save, hex.EncodeToString(h.Sum(nil))
	return t, nil
}

// build assembles the pipeline from tokenizer.json bytes.
func build(cfgJSON []byte, o options) (*Tokenizer, error) {
	var cfg fileConfig
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	if isNull(cfg.Model) {
		return nil, fmt.Errorf("tokenizer.json has no model")
	}
	t := &Tokenizer{bos: -1, eos: -1, pad: -1}
	var err error
	if t.model, t.bpe, err = buildModel(cfg.Model); err != nil {
		return nil, err
	}
	fastNorm, normOK, err := buildStringNormalizer(cfg.Normalizer)
	if err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	var sugarNorm normalizer.Normalizer
	if fastNorm != nil {
		// Ours, also in sugarme's pipeline: sugarme v0.3.0's NFC leaves
		// decomposed accents (e + U+0301) as they are.
		sugarNorm = normalizerAdapter{fastNorm}
	} else if !isNull(cfg.Normalizer) && !normOK {
		var m map[string]any
		if err := json.Unmarshal(cfg.Normalizer, &m); err != nil {
			return nil, fmt.Errorf("normalizer: %w", err)
		}
		serr := catch(func() error {
			var err error
			sugarNorm, err = pretrained.CreateNormalizer(m)
			return err
		})
		if serr != nil {
			return nil, fmt.Errorf("normalizer: %w", serr)
		}
	}
	sugarPre, fastPre, err := buildPreTokenizer(cfg.PreTokenizer)
	if err != nil {
		return nil, fmt.Errorf("pre-tokenizer: %w", err)
	}
	if t.post, err = buildPostProcessor(cfg.PostProcessor); err != nil {
		return nil, fmt.Errorf("post-processor: %w", err)
	}
	if t.decoder, err = buildDecoder(cfg.Decoder); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	t.norm, t.pre = fastNorm, fastPre
	t.fast = !o.slow && t.bpe != nil && normOK && (isNull(cfg.PreTokenizer) || fastPre != nil)

	t.sugar = sugar.NewTokenizer(t.model)
	if sugarNorm != nil {
		t.sugar.WithNormalizer(sugarNorm)
	}
	if sugarPre != nil {
		t.sugar.WithPreTokenizer(sugarPre)
	}
	if t.decoder != nil {
		t.sugar.WithDecoder(t.decoder)
	}

	toks := make([]addedToken, len(cfg.AddedTokens))
	maxID := -1
	if t.bpe != nil {
		maxID = len(t.bpe.tokens) - 1
	} else {
		for _, id := range t.model.GetVocab() {
			maxID = max(maxID, id)
		}
	}
	for i, a := range cfg.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("added token %q has negative id", a.Content)
		}
		if a.Normalized && !t.fast && !isNull(cfg.Normalizer) {
			return nil, fmt.Errorf("added token %q: normalized added tokens need the fast path", a.Content)
		}
		toks[i] = addedToken{id: a.ID, content: a.Content, special: a.Special, normalized: a.Normalized,
			lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord}
		maxID = max(maxID, a.ID)
	}
	t.added = newAddedVocab(toks)
	t.bytesPerToken = computeBytesPerToken(cfg, t.bpe)
	t.vocabSize = maxID + 1
	return t, nil
}

// resolveSpecials reads bos/eos/pad from tokenizer_config.json, overridden by
// special_tokens_map.json, as transformers does.
func (t *Tokenizer) resolveSpecials(tokCfg, specialsMap []byte) error {
	vals := map[string]string{}
	for _, src := range []struct {
		name string
		data []byte
	}{{"tokenizer_config.json", tokCfg}, {"special_tokens_map.json", specialsMap}} {
		if src.data == nil {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(src.data, &m); err != nil {
			return fmt.Errorf("parse %s: %w", src.name, err)
		}
		for _, k := range []string{"bos_token", "eos_token", "pad_token"} {
			raw, ok := m[k]
			if !ok {
				continue
			}
			s, set, err := specialTokenField(raw)
			if err != nil {
				return fmt.Errorf("%s %s: %w", src.name, k, err)
			}
			if set {
				vals[k] = s
			} else {
				delete(vals, k)
			}
		}
	}
	for k, dst := range map[string]*int{"bos_token": &t.bos, "eos_token": &t.eos, "pad_token": &t.pad} {
		s, ok := vals[k]
		if !ok {
			continue
		}
		id, ok := t.TokenToID(s)
		if !ok {
			return fmt.Errorf("%s %q is not in the vocabulary", k, s)
		}
		*dst = id
	}
	return nil
}

// TokenToID returns the id of a token (added tokens first, then the model).
func (t *Tokenizer) TokenToID(token string) (int, bool) {
	if a, ok := t.added.byContent[token]; ok {
		return a.id, true
	}
	return t.model.TokenToId(token)
}

// IDToToken returns the token string of an id.
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if a, ok := t.added.byID[id]; ok {
		return a.content, true
	}
	return t.model.IdToToken(id)
}

// BOS returns the beginning-of-sequence token id, if the tokenizer has one.
func (t *Tokenizer) BOS() (int, bool) { return t.bos, t.bos >= 0 }

// EOS returns the end-of-sequence token id, if the tokenizer has one.
func (t *Tokenizer) EOS() (int, bool) { return t.eos, t.eos >= 0 }

// Pad returns the padding token id, if the tokenizer has one.
func (t *Tokenizer) Pad() (int, bool) { return t.pad, t.pad >= 0 }

// VocabSize is one more than the largest id the tokenizer can produce
// (model vocabulary and added tokens).
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// Files returns the source files the tokenizer was read from.
func (t *Tokenizer) Files() []string { return append([]string(nil), t.src...) }

// SHA256 identifies the tokenizer: the sha256 of the files Save writes, each
// as name NUL size NUL content, in name order.
func (t *Tokenizer) SHA256() string { return t.sha }

// Save writes the tokenizer files to dir so that a model directory holding
// them loads with transformers' AutoTokenizer: the source files as they are,
// or for GPT-2's encoder.json + vocab.bpe, a tokenizer.json built from them
// plus vocab.json, merges.txt, tokenizer_config.json and
// special_tokens_map.json. Each file is written under a temporary name and
// renamed.
func (t *Tokenizer) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	for _, f := range t.save {
		if err := renameio.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("save tokenizer: %w", err)
		}
	}
	return nil
}

// Encode returns the ids of text; addSpecial applies the tokenizer's
// post-processor (e.g. Llama 2's BOS). Invalid UTF-8 is first replaced as
// ValidUTF8 does.
func (t *Tokenizer) Encode(text string, addSpecial bool) ([]int, error) {
	var sc scratch
	return t.encode(text, addSpecial, &sc)
}

type scratch struct {
	segs  []segment
	nsegs []segment
	words []string
}

func (t *Tokenizer) encode(text string, addSpecial bool, sc *scratch) (ids []int, err error) {
	text = ValidUTF8(text)
	sc.segs = t.added.raw.split(sc.segs[:0], text)
	for _, seg := range sc.segs {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		if seg.text == "" {
			continue
		}
		if !t.fast {
			if ids, err = t.encodeSugarme(ids, seg.text); err != nil {
				return nil, err
			}
			continue
		}
		s := seg.text
		if t.norm != nil {
			s = t.norm.normalizeString(s)
		}
		sc.nsegs = t.added.norm.split(sc.nsegs[:0], s)
		for _, ns := range sc.nsegs {
			if ns.id >= 0 {
				ids = append(ids, ns.id)
				continue
			}
			if t.pre == nil {
				ids = t.bpe.appendIDs(ids, ns.text)
				continue
			}
			sc.words = t.pre.splitString(sc.words[:0], ns.text)
			for _, w := range sc.words {
				ids = t.bpe.appendIDs(ids, w)
			}
		}
	}
	if addSpecial {
		ids = t.post.process(ids)
	}
	if ids == nil {
		ids = []int{}
	}
	return ids, nil
}

// encodeSugarme runs one segment through sugarme's own pipeline.
func (t *Tokenizer) encodeSugarme(dst []int, text string) ([]int, error) {
	var enc *sugar.Encoding
	err := catch(func() error {
		var err error
		enc, err = t.sugar.EncodeSingle(text, false)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return append(dst, enc.Ids...), nil
}

// EncodeBatch encodes texts on all cores (GOMAXPROCS workers); the result is
// in input order.
func (t *Tokenizer) EncodeBatch(texts []string, addSpecial bool) ([][]int, error) {
	out := make([][]int, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	const chunk = 32
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc scratch
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= len(texts) {
					return
				}
				for i := lo; i < min(lo+chunk, len(texts)); i++ {
					ids, err := t.encode(texts[i], addSpecial, &sc)
					if err != nil {
						errOnce.Do(func() { first = fmt.Errorf("text %d: %w", i, err) })
						next.Store(int64(len(texts)))
						return
					}
					out[i] = ids
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}

// Decode turns ids back into text as HF's Tokenizer.decode does: ids without
// a token are dropped, special tokens too when skipSpecial is set, and the
// rest go through the decoder (joined by spaces if there is none).
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) (string, error) {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		s, ok := t.IDToToken(id)
		if !ok {
			continue
		}
		if skipSpecial {
			if a, ok := t.added.byContent[s]; ok && a.special {
				continue
			}
		}
		toks = append(toks, s)
	}
	if t.decoder == nil {
		return strings.Join(toks, " "), nil
	}
	var out string
	if err := catch(func() error {
		out = t.decoder.Decode(toks)
		return nil
	}); err != nil {
		return "", fmt.Errorf("decode: %w", err)
	}
	return out, nil
}
