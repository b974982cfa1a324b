package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Sampling holds one request's generation parameters.
type Sampling struct {
	MaxNewTokens      int
	Temperature       float64 // 0: greedy
	TopP              float64 // 0 or 1: off
	TopK              int     // 0: off
	RepetitionPenalty float64 // 0 or 1: off
	Seed              int64
	// Adapter names the LoRA adapter the request runs through ("": the
	// base model). Requests of different adapters share decode steps.
	Adapter string
}

// Sequence is one request's generation state inside the engine (its token
// history and KV cache).
type Sequence interface {
	// Last is the token sampled by the latest Prefill or DecodeStep.
	Last() int
	// Done reports that the engine has stopped the sequence on its own (it
	// holds no room for more tokens); the scheduler then retires it.
	Done() bool
	// Release frees the sequence's cache; it is called exactly once.
	Release()
}

// Engine runs the model. The scheduler calls it from one goroutine only.
type Engine interface {
	// NewSequence prepares a sequence for prompt; no model work yet.
	NewSequence(prompt []int, s Sampling) (Sequence, error)
	// Prefill runs the prompts of seqs and samples each one's first token.
	Prefill(ctx context.Context, seqs []Sequence) error
	// DecodeStep runs one batched forward pass over seqs and samples one
	// more token for each. The set of seqs may differ from step to step.
	DecodeStep(ctx context.Context, seqs []Sequence) error
}

// Tokenizer turns text into ids and back; *tokenizer.Tokenizer fits.
type Tokenizer interface {
	Encode(text string, addSpecial bool) ([]int, error)
	Decode(ids []int, skipSpecial bool) (string, error)
}

// Options configure a [Scheduler].
type Options struct {
	// MaxBatch is the most sequences decoded together (default 8).
	MaxBatch int
	// QueueSize bounds requests waiting for a batch slot (default 64).
	QueueSize int
	// ContextLength is the model's maximum positions; prompt plus new tokens
	// must fit (default 2048).
	ContextLength int
	// MaxNewTokens caps every request's token budget (default 512).
	MaxNewTokens int
	// EOS lists the token ids that end a sequence.
	EOS []int
	// AddSpecial is passed to Encode (true adds BOS for tokenizers that use one).
	AddSpecial bool
	// Logger gets engine failures (default slog.Default()).
	Logger *slog.Logger
}

// Errors callers branch on (the HTTP layer maps them to status codes).
var (
	ErrQueueFull     = errors.New("server is at capacity: request queue is full")
	ErrClosed        = errors.New("server is shutting down")
	ErrPromptTooLong = errors.New("prompt is too long for the model's context")
)

// Request is one generation.
type Request struct {
	Prompt string
	Sampling
	// Stop strings end generation; the text returned stops before them.
	Stop []string
}

// Result is a finished generation.
type Result struct {
	Text         string
	TokensIn     int
	TokensOut    int
	FinishReason string // "stop" (EOS or stop string) or "length"
	QueueWait    time.Duration
	Duration     time.Duration // from submission to the last token
}

// Stats are running totals, for metrics.
type Stats struct {
	Queued, Active  int
	TokensGenerated int64
	Steps           int64
	Requests        int64
}

// Scheduler batches generation for concurrent callers. Create with New,
// stop with Close.
type Scheduler struct {
	eng  Engine
	tok  Tokenizer
	opts Options
	eos  map[int]bool

	queue  chan *job
	mu     sync.RWMutex
	closed bool
	done   chan struct{}

	active                  atomic.Int64
	tokens, steps, requests atomic.Int64
}

// New starts the scheduling loop.
func New(eng Engine, tok Tokenizer, opts Options) *Scheduler {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 8
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 64
	}
	if opts.ContextLength <= 0 {
		opts.ContextLength = 2048
	}
	if opts.MaxNewTokens <= 0 {
		opts.MaxNewTokens = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Scheduler{eng: eng, tok: tok, opts: opts, eos: map[int]bool{},
		queue: make(chan *job, opts.QueueSize), done: make(chan struct{})}
	for _, id := range opts.EOS {
		s.eos[id] = true
	}
	go s.loop()
	return s
}

