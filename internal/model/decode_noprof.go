//go:build !kfprof || !amd64

package model

// profEvent marks a stage of a step for the kfprof build (decode_prof.go).
func profEvent(profEv, int) {}
