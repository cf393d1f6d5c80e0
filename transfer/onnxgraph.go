package transfer

import (
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// onnxNode is the part of an ONNX NodeProto the feature cut needs.
type onnxNode struct {
	Name, Op       string
	Inputs, Output []string
	// Axes of a ReduceMean given as an attribute (opset < 18).
	Axes []int64
}

// onnxNodes reads the graph's nodes (in file order, which ONNX requires to
// be topological) straight from the protobuf wire format: onnx-gomlx keeps
// its proto types internal, and only the node list is needed here.
// Field numbers are from onnx.proto: ModelProto.graph=7, GraphProto.node=1,
// NodeProto input=1 output=2 name=3 op_type=4 attribute=5,
// AttributeProto name=1 ints=8.
func onnxNodes(path string) ([]onnxNode, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var nodes []onnxNode
	err = eachField(b, func(num protowire.Number, v []byte) error {
		if num != 7 {
			return nil
		}
		return eachField(v, func(num protowire.Number, v []byte) error {
			if num != 1 {
				return nil
			}
			n, err := parseNode(v)
			nodes = append(nodes, n)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s: not an ONNX model: %w", path, err)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%s: not an ONNX model: no graph nodes", path)
	}
	return nodes, nil
}

func parseNode(b []byte) (onnxNode, error) {
	var n onnxNode
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			n.Inputs = append(n.Inputs, string(v))
		case 2:
			n.Output = append(n.Output, string(v))
		case 3:
			n.Name = string(v)
		case 4:
			n.Op = string(v)
		case 5:
			var name string
			var ints []int64
			err := eachField(v, func(num protowire.Number, v []byte) error {
				switch num {
				case 1:
					name = string(v)
				case 8:
					ints = append(ints, decodeInts(v)...)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if name == "axes" {
				n.Axes = ints
			}
		}
		return nil
	})
	return n, err
}

// eachField calls fn for each length-delimited field of b (and, for varint
// fields, with the varint's encoding so that packed/unpacked ints both work).
func eachField(b []byte, fn func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errors.New("bad protobuf tag")
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return errors.New("bad protobuf field")
			}
			if err := fn(num, v); err != nil {
				return err
			}
			b = b[m:]
		case protowire.VarintType:
			_, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return errors.New("bad protobuf varint")
			}
			if err := fn(num, b[:m]); err != nil {
				return err
			}
			b = b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return errors.New("bad protobuf field")
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

// featureCut is where a backbone is cut: Features is the tensor whose
// flattening is the feature vector; Map, when known, is the last
// convolutional feature map that was pooled into it (for CAM), with
// MapNCHW telling its layout.
type featureCut struct {
	Features string
	Map      string
	MapNCHW  bool
}

// findCut picks the pooled feature output: the last global average pool
// (GlobalAveragePool, or ReduceMean over the two spatial axes as Keras
// exports write it), else the input of the final Gemm/MatMul.
func findCut(nodes []onnxNode) (featureCut, error) {
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if len(n.Inputs) == 0 || len(n.Output) == 0 {
			continue // not a pool or a product of anything
		}
		switch n.Op {
		case "GlobalAveragePool":
			return featureCut{Features: n.Output[0], Map: n.Inputs[0], MapNCHW: true}, nil
		case "ReduceMean":
			axes := n.Axes
			if len(axes) == 2 && axes[0] == 1 && axes[1] == 2 {
				return featureCut{Features: n.Output[0], Map: n.Inputs[0]}, nil
			}
			if len(axes) == 2 && axes[0] == 2 && axes[1] == 3 {
				return featureCut{Features: n.Output[0], Map: n.Inputs[0], MapNCHW: true}, nil
			}
		}
	}
	for i := len(nodes) - 1; i >= 0; i-- {
		if n := nodes[i]; (n.Op == "Gemm" || n.Op == "MatMul") && len(n.Inputs) > 0 {
			return featureCut{Features: n.Inputs[0]}, nil
		}
	}
	return featureCut{}, errors.New("no global average pool or final Gemm/MatMul found: name the feature node with feature_node")
}

// cutAt uses a node output named by the user; if it is the output of a
// global average pool the feature map is known too.
func cutAt(nodes []onnxNode, name string) (featureCut, error) {
	for _, n := range nodes {
		for _, o := range n.Output {
			if o != name && n.Name != name {
				continue
			}
			c := featureCut{Features: n.Output[0]}
			if o == name {
				c.Features = o
			}
			if p, err := findCut([]onnxNode{n}); err == nil && p.Map != "" {
				c.Map, c.MapNCHW = p.Map, p.MapNCHW
			}
			return c, nil
		}
	}
	return featureCut{}, fmt.Errorf("parameter feature_node: no node or node output named %q", name)
}
