package onnxlegal

import "fmt"

// imported are the ops onnx-gomlx v0.5.0 converts (the cases of
// convertNode in its internal/onnxgomlx/graph.go). go.mod pins that
// version; a new one means reading its list again.
var imported = map[string]bool{}

func init() {
	for _, op := range []string{
		"Add", "Sub", "Mul", "Div", "Mod", "Pow", "And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
		"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
		"Sqrt", "Exp", "Log", "Erf", "Relu", "Gelu", "FastGelu", "Abs", "Neg", "Sign", "Ceil", "Floor",
		"Identity", "Not", "BitwiseNot", "Tanh", "Sin", "Cos", "Sigmoid", "HardSwish", "IsNaN", "Reciprocal",
		"MatMul", "Einsum", "Clip", "Where", "Min", "Max",
		"Constant", "Gather", "GatherElements", "GatherND", "Shape", "Size", "Concat", "Softmax", "Cast",
		"Transpose", "Gemm", "Flatten", "DequantizeLinear", "QuantizeLinear", "MatMulInteger", "QLinearMatMul",
		"Squeeze", "Unsqueeze", "Slice", "Reshape", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum",
		"ReduceProd", "ReduceL2", "NonZero", "ConstantOfShape", "Expand", "Tile", "Range", "CumSum",
		"LSTM", "Conv", "AveragePool", "MaxPool", "GlobalAveragePool", "Resize", "BatchNormalization",
		"LayerNormalization", "SimplifiedLayerNormalization", "RotaryEmbedding", "MultiHeadAttention",
		"GroupQueryAttention", "Pad", "DynamicQuantizeLinear", "Split", "Trilu", "ScatterND", "If",
		"TopK", "ArgMax", "ArgMin",
		// Dropout is not converted, but every exporter drops it in
		// inference graphs; a Dropout that remains is rewritten.
	} {
		imported[op] = true
	}
}

// checkAttrs refuses what the import would refuse, or compute wrongly,
// in an op it has and no rewrite touched, before GoMLX's long messages.
func checkAttrs(n *Node) error {
	bad := func(f string, a ...any) error { return &UnsupportedError{n.Label(), n.Op, fmt.Sprintf(f, a...)} }
	switch n.Op {
	case "Einsum":
		if len(n.Inputs) != 2 {
			return bad("%d operands are not supported (only 2)", len(n.Inputs))
		}
	case "GatherND":
		if b := n.Int("batch_dims", 0); b != 0 {
			return bad("attribute batch_dims=%d is not supported", b)
		}
	case "LSTM":
		for _, a := range []string{"activations", "clip", "input_forget"} {
			if n.Attr(a) != nil {
				return bad("attribute %s is not supported", a)
			}
		}
	}
	return nil
}
