package device

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/sugarme/gotch"
)

// Choice is a resolved device and compute dtype.
type Choice struct {
	Device gotch.Device
	DType  gotch.DType
}

// String names the choice as a log line would, e.g. "cpu/float32".
func (c Choice) String() string { return Name(c.Device) + "/" + DTypeName(c.DType) }

// Name names a device as --device does: "cpu" or "cuda:N".
func Name(d gotch.Device) string {
	if d.IsCuda() {
		return fmt.Sprintf("cuda:%d", d.Value)
	}
	return "cpu"
}

// DTypeName names a float dtype as Hugging Face's torch_dtype does
// ("float32", "bfloat16", "float16"); other dtypes get gotch's name.
func DTypeName(d gotch.DType) string {
	switch d {
	case gotch.Float:
		return "float32"
	case gotch.BFloat16:
		return "bfloat16"
	case gotch.Half:
		return "float16"
	}
	return d.String()
}

var logOnce sync.Once

// Pick resolves --device for a process whose local rank (LOCAL_RANK, 0
// outside a data-parallel job) is localRank on a machine where libtorch
// sees cudaCount CUDA devices: auto takes cuda:localRank when there is a
// CUDA device, else the CPU; cuda takes cuda:localRank; cuda:N takes
// device N; cpu the CPU. Each rank of a node so gets its own GPU; a local
// rank with no GPU of its own is an error, not a second rank on a GPU.
func Pick(device string, localRank, cudaCount int) (gotch.Device, error) {
	if localRank < 0 {
		return gotch.CPU, fmt.Errorf("select device: LOCAL_RANK=%d must not be negative", localRank)
	}
	switch {
	case device == "cpu":
		return gotch.CPU, nil
	case device == "" || device == "auto":
		if cudaCount == 0 {
			return gotch.CPU, nil
		}
	case device == "cuda":
		if cudaCount == 0 {
			return gotch.CPU, fmt.Errorf("select device: --device cuda asked for, but libtorch sees no CUDA device")
		}
	case strings.HasPrefix(device, "cuda:"):
		n, err := strconv.Atoi(strings.TrimPrefix(device, "cuda:"))
		if err != nil || n < 0 {
			return gotch.CPU, fmt.Errorf("select device: %q: want cuda:N with N a device number", device)
		}
		if n >= cudaCount {
			return gotch.CPU, fmt.Errorf("select device: --device %s asked for, but libtorch sees %d CUDA devices", device, cudaCount)
		}
		return gotch.CudaBuilder(uint(n)), nil
	default:
		return gotch.CPU, fmt.Errorf("select device: unknown device %q (want auto, cpu, cuda or cuda:N)", device)
	}
	if localRank >= cudaCount {
		return gotch.CPU, fmt.Errorf("select device: LOCAL_RANK=%d but libtorch sees %d CUDA devices (cuda:0..cuda:%d): start at most %d ranks on this node (--nproc-per-node, the job's processes per node), or use --device cpu",
			localRank, cudaCount, cudaCount-1, cudaCount)
	}
	return gotch.CudaBuilder(uint(localRank)), nil
}

// CUDADevices is the number of CUDA devices libtorch sees (0 without
// CUDA).
func CUDADevices() int {
	if !gotch.CUDA.IsAvailable() {
		return 0
	}
	return int(gotch.CUDA.DeviceCount())
}

// Select resolves the --device and --dtype flags: device is auto, cpu,
// cuda or cuda:N; dtype is auto, float32, bfloat16 or float16. auto takes
// CUDA (device 0) when present, and bfloat16 on CUDA, float32 on CPU. The
// first choice made in a process is logged once.
func Select(device, dtype string) (Choice, error) { return SelectRank(device, dtype, 0) }

// SelectRank is Select for local rank localRank of a data-parallel job:
// auto and cuda mean cuda:localRank (Pick).
func SelectRank(device, dtype string, localRank int) (Choice, error) {
	var c Choice
	cudaN := CUDADevices()
	var err error
	if c.Device, err = Pick(device, localRank, cudaN); err != nil {
		return Choice{}, err
	}
	switch dtype {
	case "", "auto":
		c.DType = gotch.Float
		if c.Device.IsCuda() {
			c.DType = gotch.BFloat16
		}
	case "float32":
		c.DType = gotch.Float
	case "bfloat16":
		c.DType = gotch.BFloat16
	case "float16":
		c.DType = gotch.Half
	default:
		return Choice{}, fmt.Errorf("select dtype: unknown dtype %q (want auto, float32, bfloat16 or float16)", dtype)
	}
	logOnce.Do(func() { slog.Info("compute device", "device", c.String(), "cuda_devices", cudaN) })
	return c, nil
}
