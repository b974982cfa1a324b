package device

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/sugarme/gotch"
)

// Choice is a resolved device and compute dtype.
type Choice struct {
	Device gotch.Device
	DType  gotch.DType
}

// String names the choice as a log line would, e.g. "cpu/float32".
func (c Choice) String() string {
	dev := "cpu"
	if c.Device.IsCuda() {
		dev = fmt.Sprintf("cuda:%d", c.Device.Value)
	}
	return dev + "/" + DTypeName(c.DType)
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

// Select resolves the --device and --dtype flags: device is auto, cpu or
// cuda; dtype is auto, float32, bfloat16 or float16. auto takes CUDA when
// present, and bfloat16 on CUDA, float32 on CPU. The first choice made in a
// process is logged once.
func Select(device, dtype string) (Choice, error) {
	var c Choice
	cudaOK := gotch.CUDA.IsAvailable()
	switch device {
	case "", "auto":
		c.Device = gotch.CPU
		if cudaOK {
			c.Device = gotch.CudaBuilder(0)
		}
	case "cpu":
		c.Device = gotch.CPU
	case "cuda":
		if !cudaOK {
			return Choice{}, fmt.Errorf("select device: --device cuda asked for, but libtorch sees no CUDA device")
		}
		c.Device = gotch.CudaBuilder(0)
	default:
		return Choice{}, fmt.Errorf("select device: unknown device %q (want auto, cpu or cuda)", device)
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
	logOnce.Do(func() { slog.Info("compute device", "device", c.String(), "cuda_available", cudaOK) })
	return c, nil
}
