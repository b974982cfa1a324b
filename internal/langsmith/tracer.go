package langsmith

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [TracerOptions].
const (
	DefaultQueueSize         = 1000
	DefaultFeedbackQueueSize = 100
	DefaultBatchSize         = 100
	DefaultFlushInterval     = time.Second
	// DefaultFlushTimeout bounds Close: well within Kubernetes' default
	// terminationGracePeriodSeconds (30 s), leaving time for the HTTP server
	// to drain before it.
	DefaultFlushTimeout = 20 * time.Second
)

// TracerOptions tune a [Tracer]. Zero values take the defaults.
type TracerOptions struct {
	// QueueSize bounds the traces waiting to be sent (default
	// DefaultQueueSize). When full, new ones are dropped and counted.
	QueueSize int
	// FeedbackQueueSize bounds the feedback items waiting to be sent, in a
	// queue of their own so that a flood of feedback cannot crowd out traces
	// (default DefaultFeedbackQueueSize). When full, new ones are dropped
	// and counted.
	FeedbackQueueSize int
	// BatchSize is the most runs sent in one request (default 100).
	BatchSize int
	// FlushInterval is the longest a run waits for a batch to fill (default 1 s).
	FlushInterval time.Duration
	// FlushTimeout bounds [Tracer.Close] whatever context it is given
	// (default DefaultFlushTimeout); what is not sent by then is counted as
	// failed.
	FlushTimeout time.Duration
	// Logger receives one line per failed batch (default slog.Default()).
	Logger *slog.Logger
}

// Stats counts what a [Tracer] did with the runs it was given.
type Stats struct {
	RunsSent, RunsDropped, RunsFailed             int64
	FeedbackSent, FeedbackDropped, FeedbackFailed int64
	// FeedbackInvalid counts feedback refused because [ParseFeedback] would
	// refuse it (a run id that is not a UUID, a bad key, a long comment).
	FeedbackInvalid int64
	Queued          int // traces waiting
	FeedbackQueued  int // feedback items waiting
}

// traceItem is one submitted trace; seq numbers them in queue order.
type traceItem struct {
	runs []*Run
	seq  uint64
}

// feedbackItem waits for the traces queued before it (up to seq) to leave
// first, so that its run exists when it arrives.
type feedbackItem struct {
	fb    Feedback
	after uint64
}

// Tracer ships traces and feedback to LangSmith from two background
// goroutines, one per queue. A nil *Tracer is valid and does nothing:
// tracing is off.
type Tracer struct {
	client  *Client
	opts    TracerOptions
	queue   chan traceItem
	fbQueue chan feedbackItem
	nudge   chan struct{} // the feedback sender asks for an early flush

	mu       sync.Mutex // orders enqueues: seq follows queue order
	closed   bool
	lastSeq  uint64
	stop     context.CancelFunc
	ctx      context.Context
	done     chan struct{} // the trace sender ended
	fbDone   chan struct{} // the feedback sender ended
	settleMu sync.Mutex
	settled  uint64        // every trace with seq <= settled was sent or failed
	settleCh chan struct{} // closed and replaced when settled grows

	runsSent, runsDropped, runsFailed     atomic.Int64
	fbSent, fbDropped, fbFailed, fbBadArg atomic.Int64
}