// Options returns the options in force (with defaults filled in).
func (s *Scheduler) Options() Options { return s.opts }

// Stats returns current gauges and totals.
func (s *Scheduler) Stats() Stats {
	return Stats{Queued: len(s.queue), Active: int(s.active.Load()),
		TokensGenerated: s.tokens.Load(), Steps: s.steps.Load(), Requests: s.requests.Load()}
}

// Close refuses new requests, lets queued and running ones finish, and
// returns when the loop has stopped or ctx ends.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// job is a request in flight; the loop owns seq, ids and emitted.
type job struct {
	ctx      context.Context
	req      Request
	prompt   []int
	maxNew   int
	enqueued time.Time
	admitted time.Time

	seq     Sequence
	ids     []int
	emitted int // bytes of text already streamed
	// lead is the prompt's last id followed by ids, and leadText that id's
	// own text: text() decodes lead and cuts leadText off (nil lead: ids
	// are decoded alone).
	lead     []int
	leadText string

	mu      sync.Mutex
	pending strings.Builder
	wake    chan struct{} // cap 1: new text or done
	final   *Result
	err     error
}

func (j *job) publish(delta string) {
	if delta == "" {
		return
	}
	j.mu.Lock()
	j.pending.WriteString(delta)
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

func (j *job) finish(r *Result, err error) {
	j.mu.Lock()
	j.final, j.err = r, err
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// Generate runs req and returns the whole text. onText, if not nil, gets
// each new piece of text as it is generated (from the caller's goroutine;
// a slow onText never holds up the batch); an error from it stops the
// generation and is returned. Cancelling ctx stops the work at the next step.
func (s *Scheduler) Generate(ctx context.Context, req Request, onText func(string) error) (Result, error) {
	start := time.Now()
	prompt, err := s.tok.Encode(req.Prompt, s.opts.AddSpecial)
	if err != nil {
		return Result{}, fmt.Errorf("encode prompt: %w", err)
	}
	if len(prompt) == 0 {
		return Result{}, fmt.Errorf("%w: the prompt encodes to no tokens", ErrPromptTooLong)
	}
	room := s.opts.ContextLength - len(prompt)
	if room <= 0 {
		return Result{}, fmt.Errorf("%w: %d prompt tokens, context length %d", ErrPromptTooLong, len(prompt), s.opts.ContextLength)
	}
	maxNew := req.MaxNewTokens
	if maxNew <= 0 || maxNew > s.opts.MaxNewTokens {
		maxNew = s.opts.MaxNewTokens
	}
	maxNew = min(maxNew, room)
	// However Generate returns, the loop sees ctx end and retires the job.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	j := &job{ctx: ctx, req: req, prompt: prompt, maxNew: maxNew, enqueued: start, wake: make(chan struct{}, 1)}
	if t, err := s.tok.Decode(prompt[len(prompt)-1:], true); err == nil {
		j.lead, j.leadText = append(make([]int, 0, maxNew+1), prompt[len(prompt)-1]), t
	}
	if err := s.submit(j); err != nil {
		return Result{}, err
	}
	s.requests.Add(1)
	var cbErr error
	for {
		select {
		case <-j.wake:
		case <-ctx.Done():
			// The loop sees ctx too and retires the job at its next step.
			return Result{}, ctx.Err()
		}
		j.mu.Lock()
		delta := j.pending.String()
		j.pending.Reset()
		final, ferr := j.final, j.err
		j.mu.Unlock()
		if delta != "" && onText != nil && cbErr == nil {
			if cbErr = onText(delta); cbErr != nil {
				return Result{}, cbErr
			}
		}
		if final != nil || ferr != nil {
			if ferr != nil {
				return Result{}, ferr
			}
			final.Duration = time.Since(start)
			return *final, nil
		}
	}
}

func (s *Scheduler) submit(j *job) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.queue <- j:
		return nil
	default:
		return ErrQueueFull
	}
}

