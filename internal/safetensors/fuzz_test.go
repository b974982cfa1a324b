package safetensors

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseHeader feeds arbitrary bytes to the header parser, both as a
// whole file (length prefix included) and as a JSON header over a data
// section of the given size. It must never panic, every refusal must be a
// fault (ErrMalformed once a path is added), and every accepted header must
// describe tensors that tile the data section with the right byte lengths.
func FuzzParseHeader(f *testing.F) {
	for _, c := range malformedCases() {
		f.Add(c.file, uint16(0))
		if len(c.file) >= 8 {
			f.Add(c.file[8:], uint16(len(c.file)-8))
		}
	}
	for _, ts := range [][]Tensor{nil, sample(rand.New(rand.NewPCG(1, 2)))} {
		path := filepath.Join(f.TempDir(), "seed.safetensors")
		if err := WriteFile(path, ts, map[string]string{"format": "pt"}); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(0))
	}
	pyFiles, _ := filepath.Glob("testdata/*.safetensors")
	shards, _ := filepath.Glob("testdata/py_sharded/*.safetensors")
	for _, p := range append(pyFiles, shards...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, uint16(0))
		}
	}
	f.Add([]byte(`{"a":{"dtype":"BF16","shape":[2,0,3],"data_offsets":[0,0]},"b":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}`), uint16(8))

	f.Fuzz(func(t *testing.T, b []byte, dataLen uint16) {
		// As a whole file.
		if h, off, err := readHeader(bytes.NewReader(b), int64(len(b))); err == nil {
			checkAccepted(t, h, int64(len(b))-off)
		} else {
			checkRefusal(t, err)
		}
		// As a JSON header.
		if h, err := parseHeader(b, int64(dataLen)); err == nil {
			checkAccepted(t, h, int64(dataLen))
		} else {
			checkRefusal(t, err)
		}
	})
}

func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var fl fault
	if !errors.As(err, &fl) {
		t.Fatalf("refusal is not a fault: %v", err)
	}
	if e := withPath("p", err); !errors.Is(e, ErrMalformed) {
		t.Fatalf("refusal does not wrap ErrMalformed: %v", e)
	}
}

func checkAccepted(t *testing.T, h *header, dataLen int64) {
	t.Helper()
	if h.dataLen != dataLen {
		t.Fatalf("dataLen %d, want %d", h.dataLen, dataLen)
	}
	covered := int64(0)
	for name, ti := range h.tensors {
		n, ok := byteLen(ti.DType, ti.Shape)
		if !ok || ti.Name != name || ti.Begin < 0 || ti.End > dataLen || ti.End-ti.Begin != n {
			t.Fatalf("accepted a bad tensor %+v (data %d)", ti, dataLen)
		}
		covered += n
	}
	if covered != dataLen {
		t.Fatalf("tensors cover %d of %d bytes", covered, dataLen)
	}
}
