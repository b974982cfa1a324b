package torch

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
)

func TestThreads(t *testing.T) {
	old := Threads()
	defer SetThreads(old)
	SetThreads(1)
	if Threads() != 1 {
		t.Errorf("Threads() = %d after SetThreads(1)", Threads())
	}
}

// A failing op leaves libtorch's reason (without its C++ backtrace) in the
// Scope, and every later op does nothing.
func TestScopeKeepsFirstError(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var s Scope
	defer s.Free()
	a := s.Floats(gotch.CPU, gotch.Float, []float32{1, 2, 3, 4, 5, 6}, 2, 3)
	if y := s.Matmul(a, a); y != nil {
		t.Fatal("matmul of [2,3] by [2,3] gave a result")
	}
	err := s.Err()
	if err == nil || !strings.HasPrefix(err.Error(), "matmul: ") || strings.Contains(err.Error(), "Exception raised from") {
		t.Fatalf("error %v, want matmul's reason without a backtrace", err)
	}
	if y := s.Add(a, a); y != nil || s.Err() != err {
		t.Errorf("an op after the failure ran (%v) or replaced the error (%v)", y, s.Err())
	}
}

// Release frees what was made since Mark except what is kept, which the
// scope still owns; Detach hands a result to the caller.
func TestScopeRelease(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var s Scope
	defer s.Free()
	x := s.Floats(gotch.CPU, gotch.Float, []float32{1, 2, 3, 4}, 2, 2)
	mark := s.Mark()
	y := s.MulScalar(s.AddScalar(x, 1), 2)
	s.Release(mark, y)
	if s.Mark() != mark+1 {
		t.Fatalf("%d results owned after Release, want %d", s.Mark(), mark+1)
	}
	if got := s.ReadFloat32s(y); !slices.Equal(got, []float32{4, 6, 8, 10}) {
		t.Errorf("kept result reads %v", got)
	}
	d := s.Detach(s.Contiguous(y))
	defer Free(d)
	if got := Shape(d); !slices.Equal(got, []int64{2, 2}) {
		t.Errorf("detached shape %v", got)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}

// Data goes in and comes out unchanged, whatever the dtype on the way.
func TestDataRoundTrip(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var s Scope
	defer s.Free()
	ids := []int64{3, -1, 7}
	if got := s.ReadInt64s(s.Int64s(gotch.CPU, ids, 3)); !slices.Equal(got, ids) {
		t.Errorf("int64s read back as %v", got)
	}
	if got := s.ReadInt64s(s.Bools(gotch.CPU, []bool{true, false}, 2)); !slices.Equal(got, []int64{1, 0}) {
		t.Errorf("bools read back as %v", got)
	}
	if got := s.Item(s.Norm(s.Floats(gotch.CPU, gotch.Double, []float32{3, 4}, 2))); got != 5 {
		t.Errorf("norm of (3,4) = %v", got)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}
