package dist

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/torch"
)

// port is a TCP port that was free a moment ago.
func port(t *testing.T) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// peer starts this test binary as another rank running the helper test
// named mode.
func peer(t *testing.T, mode string, e Env) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRank$", "-test.v")
	cmd.Env = append(os.Environ(), e.Vars()...)
	cmd.Env = append(cmd.Env, "KFLLM_DIST_HELPER="+mode)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// seen is what a rank of rankBody saw.
type seen struct {
	backend string
	sums    [][]float32
	bcast   []float32
}

// rankBody is what each rank of TestAllReduceAndBroadcast (and of
// TestNCCLGroup) does: sum three tensors in two buckets, then take rank
// 0's values by broadcast, on the CPU (Gloo) or on cuda:LOCAL_RANK
// (NCCL). It returns what it saw, for the caller to check.
func rankBody(e Env, cuda bool) (seen, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g, err := NewGroup(Config{Env: e, Timeout: 30 * time.Second, CUDA: cuda, Device: e.LocalRank})
	if err != nil {
		return seen{}, err
	}
	defer g.Close()
	dev := gotch.CPU
	if cuda {
		dev = gotch.CudaBuilder(uint(e.LocalRank))
	}
	var s torch.Scope
	defer s.Free()
	r := float32(e.Rank + 1)
	a := s.Floats(dev, gotch.Float, []float32{r, 2 * r, 3 * r}, 3)
	b := s.Floats(dev, gotch.Float, []float32{10 * r, 20 * r}, 2)
	c := s.Floats(dev, gotch.Float, []float32{100 * r}, 1)
	if err := g.AllReduceSum([]torch.Tensor{a, b, c}, []int{2, 1}); err != nil {
		return seen{}, err
	}
	out := seen{backend: g.Backend(), sums: [][]float32{s.ReadFloat32s(a), s.ReadFloat32s(b), s.ReadFloat32s(c)}}
	d := s.Floats(dev, gotch.Float, []float32{r, -r}, 2)
	if err := g.Broadcast([]torch.Tensor{d}, 0); err != nil {
		return seen{}, err
	}
	if err := g.Barrier(); err != nil {
		return seen{}, err
	}
	out.bcast = s.ReadFloat32s(d)
	return out, s.Err()
}

// checkSeen compares a rank's view of rankBody with two ranks' sums.
func checkSeen(t *testing.T, got seen, backend string) {
	t.Helper()
	if got.backend != backend {
		t.Errorf("backend %q, want %q", got.backend, backend)
	}
	want := [][]float32{{3, 6, 9}, {30, 60}, {300}}
	for i := range want {
		if i >= len(got.sums) || !slices.Equal(got.sums[i], want[i]) {
			t.Errorf("allreduce tensor %d = %v, want %v (the sum of ranks 1 and 2's values)", i, got.sums, want[i])
		}
	}
	if !slices.Equal(got.bcast, []float32{1, -1}) {
		t.Errorf("broadcast from rank 0 = %v, want [1 -1]", got.bcast)
	}
}

// TestHelperRank is not a test: it is a peer rank that the tests start.
func TestHelperRank(t *testing.T) {
	mode := os.Getenv("KFLLM_DIST_HELPER")
	if mode == "" {
		t.Skip("a peer rank for the other tests")
	}
	e, err := FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "sum", "sum-cuda":
		got, err := rankBody(e, mode == "sum-cuda")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "rank %d: %+v\n", e.Rank, got)
	case "bench":
		if err := benchPeer(e); err != nil {
			t.Fatal(err)
		}
	case "die":
		runtime.LockOSThread()
		if _, err := NewGroup(Config{Env: e, Timeout: 30 * time.Second}); err != nil {
			t.Fatal(err)
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

// Two processes on loopback: the sums and the broadcast go through
// c10d's ProcessGroupGloo and come out the same on both ranks.
func TestAllReduceAndBroadcast(t *testing.T) {
	e := Env{WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: port(t)}
	one := e
	one.Rank, one.LocalRank = 1, 1
	cmd := peer(t, "sum", one)
	got, err := rankBody(e, false)
	if err != nil {
		t.Fatal(err)
	}
	checkSeen(t, got, Gloo)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("rank 1: %v", err)
	}
}

// A CUDA group is NCCL's. In the CPU build (no nccl tag) asking for one
// is a clear error; in the nccl build on a machine without a GPU, the
// error comes from libtorch_cuda's ProcessGroupNCCL itself (which shows
// the NCCL code is linked and reached); with two GPUs, two processes sum
// and broadcast on cuda:0 and cuda:1 through NCCL.
func TestNCCLGroup(t *testing.T) {
	e := Env{WorldSize: 1, MasterAddr: "127.0.0.1", MasterPort: port(t)}
	gpus := 0
	if gotch.CUDA.IsAvailable() {
		gpus = int(gotch.CUDA.DeviceCount())
	}
	t.Logf("nccl built: %v, CUDA devices: %d", NCCLBuilt(), gpus)
	if !NCCLBuilt() || gpus == 0 {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_, err := NewGroup(Config{Env: e, Timeout: 10 * time.Second, CUDA: true})
		want := "without the nccl tag"
		if NCCLBuilt() {
			want = "ProcessGroupNCCL is only supported with GPUs, no GPUs found"
		}
		if !errors.Is(err, ErrGroup) || !strings.Contains(err.Error(), want) {
			t.Fatalf("CUDA group = %v, want an ErrGroup error saying %q", err, want)
		}
		t.Logf("CUDA group: %v", err)
		return
	}
	if gpus < 2 {
		t.Skipf("%d CUDA device: two NCCL ranks need two", gpus)
	}
	e.WorldSize = 2
	one := e
	one.Rank, one.LocalRank = 1, 1
	cmd := peer(t, "sum-cuda", one)
	got, err := rankBody(e, true)
	if err != nil {
		t.Fatal(err)
	}
	checkSeen(t, got, NCCL)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("rank 1: %v", err)
	}
}

