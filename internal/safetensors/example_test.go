package safetensors_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/kfllm/kfllm/internal/safetensors"
)

func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "train.safetensors")

	ids := []int32{101, 2054, 102, 0}
	err := safetensors.WriteFile(path, []safetensors.Tensor{
		{Name: "input_ids", DType: safetensors.I32, Shape: []int64{1, 4}, Data: safetensors.BytesOfInt32s(ids)},
	}, map[string]string{"format": "pt"})
	if err != nil {
		log.Fatal(err)
	}

	f, err := safetensors.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Info("input_ids")
	raw, _ := f.Data("input_ids") // a view into the mapped file
	fmt.Println(info.DType, info.Shape, safetensors.Int32s(raw), f.Metadata()["format"])
	// Output: I32 [1 4] [101 2054 102 0] pt
}

func ExampleCreate() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	// Declare the tensors, then stream each one's bytes: a large model never
	// has to sit in memory twice.
	w, err := safetensors.Create(filepath.Join(dir, "model-00001-of-00001.safetensors"), []safetensors.Spec{
		{Name: "lm_head.weight", DType: safetensors.BF16, Shape: []int64{2, 2}},
	}, map[string]string{"format": "pt"})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.WriteTensor("lm_head.weight", safetensors.Float32ToBF16([]float32{1, -2, 0.5, 3})); err != nil {
		w.Abort()
		log.Fatal(err)
	}
	if err := w.Close(); err != nil { // renames into place
		log.Fatal(err)
	}
	weightMap := map[string]string{"lm_head.weight": "model-00001-of-00001.safetensors"}
	if err := safetensors.WriteIndex(dir, weightMap, 8); err != nil {
		log.Fatal(err)
	}

	set, err := safetensors.OpenDir(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer set.Close()
	b, _ := set.Data("lm_head.weight")
	fmt.Println(set.Names(), set.Sharded(), safetensors.BF16ToFloat32(b))
	// Output: [lm_head.weight] true [1 -2 0.5 3]
}
