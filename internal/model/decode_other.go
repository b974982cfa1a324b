//go:build !amd64

package model

// fusedModel: decode_amd64.c is x86 only; elsewhere libtorch runs every
// decode step.
type fusedModel struct{}

func (m *Model) fusedFor([]*Sequence) *fusedModel { return nil }

func (f *fusedModel) step(*Model, *BatchCache, []*Sequence, []int64, []int64) error { return nil }

func (f *fusedModel) free() {}