// NewTracer starts the background senders. Call Close to flush and stop them.
func NewTracer(client *Client, opts TracerOptions) *Tracer {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.FeedbackQueueSize <= 0 {
		opts.FeedbackQueueSize = DefaultFeedbackQueueSize
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = DefaultFlushTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tracer{client: client, opts: opts,
		queue: make(chan traceItem, opts.QueueSize), fbQueue: make(chan feedbackItem, opts.FeedbackQueueSize),
		nudge: make(chan struct{}, 1), ctx: ctx, stop: cancel,
		done: make(chan struct{}), fbDone: make(chan struct{}), settleCh: make(chan struct{})}
	go t.loop()
	go t.feedbackLoop()
	return t
}

// Enabled reports whether traces are being sent.
func (t *Tracer) Enabled() bool { return t != nil }

// Submit queues a finished trace (root and all descendants) without
// blocking. It reports false when the trace was dropped because the queue
// was full or the tracer closed.
func (t *Tracer) Submit(root *Run) bool {
	if t == nil || root == nil {
		return false
	}
	runs := root.Flatten()
	t.mu.Lock()
	ok := false
	if !t.closed {
		select {
		case t.queue <- traceItem{runs: runs, seq: t.lastSeq + 1}:
			t.lastSeq++
			ok = true
		default:
		}
	}
	t.mu.Unlock()
	if !ok {
		t.runsDropped.Add(int64(len(runs)))
	}
	return ok
}

// Feedback queues fb for POST /feedback without blocking; false if dropped
// (its queue is full, the tracer closed, or fb is malformed: see
// [ParseFeedback]). It is sent after every trace queued before it, so that
// the run exists, from a queue of its own: feedback never takes a trace's
// place.
func (t *Tracer) Feedback(fb Feedback) bool {
	if t == nil {
		return false
	}
	if err := fb.validate(); err != nil {
		t.fbBadArg.Add(1)
		return false
	}
	t.mu.Lock()
	ok := false
	if !t.closed {
		select {
		case t.fbQueue <- feedbackItem{fb: fb, after: t.lastSeq}:
			ok = true
		default:
		}
	}
	t.mu.Unlock()
	if !ok {
		t.fbDropped.Add(1)
	}
	return ok
}

// Stats returns the counters so far.
func (t *Tracer) Stats() Stats {
	if t == nil {
		return Stats{}
	}
	return Stats{
		RunsSent: t.runsSent.Load(), RunsDropped: t.runsDropped.Load(), RunsFailed: t.runsFailed.Load(),
		FeedbackSent: t.fbSent.Load(), FeedbackDropped: t.fbDropped.Load(), FeedbackFailed: t.fbFailed.Load(),
		FeedbackInvalid: t.fbBadArg.Load(),
		Queued:          len(t.queue), FeedbackQueued: len(t.fbQueue),
	}
}

// Close stops accepting work and sends what is queued. It gives up when ctx
// ends or TracerOptions.FlushTimeout passes, whichever is first: sending
// stops, the rest is counted as failed, and the context's error is returned.
func (t *Tracer) Close(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.queue)
		close(t.fbQueue)
	}
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, t.opts.FlushTimeout)
	defer cancel()
	both := make(chan struct{})
	go func() { <-t.done; <-t.fbDone; close(both) }()
	defer t.stop()
	select {
	case <-both:
		return nil
	case <-ctx.Done():
		t.stop()
		<-both
		return ctx.Err()
	}
}

// settle records that every trace up to seq has left (or failed).
func (t *Tracer) settle(seq uint64) {
	t.settleMu.Lock()
	if seq > t.settled {
		t.settled = seq
		close(t.settleCh)
		t.settleCh = make(chan struct{})
	}
	t.settleMu.Unlock()
}

// waitSettled blocks until the traces up to seq have left, asking the trace
// sender to flush now rather than at its next tick. It returns false if the
// tracer is stopping.
func (t *Tracer) waitSettled(seq uint64) bool {
	for {
		t.settleMu.Lock()
		settled, ch := t.settled, t.settleCh
		t.settleMu.Unlock()
		if settled >= seq {
			return true
		}
		select {
		case t.nudge <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-t.done:
			return true
		case <-t.ctx.Done():
			return false
		}
	}
}

func (t *Tracer) loop() {
	defer close(t.done)
	var pending []*Run
	var taken uint64
	timer := time.NewTimer(t.opts.FlushInterval)
	defer timer.Stop()
	flush := func() {
		for len(pending) > 0 {
			n := min(len(pending), t.opts.BatchSize)
			t.send(pending[:n])
			pending = pending[n:]
		}
		pending = nil
		t.settle(taken)
	}
	take := func(it traceItem) {
		pending = append(pending, it.runs...)
		taken = it.seq
	}
	for {
		select {
		case it, ok := <-t.queue:
			if !ok {
				flush()
				return
			}
			take(it)
			if len(pending) >= t.opts.BatchSize {
				flush()
			}
		case <-t.nudge:
			// Take what is queued now: a feedback item waits for it.
			for drained := false; !drained; {
				select {
				case it, ok := <-t.queue:
					if !ok {
						flush()
						return
					}
					take(it)
				default:
					drained = true
				}
			}
			flush()
		case <-timer.C:
			flush()
			timer.Reset(t.opts.FlushInterval)
		}
	}
}

func (t *Tracer) feedbackLoop() {
	defer close(t.fbDone)
	for it := range t.fbQueue {
		if !t.waitSettled(it.after) {
			t.fbFailed.Add(1)
			continue
		}
		t.sendFeedback(it.fb)
	}
}

func (t *Tracer) send(runs []*Run) {
	if t.ctx.Err() != nil {
		t.runsFailed.Add(int64(len(runs)))
		return
	}
	if err := t.client.IngestRuns(t.ctx, runs); err != nil {
		t.runsFailed.Add(int64(len(runs)))
		if !errors.Is(err, context.Canceled) {
			t.opts.Logger.Warn("langsmith: runs not sent", "runs", len(runs), "err", err)
		}
		return
	}
	t.runsSent.Add(int64(len(runs)))
}

func (t *Tracer) sendFeedback(fb Feedback) {
	if t.ctx.Err() != nil {
		t.fbFailed.Add(1)
		return
	}
	if err := t.client.CreateFeedback(t.ctx, fb); err != nil {
		t.fbFailed.Add(1)
		if !errors.Is(err, context.Canceled) {
			t.opts.Logger.Warn("langsmith: feedback not sent", "run_id", fb.RunID, "err", err)
		}
		return
	}
	t.fbSent.Add(1)
}