func (s *Scheduler) loop() {
	defer close(s.done)
	var active []*job
	open := true
	for open || len(active) > 0 {
		// Admit queued jobs between steps; block only when idle.
		var admit []*job
		if len(active) == 0 {
			j, ok := <-s.queue
			if !ok {
				return
			}
			admit = append(admit, j)
		}
	fill:
		for open && len(active)+len(admit) < s.opts.MaxBatch {
			select {
			case j, ok := <-s.queue:
				if !ok {
					open = false
					break fill
				}
				admit = append(admit, j)
			default:
				break fill
			}
		}
		if len(admit) > 0 {
			active = append(active, s.prefill(admit)...)
		}
		if len(active) == 0 {
			continue
		}
		// Retire jobs whose caller left before spending a step on them.
		active = s.sweep(active)
		if len(active) == 0 {
			continue
		}
		seqs := make([]Sequence, len(active))
		for i, j := range active {
			seqs[i] = j.seq
		}
		if err := s.call(func() error { return s.eng.DecodeStep(context.Background(), seqs) }); err != nil {
			s.opts.Logger.Error("decode step failed", "batch", len(active), "err", err)
			for _, j := range active {
				s.retire(j, nil, fmt.Errorf("decode: %w", err))
			}
			active = nil
			continue
		}
		s.steps.Add(1)
		kept := active[:0]
		for _, j := range active {
			if s.advance(j) {
				kept = append(kept, j)
			}
		}
		clear(active[len(kept):])
		active = kept
	}
}

// prefill starts admitted jobs and returns those still running.
func (s *Scheduler) prefill(admit []*job) []*job {
	var ready []*job
	for _, j := range admit {
		if err := j.ctx.Err(); err != nil {
			j.finish(nil, err)
			continue
		}
		var seq Sequence
		err := s.call(func() (err error) { seq, err = s.eng.NewSequence(j.prompt, s.sampling(j)); return err })
		if err != nil {
			j.finish(nil, fmt.Errorf("new sequence: %w", err))
			continue
		}
		j.seq = seq
		j.admitted = time.Now()
		s.active.Add(1)
		ready = append(ready, j)
	}
	if len(ready) == 0 {
		return nil
	}
	seqs := make([]Sequence, len(ready))
	for i, j := range ready {
		seqs[i] = j.seq
	}
	if err := s.call(func() error { return s.eng.Prefill(context.Background(), seqs) }); err != nil {
		s.opts.Logger.Error("prefill failed", "batch", len(ready), "err", err)
		for _, j := range ready {
			s.retire(j, nil, fmt.Errorf("prefill: %w", err))
		}
		return nil
	}
	kept := ready[:0]
	for _, j := range ready {
		if s.advance(j) {
			kept = append(kept, j)
		}
	}
	return kept
}

func (s *Scheduler) sampling(j *job) Sampling {
	sp := j.req.Sampling
	sp.MaxNewTokens = j.maxNew
	return sp
}

func (s *Scheduler) sweep(active []*job) []*job {
	kept := active[:0]
	for _, j := range active {
		if err := j.ctx.Err(); err != nil {
			s.retire(j, nil, err)
			continue
		}
		kept = append(kept, j)
	}
	clear(active[len(kept):])
	return kept
}

