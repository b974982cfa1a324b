package model

// profEv names the stages of a step that a kfprof build times
// (decode_prof.go).
type profEv int

const (
	evDecodeStart profEv = iota
	evCStart
	evCEnd
	evSampleEnd
	evDecodeEnd
	evPrefillStart
	evPrefillEnd
)
