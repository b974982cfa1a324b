//go:build kfprof && amd64

package model

/*
#cgo CFLAGS: -DKF_PROF
void kf_prof_read(double *out, int threads);
*/
import "C"

import (
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/kfllm/kfllm/internal/torch"
)

// A build with -tags kfprof times every decode step (wall clock, per
// thread in decode_amd64.c, per stage in Go) and writes the per-step
// averages to stderr every profEvery steps; without the tag the hooks are
// empty (decode_noprof.go).

const profEvery = 256

// profState is what a kfprof build adds up between two reports.
type profState struct {
	steps, rows                int
	decodeStart, cStart, cEnd  time.Time
	sampleEnd, lastDecodeEnd   time.Time
	prefillStart               time.Time
	prefillInGap               time.Duration
	gap, pre, c, post, end, pf time.Duration
	prefills, gaps             int
}

var prof profState

func profEvent(e profEv, rows int) {
	now := time.Now()
	p := &prof
	switch e {
	case evDecodeStart:
		p.decodeStart = now
		// A gap with a prefill in it also held the wait for the request:
		// only gaps between steps of running sequences count.
		if !p.lastDecodeEnd.IsZero() && p.prefillInGap == 0 {
			p.gap += now.Sub(p.lastDecodeEnd)
			p.gaps++
		}
		p.prefillInGap = 0
		p.rows += rows
	case evCStart:
		p.cStart = now
		p.pre += now.Sub(p.decodeStart)
	case evCEnd:
		p.cEnd = now
		p.c += now.Sub(p.cStart)
	case evSampleEnd:
		p.sampleEnd = now
		p.post += now.Sub(p.cEnd)
	case evDecodeEnd:
		p.end += now.Sub(p.sampleEnd)
		p.lastDecodeEnd = now
		p.steps++
		if p.steps == profEvery {
			profReport()
		}
	case evPrefillStart:
		p.prefillStart = now
	case evPrefillEnd:
		d := now.Sub(p.prefillStart)
		p.prefillInGap += d
		p.pf += d
		p.prefills++
	}
}

func profReport() {
	p := &prof
	T := torch.Threads()
	buf := make([]float64, T*11)
	C.kf_prof_read((*C.double)(unsafe.Pointer(&buf[0])), C.int(T))
	n := float64(p.steps)
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
	gap := 0.0
	if p.gaps > 0 {
		gap = float64(p.gap.Microseconds()) / float64(p.gaps)
	}
	fmt.Fprintf(os.Stderr, "kfprof: %d steps, %.2f rows: gap %.0f pre %.0f C %.0f sample %.0f end %.0f us/step; %d prefills %.0f us/step\n",
		p.steps, float64(p.rows)/n, gap, us(p.pre), us(p.c), us(p.post), us(p.end), p.prefills, us(p.pf))
	for t := 0; t < T; t++ {
		b := buf[t*11:]
		run := b[5]
		fmt.Fprintf(os.Stderr, "kfprof: thread %d: products %.0f head %.0f attention %.0f wait %.0f rest %.0f run %.0f decode %.0f us/step; %.1f sleeps %.1f wakes (%.0f us) a step; %.0f%% long spins\n",
			t, b[0]/1e3/n, b[1]/1e3/n, b[3]/1e3/n, b[4]/1e3/n, (run-b[0]-b[1]-b[3]-b[4])/1e3/n, run/1e3/n, b[6]/1e3/n, b[7]/n, b[8]/n, b[9]/1e3/n, 100*b[10]/n)
	}
	*p = profState{lastDecodeEnd: p.lastDecodeEnd}
}
