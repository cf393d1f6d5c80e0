package transfer

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// checkONNXTensors walks every tensor an ONNX file holds (the graph's
// initializers, the tensors of node attributes, subgraphs included) in the
// protobuf wire format and refuses one whose declared shape does not match
// the data it carries. onnx-gomlx allocates a tensor of the declared shape
// before comparing it with its raw data, so a 100-byte file declaring a
// [1000000, 1000000] initializer would ask for 4 TB; with this check every
// allocation is bounded by the file's size. Field numbers are from
// onnx.proto (ModelProto.graph=7; GraphProto node=1 initializer=5
// sparse_initializer=15; NodeProto attribute=5; AttributeProto t=5 g=6
// tensors=10 graphs=11 sparse_tensor=22 sparse_tensors=23; TensorProto
// dims=1 data_type=2 name=8 raw_data=9).
func checkONNXTensors(b []byte) error {
	graph := false
	err := eachField(b, func(num protowire.Number, v []byte) error {
		if num == 7 {
			graph = true
			return checkGraph(v, 0)
		}
		return nil
	})
	if err == nil && !graph {
		err = errors.New("no graph")
	}
	return err
}

// maxGraphDepth bounds subgraph nesting (If/Loop bodies), which a file
// could otherwise nest until the stack runs out.
const maxGraphDepth = 32

func checkGraph(b []byte, depth int) error {
	if depth > maxGraphDepth {
		return fmt.Errorf("subgraphs nested more than %d deep", maxGraphDepth)
	}
	return eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			return eachField(v, func(num protowire.Number, v []byte) error {
				if num == 5 {
					return checkAttribute(v, depth)
				}
				return nil
			})
		case 5:
			return checkTensor(v)
		case 15:
			return errors.New("sparse initializers are not supported")
		}
		return nil
	})
}

func checkAttribute(b []byte, depth int) error {
	return eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 5, 10:
			return checkTensor(v)
		case 6, 11:
			return checkGraph(v, depth+1)
		case 22, 23:
			return errors.New("sparse tensor attributes are not supported")
		}
		return nil
	})
}

// onnxElemBits is the size of an element of each ONNX data type that has
// a fixed one (TensorProto.DataType).
var onnxElemBits = map[int64]int64{
	1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 14: 64, 15: 128, 16: 16,
	17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4,
}

// maxTensorElems is far above any backbone's largest weight (ResNet-50's
// is 2.4 M elements) and keeps element counts from overflowing.
const maxTensorElems = 1 << 34

func checkTensor(b []byte) error {
	var (
		dims     []int64
		dtype    int64
		name     string
		raw      []byte
		haveRaw  bool
		badField bool
	)
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			dims = append(dims, decodeInts(v)...)
		case 2:
			if x := decodeInts(v); len(x) == 1 {
				dtype = x[0]
			} else {
				badField = true
			}
		case 8:
			name = string(v)
		case 9:
			raw, haveRaw = v, true
		}
		return nil
	})
	if err != nil {
		return err
	}
	if badField {
		return fmt.Errorf("tensor %q: bad data type field", name)
	}
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return fmt.Errorf("tensor %q: negative dimension in %v", name, dims)
		}
		if d > 0 && n > maxTensorElems/d {
			return fmt.Errorf("tensor %q: shape %v has more than %d elements", name, dims, int64(maxTensorElems))
		}
		n *= d
	}
	if !haveRaw || n == 0 {
		return nil // typed data is counted against the shape before any allocation
	}
	bits, ok := onnxElemBits[dtype]
	if !ok {
		return fmt.Errorf("tensor %q: raw data of data type %d", name, dtype)
	}
	if want := (n*bits + 7) / 8; want != int64(len(raw)) {
		return fmt.Errorf("tensor %q: shape %v of data type %d needs %d bytes, the file holds %d", name, dims, dtype, want, len(raw))
	}
	return nil
}

// errNotONNX marks bytes that are not protobuf at all: a file that is not
// a model, rather than a model that cannot be used.
var errNotONNX = errors.New("not an ONNX model")

// eachField calls fn for each length-delimited field of b (and, for varint
// fields, with the varint's encoding so that packed/unpacked ints both work).
func eachField(b []byte, fn func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: bad protobuf tag", errNotONNX)
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("%w: bad protobuf field", errNotONNX)
			}
			if err := fn(num, v); err != nil {
				return err
			}
			b = b[m:]
		case protowire.VarintType:
			_, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return fmt.Errorf("%w: bad protobuf varint", errNotONNX)
			}
			if err := fn(num, b[:m]); err != nil {
				return err
			}
			b = b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return fmt.Errorf("%w: bad protobuf field", errNotONNX)
			}
			b = b[m:]
		}
	}
	return nil
}

// decodeInts decodes one varint or a packed run of varints.
func decodeInts(b []byte) []int64 {
	var out []int64
	for len(b) > 0 {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			break
		}
		out = append(out, int64(v))
		b = b[n:]
	}
	return out
}
