package server

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the UI's Prometheus figures, served at GET /metrics.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec // by route and status code
	limited  *prometheus.CounterVec // by reason
}

func newMetrics(l *limits) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kfllm_ui_requests_total",
			Help: "Requests to the UI's API routes, by route and HTTP status.",
		}, []string{"route", "code"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kfllm_ui_limited_total",
			Help: "Requests refused by a limit: rate (the client's token bucket), client_concurrency, concurrency (all clients), unauthenticated (no trusted identity when one is required).",
		}, []string{"reason"}),
	}
	for _, r := range []limitReason{limitedRate, limitedClientConcurrent, limitedConcurrent, "unauthenticated"} {
		m.limited.WithLabelValues(string(r))
	}
	m.reg.MustRegister(m.requests, m.limited,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kfllm_ui_generations_in_flight",
			Help: "Generations being streamed now, all clients together.",
		}, func() float64 { _, a := l.counts(); return float64(a) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kfllm_ui_clients_tracked",
			Help: "Client addresses whose limits are kept now.",
		}, func() float64 { c, _ := l.counts(); return float64(c) }),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// count wraps an API route so that its responses are counted by status.
func (m *metrics) count(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	}
}

// statusWriter records the status a handler answered with. Unwrap lets
// http.ResponseController reach the connection's Flush.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
