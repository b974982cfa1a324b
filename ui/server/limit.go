package server

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the public UI's limits (Options). A person asks a question
// every few seconds at most and reads the answer; these leave room for that
// and stop one address from taking the model for itself.
const (
	DefaultRatePerClient          = 1.0 // API requests per second, on average
	DefaultRateBurst              = 10
	DefaultMaxConcurrentPerClient = 2
	DefaultMaxConcurrent          = 16
	// concurrencyRetryAfter is the Retry-After of a refusal for too many
	// generations at once: about how long a short answer takes.
	concurrencyRetryAfter = 5 * time.Second
	// sweepEvery is how often idle clients' state is forgotten.
	sweepEvery = time.Minute
)

// limitReason names why a request was refused, as the metric's label.
type limitReason string

const (
	limitedRate             limitReason = "rate"
	limitedClientConcurrent limitReason = "client_concurrency"
	limitedConcurrent       limitReason = "concurrency"
)

// limits holds a token bucket and a count of generations in flight per
// client address, and the count in all.
type limits struct {
	every     rate.Limit // 0: no rate limit
	burst     int
	perClient int // 0: no cap
	total     int // 0: no cap

	mu        sync.Mutex
	clients   map[netip.Addr]*clientState
	active    int
	lastSweep time.Time
}

type clientState struct {
	bucket *rate.Limiter
	active int
}

func newLimits(perSecond float64, burst, perClient, total int) *limits {
	l := &limits{burst: burst, perClient: perClient, total: total, clients: map[netip.Addr]*clientState{}}
	if perSecond > 0 {
		l.every = rate.Limit(perSecond)
	}
	return l
}

// refusal is a request the limits turned away.
type refusal struct {
	reason     limitReason
	retryAfter time.Duration
}

// allow takes a token from addr's bucket. It refuses, saying when a token
// will be there, when the bucket is empty.
func (l *limits) allow(addr netip.Addr, now time.Time) *refusal {
	if l.every == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(addr, now)
	res := st.bucket.ReserveN(now, 1)
	if !res.OK() {
		return &refusal{limitedRate, time.Second}
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return &refusal{limitedRate, d}
	}
	return nil
}

// begin counts a generation in flight for addr; release undoes it. It
// refuses when addr or everyone together has as many as allowed.
func (l *limits) begin(addr netip.Addr, now time.Time) (release func(), _ *refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(addr, now)
	switch {
	case l.perClient > 0 && st.active >= l.perClient:
		return nil, &refusal{limitedClientConcurrent, concurrencyRetryAfter}
	case l.total > 0 && l.active >= l.total:
		return nil, &refusal{limitedConcurrent, concurrencyRetryAfter}
	}
	st.active++
	l.active++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			st.active--
			l.active--
			l.mu.Unlock()
		})
	}, nil
}

// state returns addr's state, creating it; every sweepEvery it forgets the
// clients with nothing in flight and a full bucket (they are as if new).
// The caller holds l.mu.
func (l *limits) state(addr netip.Addr, now time.Time) *clientState {
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.lastSweep = now
		for a, st := range l.clients {
			if st.active == 0 && (st.bucket == nil || st.bucket.TokensAt(now) >= float64(l.burst)) {
				delete(l.clients, a)
			}
		}
	}
	st := l.clients[addr]
	if st == nil {
		st = &clientState{}
		if l.every != 0 {
			st.bucket = rate.NewLimiter(l.every, l.burst)
		}
		l.clients[addr] = st
	}
	return st
}

// counts returns the clients tracked and the generations in flight.
func (l *limits) counts() (clients, active int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients), l.active
}

// writeRefusal answers 429 with Retry-After in whole seconds (at least 1).
func writeRefusal(w http.ResponseWriter, f *refusal) {
	secs := int(math.Ceil(f.retryAfter.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	var msg string
	switch f.reason {
	case limitedRate:
		msg = "Too many requests from your address. " + retryIn(time.Duration(secs)*time.Second)
	case limitedClientConcurrent:
		msg = "You already have answers being written. Wait for one to finish (or stop it), then ask again."
	default:
		msg = fmt.Sprintf("The model is busy answering other people's questions. %s", retryIn(time.Duration(secs)*time.Second))
	}
	writeError(w, http.StatusTooManyRequests, msg)
}
