package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/torch"
)

// Files of a PEFT adapter directory, as peft's save_pretrained (and
// internal/train) write them.
const (
	AdapterConfigFile  = "adapter_config.json"
	AdapterWeightsFile = "adapter_model.safetensors"
)

// AdapterConfig is what serving reads of PEFT's adapter_config.json
// (LoraConfig).
type AdapterConfig struct {
	// BaseModel is base_model_name_or_path: a directory or a Hub repo id.
	BaseModel string
	// Revision is the base's Hub revision ("" when unset).
	Revision string
	R        int
	Alpha    float64
	RSLoRA   bool
	// RankPattern and AlphaPattern override R and Alpha for the modules
	// whose path matches a key (a regular expression, as PEFT matches it).
	RankPattern  map[string]int
	AlphaPattern map[string]float64
}

// IsAdapterDir reports whether dir holds a PEFT adapter (adapter_config.json).
func IsAdapterDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, AdapterConfigFile))
	return err == nil
}

// ReadAdapterConfig reads dir's adapter_config.json and refuses what this
// package cannot serve: other PEFT methods than LoRA, DoRA, trained biases
// and modules_to_save.
func ReadAdapterConfig(dir string) (*AdapterConfig, error) {
	p := filepath.Join(dir, AdapterConfigFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read adapter config: %w", err)
	}
	var raw struct {
		PeftType      string             `json:"peft_type"`
		Base          string             `json:"base_model_name_or_path"`
		Revision      *string            `json:"revision"`
		R             int                `json:"r"`
		Alpha         float64            `json:"lora_alpha"`
		RSLoRA        bool               `json:"use_rslora"`
		DoRA          bool               `json:"use_dora"`
		LoRABias      bool               `json:"lora_bias"`
		Bias          string             `json:"bias"`
		ModulesToSave []string           `json:"modules_to_save"`
		RankPattern   map[string]int     `json:"rank_pattern"`
		AlphaPattern  map[string]float64 `json:"alpha_pattern"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("read adapter config %s: %w", p, err)
	}
	switch {
	case raw.PeftType != "LORA":
		err = fmt.Errorf("peft_type %q: only LORA adapters are served", raw.PeftType)
	case raw.R <= 0:
		err = fmt.Errorf("r is %d, want > 0", raw.R)
	case raw.DoRA:
		err = errors.New("use_dora: DoRA adapters are not served (merge it into the base with peft's merge_and_unload)")
	case raw.LoRABias:
		err = errors.New("lora_bias: adapters with a bias on lora_B are not served (merge it into the base)")
	case raw.Bias != "" && raw.Bias != "none":
		err = fmt.Errorf("bias %q: adapters that train biases are not served (merge it into the base)", raw.Bias)
	case len(raw.ModulesToSave) > 0:
		err = fmt.Errorf("modules_to_save %v: fully trained modules are not served as an adapter (merge it into the base)", raw.ModulesToSave)
	}
	for k := range raw.RankPattern {
		if _, rerr := regexp.Compile(k); rerr != nil && err == nil {
			err = fmt.Errorf("rank_pattern %q: %w", k, rerr)
		}
	}
	for k := range raw.AlphaPattern {
		if _, rerr := regexp.Compile(k); rerr != nil && err == nil {
			err = fmt.Errorf("alpha_pattern %q: %w", k, rerr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read adapter config %s: %w", p, err)
	}
	c := &AdapterConfig{BaseModel: raw.Base, R: raw.R, Alpha: raw.Alpha, RSLoRA: raw.RSLoRA,
		RankPattern: raw.RankPattern, AlphaPattern: raw.AlphaPattern}
	if raw.Revision != nil {
		c.Revision = *raw.Revision
	}
	return c, nil
}

// patternKey is PEFT's get_pattern_key: the first key (in the file's
// order, which Go's map loses: keys are tried sorted) whose pattern matches
// the end of the module path after a dot, or the whole path.
func patternKey[V any](m map[string]V, path string) (V, bool) {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		if re, err := regexp.Compile(`^(?:.*\.)?(?:` + k + `)$`); err == nil && re.MatchString(path) {
			return m[k], true
		}
	}
	var zero V
	return zero, false
}

// scale is PEFT's scaling for the module at path: alpha/r, or
// alpha/sqrt(r) with rsLoRA; r is the module's rank.
func (c *AdapterConfig) scale(path string) (r int, s float64) {
	r, alpha := c.R, c.Alpha
	if v, ok := patternKey(c.RankPattern, path); ok {
		r = v
	}
	if v, ok := patternKey(c.AlphaPattern, path); ok {
		alpha = v
	}
	if c.RSLoRA {
		return r, alpha / math.Sqrt(float64(r))
	}
	return r, alpha / float64(r)
}

// Adapter is a PEFT LoRA adapter loaded onto a model by LoadAdapter. The
// base weights stay as they are; a sequence made with
// GenerateOptions.Adapter runs through the adapter, and one Prefill or
// DecodeStep may mix sequences of different adapters and of the base.
type Adapter struct {
	Name   string
	Config *AdapterConfig
	// Modules lists the module paths the adapter changes, sorted.
	Modules []string

	m     *Model
	index int64 // its row in every stack (0 is the base)
}

// loraStack holds, for one Linear, the LoRA weights of every loaded
// adapter stacked (transposed, as the batched matmuls read them) so that
// one gather serves a batch whose rows use different adapters: at
// [N+1, in, r] and bt [N+1, r, out], row 0 zeros (the base, and adapters
// that leave the layer alone), ranks padded with zeros to the largest,
// each adapter's scale folded into its B.
//
// The last gather (the rows' weights, [B, in, r] and [B, r, out]) is kept
// for the next pass with the same rows: a decode batch keeps its rows for
// many steps. It holds at most a batch's worth of adapter weights.
type loraStack struct {
	at, bt ct
	r      int64

	mu     sync.Mutex
	key    string // the rows ga and gb hold
	ga, gb ct
}

// loraRows are the adapters of a pass's batch rows (indices into the
// stacks, [B] int64), when any row has one.
type loraRows struct {
	m   *Model
	idx ct
	key string // idx as text, for the gather cache
}

// apply adds each row's adapter delta to y = base(x) for Linear l: y +
// (x_i@A_i^T)@(scale_i*B_i)^T, as one bmm and one baddbmm. x and y have
// the batch rows first ([B,T,*] or [B,*]); each row's delta is its own
// matrix product in the batch, so a row gets the same bits whatever else
// shares the batch.
func (r *loraRows) apply(s *scope, l *Linear, x, y ct) ct {
	st := r.m.lora[l]
	if st == nil || !s.OK() {
		return y
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.key != r.key {
		st.dropGather()
		ga := s.IndexSelect(st.at, 0, r.idx) // [B,in,r]
		gb := s.IndexSelect(st.bt, 0, r.idx) // [B,r,out]
		if !s.OK() {
			return y
		}
		st.ga, st.gb, st.key = s.Detach(ga), s.Detach(gb), r.key
	}
	if xs := torch.Shape(x); len(xs) == 3 { // [B,T,in] and y [B,T,out]: prefill and decode
		return s.Baddbmm(y, s.Bmm(x, st.ga), st.gb, 1, 1)
	}
	xs, ys := torch.Shape(x), torch.Shape(y) // [B,in]: prefill's lm_head
	h := s.Bmm(s.Reshape(x, xs[0], 1, xs[len(xs)-1]), st.ga)
	out := s.Baddbmm(s.Reshape(y, ys[0], 1, ys[len(ys)-1]), h, st.gb, 1, 1)
	if !s.OK() {
		return y
	}
	return s.Reshape(out, ys...)
}

func (st *loraStack) dropGather() {
	if st.ga != nil {
		torch.Free(st.ga)
		torch.Free(st.gb)
	}
	st.ga, st.gb, st.key = nil, nil, ""
}

func (st *loraStack) free() {
	st.dropGather()
	torch.Free(st.at)
	torch.Free(st.bt)
}

// rowsFor returns the pass's loraRows for sequences run in that row order,
// nil when none of them uses an adapter.
func (m *Model) rowsFor(s *scope, seqs []*Sequence) *loraRows {
	idx := make([]int64, len(seqs))
	some := false
	for i, sq := range seqs {
		if a := sq.opts.Adapter; a != nil {
			idx[i], some = a.index, true
		}
	}
	if !some || len(m.lora) == 0 {
		return nil
	}
	return m.newRows(s, idx)
}

// newRows makes the loraRows of stack indices idx.
func (m *Model) newRows(s *scope, idx []int64) *loraRows {
	return &loraRows{m: m, idx: s.Int64s(m.choice.Device, idx, int64(len(idx))), key: fmt.Sprint(idx)}
}

// Adapters lists the adapters loaded so far, in load order.
func (m *Model) Adapters() []*Adapter { return slices.Clone(m.adapters) }

// adapterKey splits a PEFT weight name, base_model.model.<module>.lora_A.weight,
// into the module path (in this package's naming) and "lora_A"/"lora_B".
func (m *Model) adapterKey(name string) (path, which string, ok bool) {
	rest, ok := strings.CutPrefix(name, "base_model.model.")
	if !ok {
		return "", "", false
	}
	for _, w := range []string{"lora_A", "lora_B"} {
		if p, ok := strings.CutSuffix(rest, "."+w+".weight"); ok {
			if f := m.Config.arch().fileName; f != nil {
				p = strings.TrimSuffix(f(p+".weight"), ".weight")
			}
			return p, w, true
		}
	}
	return "", "", false
}

// LoadAdapter reads a PEFT LoRA adapter directory (adapter_config.json,
// adapter_model.safetensors: what peft's save_pretrained and a LoRA
// finetune write) onto the model under name. Its modules must be Linears
// of the model (q/k/v/o/gate/up/down_proj, GPT-2's c_attn/c_proj/c_fc,
// lm_head) with the shapes the config implies. Call it before generating:
// it must not run concurrently with a pass.
func (m *Model) LoadAdapter(name, dir string) (*Adapter, error) {
	if m.closed {
		return nil, fmt.Errorf("load adapter %s: %w", name, errClosed)
	}
	if m.trainable {
		return nil, fmt.Errorf("load adapter %s: the model is trainable; attach training adapters through Linears", name)
	}
	cfg, err := ReadAdapterConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("load adapter %s: %w", name, err)
	}
	wpath := filepath.Join(dir, AdapterWeightsFile)
	f, err := safetensors.Open(wpath)
	if err != nil {
		if _, berr := os.Stat(filepath.Join(dir, "adapter_model.bin")); berr == nil {
			return nil, fmt.Errorf("load adapter %s: %s holds adapter_model.bin (a pickle); save it with safe_serialization=True", name, dir)
		}
		return nil, fmt.Errorf("load adapter %s: %w", name, err)
	}
	defer f.Close()

	type pair struct{ a, b string }
	mods := map[string]*pair{}
	var unexpected []string
	for _, n := range f.Names() {
		path, which, ok := m.adapterKey(n)
		if !ok || m.linears[path] == nil {
			unexpected = append(unexpected, n)
			continue
		}
		p := mods[path]
		if p == nil {
			p = &pair{}
			mods[path] = p
		}
		if which == "lora_A" {
			p.a = n
		} else {
			p.b = n
		}
	}
	if len(unexpected) > 0 {
		return nil, fmt.Errorf("load adapter %s: %s: weights %s are not LoRA weights of this %s's Linear layers", name, wpath, strings.Join(trimList(unexpected), ", "), m.Config.Architecture)
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("load adapter %s: %s holds no LoRA weights", name, wpath)
	}
	paths := make([]string, 0, len(mods))
	for p, pr := range mods {
		if pr.a == "" || pr.b == "" {
			return nil, fmt.Errorf("load adapter %s: %s has only one of lora_A and lora_B", name, p)
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ad := &Adapter{Name: name, Config: cfg, Modules: paths, m: m, index: int64(len(m.adapters) + 1)}
	// Read and check every weight before touching the stacks, so that a
	// bad adapter leaves the model as it was.
	type weights struct{ a, b ct }
	var s scope
	defer s.Free()
	read := map[*Linear]weights{}
	for _, p := range paths {
		l := m.linears[p]
		r, scale := cfg.scale(p)
		in, out := l.InFeatures(), l.OutFeatures()
		load := func(key string, shape []int64, scale float64) ct {
			info, _ := f.Info(key)
			kind, ok := fileKinds[info.DType]
			if !ok {
				s.Fail(fmt.Errorf("%s: dtype %s is not a float type", key, info.DType))
				return nil
			}
			if !slices.Equal(info.Shape, shape) {
				s.Fail(fmt.Errorf("%s has shape %v, want %v (r=%d)", key, info.Shape, shape, r))
				return nil
			}
			data, err := f.Data(key)
			if err != nil {
				s.Fail(fmt.Errorf("%s: %w", key, err))
				return nil
			}
			t := s.To(s.FromBytes(data, kind, shape...), m.choice.Device, gotch.Float)
			if scale != 1 {
				t = s.MulScalar(t, scale)
			}
			return s.To(t, m.choice.Device, m.choice.DType)
		}
		w := weights{a: load(mods[p].a, []int64{int64(r), in}, 1), b: load(mods[p].b, []int64{out, int64(r)}, scale)}
		if !s.OK() {
			return nil, fmt.Errorf("load adapter %s: %w", name, s.Err())
		}
		read[l] = w
	}
	// Restack: every stacked Linear gains a row (zeros where this adapter
	// leaves it alone), and so do the ones this adapter reaches first.
	if m.lora == nil {
		m.lora = map[*Linear]*loraStack{}
	}
	n := ad.index + 1
	fresh := map[*Linear]*loraStack{}
	for l := range m.lora {
		fresh[l] = nil
	}
	for l := range read {
		fresh[l] = nil
	}
	for l := range fresh {
		old := m.lora[l]
		r := int64(0)
		if old != nil {
			r = old.r
		}
		if w, ok := read[l]; ok {
			r = max(r, torch.Shape(w.a)[0])
		}
		in, out := l.InFeatures(), l.OutFeatures()
		at := s.Zeros(m.choice.Device, m.choice.DType, n, in, r)
		bt := s.Zeros(m.choice.Device, m.choice.DType, n, r, out)
		if old != nil {
			s.CopyInto(s.Narrow(s.Narrow(at, 0, 0, n-1), 2, 0, old.r), old.at)
			s.CopyInto(s.Narrow(s.Narrow(bt, 0, 0, n-1), 1, 0, old.r), old.bt)
		}
		if w, ok := read[l]; ok {
			wr := torch.Shape(w.a)[0]
			s.CopyInto(s.Narrow(s.Select(at, 0, ad.index), 1, 0, wr), s.Transpose(w.a, 0, 1))
			s.CopyInto(s.Narrow(s.Select(bt, 0, ad.index), 0, 0, wr), s.Transpose(w.b, 0, 1))
		}
		if !s.OK() {
			for _, st := range fresh {
				if st != nil {
					st.free()
				}
			}
			return nil, fmt.Errorf("load adapter %s: stack weights: %w", name, s.Err())
		}
		fresh[l] = &loraStack{at: s.Detach(at), bt: s.Detach(bt), r: r}
	}
	for l, st := range fresh {
		if old := m.lora[l]; old != nil {
			old.free()
		}
		m.lora[l] = st
	}
	m.adapters = append(m.adapters, ad)
	return ad, nil
}

// freeAdapters frees the stacks (Close).
func (m *Model) freeAdapters() {
	for _, st := range m.lora {
		st.free()
	}
	m.lora, m.adapters = nil, nil
}

// Logits runs ids (one sequence) through the model, through adapter a when
// it is not nil, and returns the logits [len(ids)*V] as float32: what a
// parity check compares with transformers + peft.
func (m *Model) Logits(a *Adapter, ids []int) ([]float32, error) {
	if m.closed {
		return nil, fmt.Errorf("logits: %w", errClosed)
	}
	if a != nil && a.m != m {
		return nil, errors.New("logits: the adapter belongs to another model")
	}
	if len(ids) == 0 {
		return nil, errors.New("logits: no tokens")
	}
	var out []float32
	err := inference(func() error {
		var s scope
		defer s.Free()
		t := int64(len(ids))
		ids64 := make([]int64, t)
		pos := make([]int64, t)
		for i, id := range ids {
			ids64[i], pos[i] = int64(id), int64(i)
		}
		p, err := m.newPass(&s, 1, t, pos)
		if err != nil {
			return fmt.Errorf("logits: %w", err)
		}
		if a != nil {
			s.lora = m.newRows(&s, []int64{a.index})
		}
		p.mask = newMaskInfo(1, t, nil).tensor(&s, m.choice.Device)
		out = s.ReadFloat32s(p.head(p.layers(p.embed(s.Int64s(m.choice.Device, ids64, 1, t)), nil)))
		if s.Err() != nil {
			return fmt.Errorf("logits: %w", s.Err())
		}
		return nil
	})
	return out, err
}