// A rank killed with SIGKILL makes the survivor's next collective fail
// with an error, not hang.
func TestPeerKilledFailsCollective(t *testing.T) {
	e := Env{WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: port(t)}
	one := e
	one.Rank = 1
	cmd := peer(t, "die", one)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g, err := NewGroup(Config{Env: e, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	var s torch.Scope
	defer s.Free()
	x := s.Floats(gotch.CPU, gotch.Float, []float32{1}, 1)
	err = g.AllReduceSum([]torch.Tensor{x}, []int{1})
	if !errors.Is(err, ErrGroup) {
		t.Fatalf("allreduce with a dead peer = %v, want an ErrGroup error", err)
	}
	t.Logf("survivor's error: %v", err)
}

func TestFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	e, err := FromEnv(env())
	if err != nil || e.Distributed() || e.WorldSize != 1 {
		t.Errorf("no variables: %+v, %v; want a single rank", e, err)
	}
	e, err = FromEnv(env("WORLD_SIZE", "4", "RANK", "3", "LOCAL_RANK", "1", "MASTER_ADDR", "job-master-0", "MASTER_PORT", "23456"))
	if err != nil || e != (Env{Rank: 3, WorldSize: 4, LocalRank: 1, MasterAddr: "job-master-0", MasterPort: 23456}) {
		t.Errorf("PyTorchJob variables: %+v, %v", e, err)
	}
	// A TrainJob's torch runtime sets torchrun's PET_* variables instead.
	pet, err := FromEnv(env("PET_NNODES", "3", "PET_NPROC_PER_NODE", "1", "PET_NODE_RANK", "2", "PET_MASTER_ADDR", "j-node-0-0.j", "PET_MASTER_PORT", "29400"))
	if err != nil || pet != (Env{Rank: 2, WorldSize: 3, MasterAddr: "j-node-0-0.j", MasterPort: 29400}) {
		t.Errorf("TrainJob variables: %+v, %v", pet, err)
	}
	for _, bad := range [][]string{
		{"PET_NNODES", "2", "PET_NPROC_PER_NODE", "auto", "PET_NODE_RANK", "1", "PET_MASTER_ADDR", "a", "PET_MASTER_PORT", "1"}, // one rank per pod
		{"PET_NNODES", "2", "PET_NPROC_PER_NODE", "1", "PET_MASTER_ADDR", "a", "PET_MASTER_PORT", "1"},                          // no node rank
		{"WORLD_SIZE", "2", "MASTER_ADDR", "a", "MASTER_PORT", "1"},                                                             // no RANK
		{"WORLD_SIZE", "2", "RANK", "2", "MASTER_ADDR", "a", "MASTER_PORT", "1"},                                                // rank out of range
		{"WORLD_SIZE", "2", "RANK", "1", "MASTER_PORT", "1"},                                                                    // no MASTER_ADDR
		{"WORLD_SIZE", "2", "RANK", "1", "MASTER_ADDR", "a", "MASTER_PORT", "x"},
		{"WORLD_SIZE", "two"},
	} {
		if _, err := FromEnv(env(bad...)); err == nil {
			t.Errorf("FromEnv(%v) = nil error", bad)
		}
	}
	// Vars is what Launch hands a child: FromEnv reads back the same Env.
	vars := map[string]string{}
	for _, kv := range e.Vars() {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	if back, err := FromEnv(func(k string) string { return vars[k] }); err != nil || back != e {
		t.Errorf("FromEnv(Vars()) = %+v, %v; want %+v", back, err, e)
	}
}

// BenchmarkAllReduce sums a 29 MB float32 bucket (the gradients of the
// 7.2M-parameter model bench/dataparallel trains) between two processes
// over loopback: the transfer cost of one step's allreduce, without the
// wait for a slower rank that a training step's share includes.
func BenchmarkAllReduce(b *testing.B) {
	const n = 7_200_000
	e := Env{WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: benchPort(b)}
	one := e
	one.Rank = 1
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRank$")
	cmd.Env = append(append(os.Environ(), one.Vars()...), "KFLLM_DIST_HELPER=bench", "KFLLM_DIST_N="+strconv.Itoa(b.N))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g, err := NewGroup(Config{Env: e, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	var s torch.Scope
	defer s.Free()
	x := s.Zeros(gotch.CPU, gotch.Float, n)
	if err := g.Barrier(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4 * n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := g.AllReduceSum([]torch.Tensor{x}, []int{1}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchPort(b *testing.B) int {
	p, err := freePort()
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// benchPeer is BenchmarkAllReduce's rank 1.
func benchPeer(e Env) error {
	runtime.LockOSThread()
	g, err := NewGroup(Config{Env: e, Timeout: time.Minute})
	if err != nil {
		return err
	}
	defer g.Close()
	var s torch.Scope
	defer s.Free()
	x := s.Zeros(gotch.CPU, gotch.Float, 7_200_000)
	if err := g.Barrier(); err != nil {
		return err
	}
	n, _ := strconv.Atoi(os.Getenv("KFLLM_DIST_N"))
	for i := 0; i < n; i++ {
		if err := g.AllReduceSum([]torch.Tensor{x}, []int{1}); err != nil {
			return err
		}
	}
	return nil
}
