package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kfllm/kfllm/internal/scheduler"
	"github.com/kfllm/kfllm/internal/scheduler/schedulertest"
)

func reverse(s string) string {
	r := []rune(s)
	slices.Reverse(r)
	return string(r)
}

func newScheduler(t *testing.T, eng *schedulertest.Engine, opts scheduler.Options) *scheduler.Scheduler {
	t.Helper()
	opts.EOS = []int{schedulertest.EOS}
	s := scheduler.New(eng, schedulertest.ByteTokenizer{}, opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if n := eng.Live(); n != 0 {
			t.Errorf("%d sequences never released", n)
		}
	})
	return s
}

func TestGenerateStreamsWholeAnswer(t *testing.T) {
	eng := &schedulertest.Engine{Answer: func(p string) string { return "héllo wörld ✓" }}
	s := newScheduler(t, eng, scheduler.Options{})
	var pieces []string
	res, err := s.Generate(context.Background(), scheduler.Request{Prompt: "abc"}, func(d string) error {
		pieces = append(pieces, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != "héllo wörld ✓" || res.FinishReason != "stop" || res.TokensIn != 3 || res.TokensOut != len("héllo wörld ✓") {
		t.Errorf("result %+v", res)
	}
	if got := strings.Join(pieces, ""); got != res.Text {
		t.Errorf("streamed %q, want %q", got, res.Text)
	}
	for _, p := range pieces {
		if !utf8.ValidString(p) {
			t.Errorf("streamed piece %q splits a character", p)
		}
	}
}

func TestMaxNewTokensAndContextCap(t *testing.T) {
	eng := &schedulertest.Engine{Endless: true, Answer: func(string) string { return "ab" }}
	s := newScheduler(t, eng, scheduler.Options{MaxNewTokens: 7, ContextLength: 12})
	res, err := s.Generate(context.Background(), scheduler.Request{Prompt: "xy", Sampling: scheduler.Sampling{MaxNewTokens: 5}}, nil)
	if err != nil || res.Text != "ababa" || res.FinishReason != "length" || res.TokensOut != 5 {
		t.Errorf("asked 5: %+v %v", res, err)
	}
	res, _ = s.Generate(context.Background(), scheduler.Request{Prompt: "xy", Sampling: scheduler.Sampling{MaxNewTokens: 100}}, nil)
	if res.TokensOut != 7 {
		t.Errorf("server cap 7: got %d tokens", res.TokensOut)
	}
	res, _ = s.Generate(context.Background(), scheduler.Request{Prompt: "123456789"}, nil)
	if res.TokensOut != 3 {
		t.Errorf("context 12 with a 9-token prompt: got %d new tokens, want 3", res.TokensOut)
	}
	_, err = s.Generate(context.Background(), scheduler.Request{Prompt: "123456789012"}, nil)
	if !errors.Is(err, scheduler.ErrPromptTooLong) {
		t.Errorf("12-token prompt in a 12-token context: err %v", err)
	}
}

func TestStopStrings(t *testing.T) {
	eng := &schedulertest.Engine{Answer: func(string) string { return "hello STOP world" }}
	s := newScheduler(t, eng, scheduler.Options{})
	var streamed strings.Builder
	res, err := s.Generate(context.Background(), scheduler.Request{Prompt: "q", Stop: []string{"\n\n", "STOP"}}, func(d string) error {
		streamed.WriteString(d)
		return nil
	})
	if err != nil || res.Text != "hello " || res.FinishReason != "stop" {
		t.Fatalf("result %+v, %v", res, err)
	}
	if streamed.String() != "hello " {
		t.Errorf("streamed %q: a stop string's prefix leaked", streamed.String())
	}
}

// Concurrent callers share decoding steps and each gets its own answer.
func TestConcurrentRequestsAreBatched(t *testing.T) {
	eng := &schedulertest.Engine{Answer: reverse, StepDelay: time.Millisecond}
	s := newScheduler(t, eng, scheduler.Options{MaxBatch: 8})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prompt := fmt.Sprintf("request number %02d and some padding text", i)
			res, err := s.Generate(context.Background(), scheduler.Request{Prompt: prompt}, nil)
			if err != nil {
				errs <- err
			} else if res.Text != reverse(prompt) {
				errs <- fmt.Errorf("request %d got %q", i, res.Text)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	b := eng.Batches()
	if slices.Max(b) < 4 || slices.Max(b) > 8 {
		t.Errorf("largest batch %d: want between 4 and MaxBatch 8", slices.Max(b))
	}
	if st := s.Stats(); st.Requests != 16 || st.Active != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestQueueFull(t *testing.T) {
	eng := &schedulertest.Engine{Endless: true, StepDelay: time.Millisecond}
	s := newScheduler(t, eng, scheduler.Options{MaxBatch: 1, QueueSize: 1, MaxNewTokens: 1 << 20, ContextLength: 1 << 21})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // takes the one batch slot
		defer wg.Done()
		s.Generate(ctx, scheduler.Request{Prompt: "a"}, func(string) error {
			select {
			case <-started:
			default:
				close(started)
			}
			return nil
		})
	}()
	<-started
	go func() { defer wg.Done(); s.Generate(ctx, scheduler.Request{Prompt: "b"}, nil) }() // waits in the queue
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Queued != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Generate(ctx, scheduler.Request{Prompt: "c"}, nil); !errors.Is(err, scheduler.ErrQueueFull) {
		t.Errorf("third request: %v, want ErrQueueFull", err)
	}
	cancel()
	wg.Wait()
}

func TestCallerGoneStopsWork(t *testing.T) {
	eng := &schedulertest.Engine{Endless: true, StepDelay: time.Millisecond}
	s := newScheduler(t, eng, scheduler.Options{MaxNewTokens: 1 << 20, ContextLength: 1 << 21})
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := s.Generate(ctx, scheduler.Request{Prompt: "x"}, func(string) error {
		if n++; n == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for eng.Live() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	steps := len(eng.Batches())
	time.Sleep(20 * time.Millisecond)
	if eng.Live() != 0 || len(eng.Batches()) != steps {
		t.Errorf("work went on after the caller left: live %d, steps %d -> %d", eng.Live(), steps, len(eng.Batches()))
	}
	// A callback error stops the generation too and is returned.
	boom := errors.New("client write failed")
	if _, err := s.Generate(context.Background(), scheduler.Request{Prompt: "x"}, func(string) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("callback error: got %v", err)
	}
}

func TestEnginePanicFailsOnlyThatBatch(t *testing.T) {
	eng := &schedulertest.Engine{PanicOn: "poison"}
	s := newScheduler(t, eng, scheduler.Options{})
	if _, err := s.Generate(context.Background(), scheduler.Request{Prompt: "poison pill"}, nil); err == nil ||
		!strings.Contains(err.Error(), "engine panic") {
		t.Fatalf("err %v, want an engine panic error", err)
	}
	res, err := s.Generate(context.Background(), scheduler.Request{Prompt: "fine"}, nil)
	if err != nil || res.Text != "fine" {
		t.Fatalf("after a panic: %+v %v", res, err)
	}
}

func TestCloseFinishesInFlight(t *testing.T) {
	eng := &schedulertest.Engine{StepDelay: time.Millisecond, Answer: func(string) string { return strings.Repeat("z", 40) }}
	s := scheduler.New(eng, schedulertest.ByteTokenizer{}, scheduler.Options{EOS: []int{schedulertest.EOS}})
	done := make(chan scheduler.Result)
	started := make(chan struct{})
	go func() {
		var once sync.Once
		res, _ := s.Generate(context.Background(), scheduler.Request{Prompt: "p"}, func(string) error {
			once.Do(func() { close(started) })
			return nil
		})
		done <- res
	}()
	<-started
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := <-done; len(res.Text) != 40 {
		t.Errorf("in-flight request cut short: %q", res.Text)
	}
	if _, err := s.Generate(context.Background(), scheduler.Request{Prompt: "p"}, nil); !errors.Is(err, scheduler.ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}
