package onnxlegal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Size is the number of elements of a tensor with these dims.
func Size(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return n
}

func isFloat(dt int32) bool { return dt == Float32 || dt == Float64 || dt == Float16 }

// Float64s decodes the tensor's values (any numeric type) as float64.
func (t *Tensor) Float64s() ([]float64, error) {
	if t.external {
		return nil, fmt.Errorf("tensor %q: its data is in an external file", t.Name)
	}
	n := Size(t.Dims)
	out := make([]float64, 0, n)
	switch {
	case t.data != nil:
		w := map[int32]int{Float32: 4, Float64: 8, Float16: 2, Int64: 8, Int32: 4, Int8: 1, Uint8: 1, Bool: 1}[t.DType]
		if w == 0 {
			return nil, fmt.Errorf("tensor %q: data type %d is not numeric", t.Name, t.DType)
		}
		if int64(len(t.data)) != n*int64(w) {
			return nil, fmt.Errorf("tensor %q: %d bytes of data for %d elements", t.Name, len(t.data), n)
		}
		for i := int64(0); i < n; i++ {
			b := t.data[i*int64(w):]
			var v float64
			switch t.DType {
			case Float32:
				v = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
			case Float64:
				v = math.Float64frombits(binary.LittleEndian.Uint64(b))
			case Float16:
				v = float64(halfToFloat(binary.LittleEndian.Uint16(b)))
			case Int64:
				v = float64(int64(binary.LittleEndian.Uint64(b)))
			case Int32:
				v = float64(int32(binary.LittleEndian.Uint32(b)))
			case Int8:
				v = float64(int8(b[0]))
			default:
				v = float64(b[0])
			}
			out = append(out, v)
		}
	case t.floats != nil:
		for _, v := range t.floats {
			out = append(out, float64(v))
		}
	case t.doubles != nil:
		out = append(out, t.doubles...)
	case t.ints != nil:
		for _, v := range t.ints {
			out = append(out, float64(v))
		}
	case t.int32s != nil:
		// int32_data also carries float16 (as bits), bool, int8 and uint8.
		for _, v := range t.int32s {
			if t.DType == Float16 {
				out = append(out, float64(halfToFloat(uint16(v))))
			} else {
				out = append(out, float64(v))
			}
		}
	}
	if int64(len(out)) != n {
		return nil, fmt.Errorf("tensor %q: %d values for dims %v", t.Name, len(out), t.Dims)
	}
	return out, nil
}

// Int64s decodes an integer tensor exactly (int64 values beyond 2^53, as
// the INT64_MAX ends of Slice, do not survive float64).
func (t *Tensor) Int64s() ([]int64, error) {
	if isFloat(t.DType) {
		return nil, fmt.Errorf("tensor %q: want integers, have floating point", t.Name)
	}
	if t.DType == Int64 {
		if t.data != nil {
			if len(t.data)%8 != 0 || int64(len(t.data)/8) != Size(t.Dims) {
				return nil, fmt.Errorf("tensor %q: %d bytes of data for dims %v", t.Name, len(t.data), t.Dims)
			}
			out := make([]int64, len(t.data)/8)
			for i := range out {
				out[i] = int64(binary.LittleEndian.Uint64(t.data[8*i:]))
			}
			return out, nil
		}
		if int64(len(t.ints)) != Size(t.Dims) {
			return nil, fmt.Errorf("tensor %q: %d values for dims %v", t.Name, len(t.ints), t.Dims)
		}
		return t.ints, nil
	}
	f, err := t.Float64s()
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(f))
	for i, v := range f {
		out[i] = int64(v)
	}
	return out, nil
}

// newTensor encodes values as a tensor of type dt (Float32, Float64,
// Float16 or Int64).
func newTensor(name string, dt int32, dims []int64, f []float64, i []int64) (*Tensor, error) {
	t := &Tensor{Name: name, DType: dt, Dims: dims}
	n := Size(dims)
	switch dt {
	case Int64:
		if i == nil {
			for _, v := range f {
				i = append(i, int64(v))
			}
		}
		if int64(len(i)) != n {
			return nil, errors.New("newTensor: values do not match dims")
		}
		t.data = make([]byte, 8*n)
		for k, v := range i {
			binary.LittleEndian.PutUint64(t.data[8*k:], uint64(v))
		}
		return t, nil
	case Float32, Float64, Float16:
		if f == nil {
			for _, v := range i {
				f = append(f, float64(v))
			}
		}
		if int64(len(f)) != n {
			return nil, errors.New("newTensor: values do not match dims")
		}
		switch dt {
		case Float32:
			t.data = make([]byte, 4*n)
			for k, v := range f {
				binary.LittleEndian.PutUint32(t.data[4*k:], math.Float32bits(float32(v)))
			}
		case Float64:
			t.data = make([]byte, 8*n)
			for k, v := range f {
				binary.LittleEndian.PutUint64(t.data[8*k:], math.Float64bits(v))
			}
		default:
			t.data = make([]byte, 2*n)
			for k, v := range f {
				binary.LittleEndian.PutUint16(t.data[2*k:], floatToHalf(float32(v)))
			}
		}
		return t, nil
	}
	return nil, fmt.Errorf("data type %d is not supported for new constants", dt)
}

// halfToFloat converts IEEE 754 binary16 bits to float32.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case exp == 0:
		if frac == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: value = frac × 2^-24.
		v := float32(frac) * float32(math.Pow(2, -24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// floatToHalf converts to binary16, rounding to nearest even.
func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	frac := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000: // NaN
		return sign | 0x7e00
	case exp >= 0x1f: // overflow and Inf
		return sign | 0x7c00
	case exp <= 0: // subnormal or zero
		if exp < -10 {
			return sign
		}
		frac |= 0x800000
		shift := uint32(14 - exp)
		h := frac >> shift
		rem := frac & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | frac>>13
	rem := frac & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, which is right
	}
	return sign | uint16(h)
}
