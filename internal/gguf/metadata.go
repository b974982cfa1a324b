package gguf

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ValueType is the type tag of a metadata value.
type ValueType uint32

// The metadata value types of the GGUF specification.
const (
	TypeUint8 ValueType = iota
	TypeInt8
	TypeUint16
	TypeInt16
	TypeUint32
	TypeInt32
	TypeFloat32
	TypeBool
	TypeString
	TypeArray
	TypeUint64
	TypeInt64
	TypeFloat64
)

// minSize is the fewest bytes a value of type t occupies (0: unknown type).
func (t ValueType) minSize() uint64 {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64, TypeString:
		return 8
	case TypeArray:
		return 12
	}
	return 0
}

// value reads one value of type t. Scalars become the matching Go type
// (uint8 ... float64, bool, string); arrays become a typed slice ([]uint32,
// []string, ...), and an array of arrays becomes []any of those.
func (c *cursor) value(t ValueType, key string, depth int) any {
	switch t {
	case TypeUint8:
		return c.u8(key)
	case TypeInt8:
		return int8(c.u8(key))
	case TypeUint16:
		return c.u16(key)
	case TypeInt16:
		return int16(c.u16(key))
	case TypeUint32:
		return c.u32(key)
	case TypeInt32:
		return int32(c.u32(key))
	case TypeFloat32:
		return math.Float32frombits(c.u32(key))
	case TypeUint64:
		return c.u64(key)
	case TypeInt64:
		return int64(c.u64(key))
	case TypeFloat64:
		return math.Float64frombits(c.u64(key))
	case TypeBool:
		at := c.off
		b := c.u8(key)
		if b > 1 && c.err == nil {
			c.err = fault(at, "%s: bool byte %d", key, b)
		}
		return b == 1
	case TypeString:
		return c.str(key)
	case TypeArray:
		return c.array(key, depth)
	}
	if c.err == nil {
		c.err = fault(c.off-4, "%s: value type %d", key, uint32(t))
	}
	return nil
}

func (c *cursor) array(key string, depth int) any {
	if depth >= maxArrayDepth && c.err == nil {
		c.err = fault(c.off, "%s: arrays nested deeper than %d", key, maxArrayDepth)
		return nil
	}
	et := ValueType(c.u32(key + " element type"))
	n := c.u64(key + " element count")
	if c.err != nil {
		return nil
	}
	if et.minSize() == 0 {
		c.err = fault(c.off-12, "%s: array element type %d", key, uint32(et))
		return nil
	}
	if n > c.left()/et.minSize() {
		c.err = fault(c.off-8, "%s: %d array elements cannot fit in the %d bytes left", key, n, c.left())
		return nil
	}
	switch et {
	case TypeUint8:
		return readArray(c, n, func() uint8 { return c.u8(key) })
	case TypeInt8:
		return readArray(c, n, func() int8 { return int8(c.u8(key)) })
	case TypeUint16:
		return readArray(c, n, func() uint16 { return c.u16(key) })
	case TypeInt16:
		return readArray(c, n, func() int16 { return int16(c.u16(key)) })
	case TypeUint32:
		return readArray(c, n, func() uint32 { return c.u32(key) })
	case TypeInt32:
		return readArray(c, n, func() int32 { return int32(c.u32(key)) })
	case TypeFloat32:
		return readArray(c, n, func() float32 { return math.Float32frombits(c.u32(key)) })
	case TypeUint64:
		return readArray(c, n, func() uint64 { return c.u64(key) })
	case TypeInt64:
		return readArray(c, n, func() int64 { return int64(c.u64(key)) })
	case TypeFloat64:
		return readArray(c, n, func() float64 { return math.Float64frombits(c.u64(key)) })
	case TypeBool:
		return readArray(c, n, func() bool { b, _ := c.value(TypeBool, key, depth).(bool); return b })
	case TypeString:
		return readArray(c, n, func() string { return c.str(key) })
	default: // TypeArray
		return readArray(c, n, func() any { return c.array(key, depth+1) })
	}
}

