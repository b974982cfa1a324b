package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/sugarme/gotch"

	"github.com/kfllm/kfllm/internal/safetensors"
	"github.com/kfllm/kfllm/internal/torch"
)

// A checkpoint is a directory checkpoint-<step> in the checkpoint dir:
//
//	state.safetensors   param/<name>, exp_avg/<name>, exp_avg_sq/<name> (float32)
//	trainer_state.json  step, epoch, optimizer steps, running sums, the QA
//	                    score before training, and the sha256 of state.safetensors
//
// It is built in a hidden temporary directory and renamed into place, so a
// checkpoint-<step> directory is complete; a checksum mismatch (a disk
// fault, a hand edit) is caught on load and the previous one is used.
const (
	stateFile        = "state.safetensors"
	trainerStateFile = "trainer_state.json"
	keepCheckpoints  = 2
)

// trainerState is trainer_state.json.
type trainerState struct {
	Step          int       `json:"step"`
	Epoch         int       `json:"epoch"`
	OptimizerStep int       `json:"optimizer_steps"`
	LossSum       float64   `json:"loss_sum"`
	LossCount     int       `json:"loss_count"`
	Tokens        int64     `json:"tokens"`
	Runtime       float64   `json:"train_runtime_seconds"`
	CPU           float64   `json:"train_cpu_seconds"`
	AllReduce     float64   `json:"allreduce_seconds,omitempty"`
	LastEval      *evalLine `json:"last_eval,omitempty"`
	QABefore      *QAScore  `json:"qa_before,omitempty"`
	Fingerprint   string    `json:"fingerprint"`
	StateSHA256   string    `json:"state_sha256"`
}

func checkpointName(step int) string { return "checkpoint-" + strconv.Itoa(step) }

// listCheckpoints returns the steps of the checkpoint-<step> directories
// in dir, newest first.
func listCheckpoints(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	var steps []int
	for _, e := range ents {
		s, ok := strings.CutPrefix(e.Name(), "checkpoint-")
		if !ok || !e.IsDir() {
			continue
		}
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			steps = append(steps, n)
		}
	}
	slices.Sort(steps)
	slices.Reverse(steps)
	return steps, nil
}

// saveCheckpoint writes the trainable parameters and the optimizer state
// at st.Step, then drops all but the newest keepCheckpoints.
func saveCheckpoint(dir string, params []*param, st trainerState) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-checkpoint-")
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp)
	tensors, err := func() ([]safetensors.Tensor, error) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var out []safetensors.Tensor
		for _, p := range params {
			for _, t := range []struct {
				prefix string
				c      torch.Tensor
			}{{"param/", p.t}, {"exp_avg/", p.m}, {"exp_avg_sq/", p.v}} {
				data, shape, err := tensorBytes(t.c)
				if err != nil {
					return nil, fmt.Errorf("%s%s: %w", t.prefix, p.name, err)
				}
				out = append(out, safetensors.Tensor{Name: t.prefix + p.name, DType: safetensors.F32, Shape: shape, Data: data})
			}
		}
		return out, nil
	}()
	if err != nil {
		return fmt.Errorf("save checkpoint %d: %w", st.Step, err)
	}
	statePath := filepath.Join(tmp, stateFile)
	if err := safetensors.WriteFile(statePath, tensors, map[string]string{"format": "kfllm-train"}); err != nil {
		return fmt.Errorf("save checkpoint %d: %w", st.Step, err)
	}
	sum, err := fileSHA256(statePath)
	if err != nil {
		return fmt.Errorf("save checkpoint %d: %w", st.Step, err)
	}
	st.StateSHA256 = sum
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save checkpoint %d: %w", st.Step, err)
	}
	if err := writeFileAtomic(filepath.Join(tmp, trainerStateFile), append(b, '\n')); err != nil {
		return fmt.Errorf("save checkpoint %d: %w", st.Step, err)
	}
	final := filepath.Join(dir, checkpointName(st.Step))
	if err := os.RemoveAll(final); err != nil { // a stale one of the same step (a rerun after a crash)
		return fmt.Errorf("save checkpoint %d: %w", st.Step, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("save checkpoint %d: %w", st.Step, err)
	}
	syncDir(dir)
	steps, err := listCheckpoints(dir)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if s < st.Step && slices.Index(steps, s) >= keepCheckpoints {
			os.RemoveAll(filepath.Join(dir, checkpointName(s)))
		}
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readCheckpoint validates one checkpoint directory and returns its state
// and the open state file (the caller closes it).
func readCheckpoint(path string, params []*param) (*trainerState, *safetensors.File, error) {
	b, err := os.ReadFile(filepath.Join(path, trainerStateFile))
	if err != nil {
		return nil, nil, err
	}
	var st trainerState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", trainerStateFile, err)
	}
	sum, err := fileSHA256(filepath.Join(path, stateFile))
	if err != nil {
		return nil, nil, err
	}
	if sum != st.StateSHA256 {
		return nil, nil, fmt.Errorf("%s has sha256 %s, %s says %s", stateFile, sum[:12], trainerStateFile, st.StateSHA256)
	}
	f, err := safetensors.Open(filepath.Join(path, stateFile))
	if err != nil {
		return nil, nil, err
	}
	for _, p := range params {
		want := torch.Shape(p.t)
		for _, prefix := range []string{"param/", "exp_avg/", "exp_avg_sq/"} {
			info, ok := f.Info(prefix + p.name)
			if !ok || info.DType != safetensors.F32 || !slices.Equal(info.Shape, want) {
				f.Close()
				return nil, nil, fmt.Errorf("%s%s is missing or is not float32 %v: the checkpoint was made for another model or adapter", prefix, p.name, want)
			}
		}
	}
	return &st, f, nil
}

// restore copies a checkpoint's tensors into the parameters and optimizer
// state.
func restore(f *safetensors.File, params []*param, dev gotch.Device) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var o torch.Scope
	defer o.Free()
	torch.NoGrad(func() {
		for _, p := range params {
			for _, t := range []struct {
				prefix string
				c      torch.Tensor
			}{{"param/", p.t}, {"exp_avg/", p.m}, {"exp_avg_sq/", p.v}} {
				data, err := f.Data(t.prefix + p.name)
				if err != nil {
					o.Fail(err)
					return
				}
				src := o.Floats(dev, gotch.Float, safetensors.Float32s(data), torch.Shape(t.c)...)
				o.CopyInto(t.c, src)
				o.Free()
			}
		}
	})
	if !o.OK() {
		return fmt.Errorf("restore checkpoint: %w", o.Err())
	}
	return nil
}

// resume loads the newest valid checkpoint in dir into params; nil when
// there is none. Invalid ones are reported and skipped.
func resume(dir string, params []*param, dev gotch.Device, log *slog.Logger) (*trainerState, error) {
	steps, err := listCheckpoints(dir)
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		path := filepath.Join(dir, checkpointName(s))
		st, f, err := readCheckpoint(path, params)
		if err != nil {
			log.Warn("skipping unusable checkpoint", "path", path, "reason", err.Error())
			continue
		}
		err = restore(f, params, dev)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("resume from %s: %w", path, err)
		}
		return st, nil
	}
	return nil, nil
}
