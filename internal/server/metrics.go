package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kfllm/kfllm/internal/scheduler"
)

// metrics are the server's Prometheus series, on a registry of its own.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	tokensOut prometheus.Counter
	tokensIn  prometheus.Counter
	tokenRate prometheus.Histogram
	instances *prometheus.CounterVec
	panics    prometheus.Counter
	feedback  *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kfllm_http_requests_total", Help: "HTTP requests by route template, method and status code.",
	}, []string{"route", "method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kfllm_http_request_duration_seconds", Help: "HTTP request latency by route template, method and status code.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"route", "method", "code"})
	m.tokensOut = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kfllm_generated_tokens_total", Help: "Tokens generated for answered instances."})
	m.tokensIn = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kfllm_prompt_tokens_total", Help: "Prompt tokens of answered instances."})
	m.tokenRate = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "kfllm_generation_tokens_per_second", Help: "Per-instance decode speed (tokens out / generation time).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12)})
	m.instances = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kfllm_instances_total", Help: "Chain invocations by outcome (ok or error)."}, []string{"outcome"})
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kfllm_http_panics_total", Help: "Handler panics recovered into 500s."})
	m.feedback = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kfllm_feedback_total", Help: "User feedback by outcome (queued, dropped, disabled)."}, []string{"outcome"})
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.tokensOut, m.tokensIn, m.tokenRate, m.instances, m.panics, m.feedback} {
		f(c)
	}
	sched := func(get func(scheduler.Stats) float64) func() float64 {
		return func() float64 {
			if st := s.st.Load(); st != nil && st.backend.Stats != nil {
				return get(st.backend.Stats())
			}
			return 0
		}
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kfllm_queue_depth", Help: "Requests waiting for a batch slot."},
		sched(func(s scheduler.Stats) float64 { return float64(s.Queued) })))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kfllm_active_sequences", Help: "Sequences in the decoding batch."},
		sched(func(s scheduler.Stats) float64 { return float64(s.Active) })))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kfllm_decode_steps_total", Help: "Batched decoding steps run."},
		sched(func(s scheduler.Stats) float64 { return float64(s.Steps) })))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kfllm_model_ready", Help: "1 once the model is loaded."},
		func() float64 {
			if s.st.Load() != nil {
				return 1
			}
			return 0
		}))
	trace := func(get func(st traceStats) int64) func() float64 {
		return func() float64 {
			st := s.opts.Tracer.Stats()
			return float64(get(traceStats{st.RunsSent, st.RunsDropped, st.RunsFailed, int64(st.Queued)}))
		}
	}
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kfllm_langsmith_runs_sent_total", Help: "LangSmith runs delivered."},
		trace(func(t traceStats) int64 { return t.sent })))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kfllm_langsmith_runs_dropped_total", Help: "LangSmith runs dropped because the queue was full."},
		trace(func(t traceStats) int64 { return t.dropped })))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kfllm_langsmith_runs_failed_total", Help: "LangSmith runs given up on after retries."},
		trace(func(t traceStats) int64 { return t.failed })))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kfllm_langsmith_queue_depth", Help: "Traces waiting to be sent to LangSmith."},
		trace(func(t traceStats) int64 { return t.queued })))
	return m
}

type traceStats struct{ sent, dropped, failed, queued int64 }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observe records one answered instance.
func (m *metrics) observe(a answer) {
	m.instances.WithLabelValues("ok").Inc()
	m.tokensOut.Add(float64(a.TokensOut))
	m.tokensIn.Add(float64(a.TokensIn))
	if a.Latency > 0 && a.TokensOut > 0 {
		m.tokenRate.Observe(float64(a.TokensOut) / a.Latency.Seconds())
	}
}