func readArray[T any](c *cursor, n uint64, next func() T) []T {
	s := make([]T, 0, n) // n is bounded by the bytes left
	for range n {
		v := next()
		if c.err != nil {
			return nil
		}
		s = append(s, v)
	}
	return s
}

// ErrMissing is wrapped by Metadata getters when the key is absent.
var ErrMissing = errors.New("missing metadata key")

// Metadata holds a file's key/value pairs.
type Metadata struct {
	keys   []string
	values map[string]any
}

// Keys lists the keys in file order.
func (m Metadata) Keys() []string { return append([]string(nil), m.keys...) }

// Get returns the raw value (see cursor.value for the Go types).
func (m Metadata) Get(key string) (any, bool) {
	v, ok := m.values[key]
	return v, ok
}

// Has reports whether key is present.
func (m Metadata) Has(key string) bool { _, ok := m.values[key]; return ok }

func (m Metadata) get(key string) (any, error) {
	v, ok := m.values[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, ErrMissing)
	}
	return v, nil
}

// String returns a string value.
func (m Metadata) String(key string) (string, error) {
	v, err := m.get(key)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: %T, want a string: %w", key, v, ErrMalformed)
	}
	return s, nil
}

// Int returns an integer value of any integer type, as an int.
func (m Metadata) Int(key string) (int, error) {
	v, err := m.get(key)
	if err != nil {
		return 0, err
	}
	n, ok := asInt(v)
	if !ok {
		return 0, fmt.Errorf("%s: %v (%T), want an integer that fits an int: %w", key, v, v, ErrMalformed)
	}
	return n, nil
}

// Float returns a float or integer value as a float64. A float32 is widened
// through its shortest decimal form, so 1e-05 stored as float32 reads as
// 1e-05, not 9.999999747378752e-06.
func (m Metadata) Float(key string) (float64, error) {
	v, err := m.get(key)
	if err != nil {
		return 0, err
	}
	switch f := v.(type) {
	case float32:
		return strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	case float64:
		return f, nil
	}
	if n, ok := asInt(v); ok {
		return float64(n), nil
	}
	return 0, fmt.Errorf("%s: %T, want a number: %w", key, v, ErrMalformed)
}

// Bool returns a bool value.
func (m Metadata) Bool(key string) (bool, error) {
	v, err := m.get(key)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s: %T, want a bool: %w", key, v, ErrMalformed)
	}
	return b, nil
}

// Strings returns an array of strings.
func (m Metadata) Strings(key string) ([]string, error) {
	v, err := m.get(key)
	if err != nil {
		return nil, err
	}
	s, ok := v.([]string)
	if !ok {
		return nil, fmt.Errorf("%s: %T, want an array of strings: %w", key, v, ErrMalformed)
	}
	return s, nil
}

// Ints returns an array of any integer type as ints.
func (m Metadata) Ints(key string) ([]int, error) {
	v, err := m.get(key)
	if err != nil {
		return nil, err
	}
	var out []int
	var ok bool
	switch a := v.(type) {
	case []int32:
		out, ok = ints(a)
	case []uint32:
		out, ok = ints(a)
	case []int64:
		out, ok = ints(a)
	case []uint64:
		out, ok = ints(a)
	case []int8:
		out, ok = ints(a)
	case []uint8:
		out, ok = ints(a)
	case []int16:
		out, ok = ints(a)
	case []uint16:
		out, ok = ints(a)
	}
	if !ok {
		return nil, fmt.Errorf("%s: %T, want an array of integers that fit an int: %w", key, v, ErrMalformed)
	}
	return out, nil
}

func ints[T int8 | uint8 | int16 | uint16 | int32 | uint32 | int64 | uint64](a []T) ([]int, bool) {
	out := make([]int, len(a))
	for i, x := range a {
		n, ok := asInt(x)
		if !ok {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case uint8:
		return int(n), true
	case int8:
		return int(n), true
	case uint16:
		return int(n), true
	case int16:
		return int(n), true
	case uint32:
		return int(n), true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int(n), true
	}
	return 0, false
}
