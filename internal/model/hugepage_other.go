//go:build !linux

package model

// hugeWeights does nothing outside Linux (hugepage_linux.go).
func (m *Model) hugeWeights() {}
