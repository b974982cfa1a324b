package langsmith

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// TracerOptions tune a [Tracer]. Zero values take the defaults.
type TracerOptions struct {
	// QueueSize bounds the traces and feedback items waiting to be sent
	// (default 1000). When full, new ones are dropped and counted.
	QueueSize int
	// BatchSize is the most runs sent in one request (default 100).
	BatchSize int
	// FlushInterval is the longest a run waits for a batch to fill (default 1 s).
	FlushInterval time.Duration
	// Logger receives one line per failed batch (default slog.Default()).
	Logger *slog.Logger
}

// Stats counts what a [Tracer] did with the runs it was given.
type Stats struct {
	RunsSent, RunsDropped, RunsFailed             int64
	FeedbackSent, FeedbackDropped, FeedbackFailed int64
	Queued                                        int
}

type item struct {
	runs     []*Run
	feedback *Feedback
}

// Tracer ships traces and feedback to LangSmith from a background goroutine.
// A nil *Tracer is valid and does nothing: tracing is off.
type Tracer struct {
	client *Client
	opts   TracerOptions
	queue  chan item

	mu     sync.RWMutex
	closed bool
	stop   context.CancelFunc
	ctx    context.Context
	done   chan struct{}

	runsSent, runsDropped, runsFailed atomic.Int64
	fbSent, fbDropped, fbFailed       atomic.Int64
}

// NewTracer starts the background sender. Call Close to flush and stop it.
func NewTracer(client *Client, opts TracerOptions) *Tracer {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 100
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tracer{client: client, opts: opts, queue: make(chan item, opts.QueueSize),
		ctx: ctx, stop: cancel, done: make(chan struct{})}
	go t.loop()
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
	if !t.enqueue(item{runs: runs}) {
		t.runsDropped.Add(int64(len(runs)))
		return false
	}
	return true
}

// Feedback queues fb for POST /feedback without blocking; false if dropped.
// It is sent after every trace queued before it, so that the run exists.
func (t *Tracer) Feedback(fb Feedback) bool {
	if t == nil {
		return false
	}
	if !t.enqueue(item{feedback: &fb}) {
		t.fbDropped.Add(1)
		return false
	}
	return true
}

func (t *Tracer) enqueue(it item) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return false
	}
	select {
	case t.queue <- it:
		return true
	default:
		return false
	}
}

// Stats returns the counters so far.
func (t *Tracer) Stats() Stats {
	if t == nil {
		return Stats{}
	}
	return Stats{
		RunsSent: t.runsSent.Load(), RunsDropped: t.runsDropped.Load(), RunsFailed: t.runsFailed.Load(),
		FeedbackSent: t.fbSent.Load(), FeedbackDropped: t.fbDropped.Load(), FeedbackFailed: t.fbFailed.Load(),
		Queued: len(t.queue),
	}
}

// Close stops accepting work and sends what is queued. If ctx ends first,
// sending stops and the rest is counted as failed; ctx's error is returned.
func (t *Tracer) Close(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.queue)
	}
	t.mu.Unlock()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		t.stop()
		<-t.done
		return ctx.Err()
	}
}

func (t *Tracer) loop() {
	defer close(t.done)
	defer t.stop()
	var pending []*Run
	timer := time.NewTimer(t.opts.FlushInterval)
	defer timer.Stop()
	flush := func() {
		for len(pending) > 0 {
			n := min(len(pending), t.opts.BatchSize)
			t.send(pending[:n])
			pending = pending[n:]
		}
		pending = nil
	}
	for {
		select {
		case it, ok := <-t.queue:
			if !ok {
				flush()
				return
			}
			if it.feedback != nil {
				flush()
				t.sendFeedback(*it.feedback)
				continue
			}
			pending = append(pending, it.runs...)
			if len(pending) >= t.opts.BatchSize {
				flush()
			}
		case <-timer.C:
			flush()
			timer.Reset(t.opts.FlushInterval)
		}
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
		t.opts.Logger.Warn("langsmith: feedback not sent", "run_id", fb.RunID, "err", err)
		return
	}
	t.fbSent.Add(1)
}
