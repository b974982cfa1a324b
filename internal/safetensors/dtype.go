package safetensors

// DType names an element type as spelled in a safetensors header.
type DType string

// Element types. The first ten are the ones kfllm produces; the others are
// read so that any file the Python library writes can be opened.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	I8   DType = "I8"
	I16  DType = "I16"
	I32  DType = "I32"
	I64  DType = "I64"
	U8   DType = "U8"
	BOOL DType = "BOOL"

	U16    DType = "U16"
	U32    DType = "U32"
	U64    DType = "U64"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
)

// dtypeInfo holds each known dtype's element size and its rank in the
// Rust library's Dtype enum, whose descending order (then the tensor name)
// decides where each tensor's bytes go in a file the Python library writes.
var dtypeInfo = map[DType]struct{ size, rank int }{
	BOOL:   {1, 0},
	U8:     {1, 1},
	I8:     {1, 2},
	F8E5M2: {1, 3},
	F8E4M3: {1, 4},
	I16:    {2, 5},
	U16:    {2, 6},
	F16:    {2, 7},
	BF16:   {2, 8},
	I32:    {4, 9},
	U32:    {4, 10},
	F32:    {4, 11},
	F64:    {8, 12},
	I64:    {8, 13},
	U64:    {8, 14},
}

// Size returns the number of bytes per element, or 0 for an unknown dtype.
func (d DType) Size() int { return dtypeInfo[d].size }

// Valid reports whether d is a dtype this package knows.
func (d DType) Valid() bool { _, ok := dtypeInfo[d]; return ok }

func (d DType) rank() int { return dtypeInfo[d].rank }