// call runs an engine call, turning a panic (gotch panics on some errors)
// into an error so that one bad batch cannot take the server down.
func (s *Scheduler) call(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("engine panic: %v", r)
			s.opts.Logger.Error("engine panic", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	return f()
}

// advance takes the token just sampled for j; it reports whether j goes on.
func (s *Scheduler) advance(j *job) bool {
	if err := j.ctx.Err(); err != nil {
		s.retire(j, nil, err)
		return false
	}
	tok := j.seq.Last()
	if s.eos[tok] {
		s.retire(j, s.result(j, "stop", -1), nil)
		return false
	}
	j.ids = append(j.ids, tok)
	s.tokens.Add(1)
	text, err := s.text(j)
	if err != nil {
		s.retire(j, nil, fmt.Errorf("decode tokens: %w", err))
		return false
	}
	if cut := stopAt(text, j.req.Stop); cut >= 0 {
		s.publishUpTo(j, text, cut)
		s.retire(j, s.result(j, "stop", cut), nil)
		return false
	}
	if len(j.ids) >= j.maxNew || j.seq.Done() {
		s.publishUpTo(j, text, len(text))
		s.retire(j, s.result(j, "length", -1), nil)
		return false
	}
	s.publishUpTo(j, text, safeEnd(text, j.req.Stop))
	return true
}

// safeEnd is how much of text (the whole generation so far) may be streamed
// now: all but an incomplete character at the end and anything that may
// begin a stop string. A piece cut there never splits a character, so each
// piece is valid UTF-8 when the whole text is.
func safeEnd(text string, stops []string) int {
	safe := len(text) - holdBack(text, stops)
	for safe > 0 && safe < len(text) && !utf8.RuneStart(text[safe]) {
		safe--
	}
	return safe
}

func (s *Scheduler) publishUpTo(j *job, text string, end int) {
	if end > j.emitted && end <= len(text) {
		j.publish(text[j.emitted:end])
		j.emitted = end
	}
}

// text is j's generated text so far, decoded as the continuation of its
// prompt, as transformers' text-generation pipeline and llama.cpp give it:
// the prompt's last token is decoded with the generated ones and its own
// text cut off, so that a decoder that strips the leading space of what it
// decodes (SentencePiece's "Strip" step, Llama 2) keeps the completion's
// (" Paris"). Should that token's text not start the joint text (a
// character split between prompt and completion), the generated ids are
// decoded alone from then on.
func (s *Scheduler) text(j *job) (string, error) {
	if j.lead != nil {
		j.lead = append(j.lead[:1], j.ids...)
		joint, err := s.tok.Decode(j.lead, true)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(joint, j.leadText) {
			return joint[len(j.leadText):], nil
		}
		j.lead = nil
	}
	return s.tok.Decode(j.ids, true)
}

func (s *Scheduler) result(j *job, reason string, cut int) *Result {
	text, _ := s.text(j)
	if cut >= 0 && cut <= len(text) {
		text = text[:cut]
	}
	s.publishUpTo(j, text, len(text))
	return &Result{Text: text, TokensIn: len(j.prompt), TokensOut: len(j.ids), FinishReason: reason,
		QueueWait: j.admitted.Sub(j.enqueued)}
}

func (s *Scheduler) retire(j *job, r *Result, err error) {
	if j.seq != nil {
		seq := j.seq
		j.seq = nil
		_ = s.call(func() error { seq.Release(); return nil })
		s.active.Add(-1)
	}
	j.finish(r, err)
}

// stopAt is the index of the first stop string in text, or -1.
func stopAt(text string, stops []string) int {
	best := -1
	for _, st := range stops {
		if st == "" {
			continue
		}
		if i := strings.Index(text, st); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

// holdBack is the length of the tail of text to keep back: the longest
// suffix that is a proper prefix of a stop string, or the incomplete
// character at the end, whichever is longer. A tokenizer may show an
// incomplete character either as its raw leading bytes (a byte-level
// decoder) or as trailing U+FFFD (Hugging Face tokenizers); both are held.
func holdBack(text string, stops []string) int {
	n := incompleteTail(text)
	if strings.HasSuffix(text, "\uFFFD") {
		n = max(n, len(text)-len(strings.TrimRight(text, "\uFFFD")))
	}
	for _, st := range stops {
		for k := min(len(st)-1, len(text)); k > n; k-- {
			if strings.HasSuffix(text, st[:k]) {
				n = k
				break
			}
		}
	}
	return n
}

// incompleteTail is the length of the incomplete UTF-8 sequence that text
// ends with (the first bytes of a character whose last bytes are still to
// come), or 0.
func incompleteTail(text string) int {
	for k := 1; k < utf8.UTFMax && k <= len(text); k++ {
		if utf8.RuneStart(text[len(text)-k]) {
			if utf8.FullRuneInString(text[len(text)-k:]) {
				return 0
			}
			return k
		}
	}
	return 0
}
