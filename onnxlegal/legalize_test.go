package onnxlegal

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// model encodes a one-input model (x of dims, -1 unknown) with the given
// nodes and initializers; its output is the last node's first output.
func model(tb testing.TB, opset int64, dims []int64, inits []*Tensor, nodes ...*Node) []byte {
	tb.Helper()
	last := nodes[len(nodes)-1].Outputs[0]
	g := &Graph{Nodes: nodes, Inits: inits,
		Inputs:  []*ValueInfo{{Name: "x", raw: encodeValueInfo("x", Float32, dims)}},
		Outputs: []*ValueInfo{{Name: last, raw: encodeValueInfo(last, Float32, nil)}}}
	opsetField := appendMsg(nil, fModelOpset, appendVarint(appendString(nil, fOpsetDomain, ""), fOpsetVersion, opset))
	m := &Model{fields: []field{{num: 1, raw: appendVarint(nil, 1, 8)}, {num: fModelOpset, raw: opsetField}, {num: fModelGraph}}, Graph: g}
	return m.Bytes()
}

func node(name, op string, ins, outs []string, attrs ...*Attr) *Node {
	return &Node{Name: name, Op: op, Inputs: ins, Outputs: outs, Attrs: attrs}
}

func legalize(tb testing.TB, b []byte, dims []int64) (*Model, Report, error) {
	tb.Helper()
	m, err := Read(b)
	if err != nil {
		tb.Fatal(err)
	}
	opt := Options{}
	if dims != nil {
		opt.Inputs = map[string][]int64{"x": dims}
	}
	rep, err := m.Legalize(opt)
	return m, rep, err
}

// The fixtures of testdata/transfer/legal survive a read and write: the
// same nodes, and a second round trip gives the same bytes.
func TestReadBytesRoundTrip(t *testing.T) {
	files, err := filepath.Glob("../testdata/transfer/legal/*.onnx")
	if err != nil || len(files) < 40 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Read(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		once := m.Bytes()
		if len(once) != len(raw) {
			t.Errorf("%s: %d bytes written for %d read", f, len(once), len(raw))
		}
		m2, err := Read(once)
		if err != nil {
			t.Fatal(err)
		}
		if len(m2.Graph.Nodes) != len(m.Graph.Nodes) || len(m2.Graph.Inits) != len(m.Graph.Inits) || m2.Opset != m.Opset {
			t.Errorf("%s: graph changed in a round trip", f)
		}
		if twice := m2.Bytes(); string(twice) != string(once) {
			t.Errorf("%s: a second round trip changed the bytes", f)
		}
	}
}

// Bad input is one line naming node, op and reason; every unsupported node
// is reported, the first is the error, and the model is left unchanged.
func TestUnsupported(t *testing.T) {
	for _, c := range []struct {
		name  string
		dims  []int64
		inits []*Tensor
		nodes []*Node
		want  string
	}{
		{"unknown op", []int64{1, 3, 8, 8}, nil, []*Node{node("weird_det", "Det", []string{"x"}, []string{"y"})},
			`node "weird_det" (Det): op is not supported`},
		{"other domain", []int64{1, 3, 8, 8}, nil, []*Node{{Name: "fused", Op: "FusedConv", Domain: "com.microsoft", Inputs: []string{"x"}, Outputs: []string{"y"}}},
			`node "fused" (FusedConv): op of domain "com.microsoft" is not supported`},
		{"max pool indices", []int64{1, 3, 8, 8}, nil, []*Node{
			node("pool", "MaxPool", []string{"x"}, []string{"y", "idx"}, intsAttr("kernel_shape", 2, 2)),
			node("use", "Cast", []string{"idx"}, []string{"z"}, intAttr("to", Float32))},
			`node "pool" (MaxPool): output Indices is not supported`},
		{"dilated average pool", []int64{1, 3, 8, 8}, nil, []*Node{
			node("avg", "AveragePool", []string{"x"}, []string{"y"}, intsAttr("kernel_shape", 2, 2), intsAttr("dilations", 2, 2))},
			`node "avg" (AveragePool): attribute dilations=[2 2] is not supported`},
		{"same pads of an unknown size", []int64{1, 3, -1, -1}, nil, []*Node{
			node("pool", "MaxPool", []string{"x"}, []string{"y"}, intsAttr("kernel_shape", 3, 3), stringAttr("auto_pad", "SAME_UPPER"))},
			`node "pool" (MaxPool): attribute auto_pad=SAME_UPPER needs the input's spatial size, which is unknown here (input [1 3 ? ?])`},
		{"ceil mode of an unknown size", []int64{1, 3, -1, -1}, nil, []*Node{
			node("pool", "MaxPool", []string{"x"}, []string{"y"}, intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2), intAttr("ceil_mode", 1))},
			`node "pool" (MaxPool): attribute ceil_mode=1 needs the input's spatial size, which is unknown here (input [1 3 ? ?])`},
		{"pad mode wrap", []int64{1, 3, 8, 8}, []*Tensor{mustInts("p", 0, 0, 1, 1, 0, 0, 1, 1)}, []*Node{
			node("pad", "Pad", []string{"x", "p"}, []string{"y"}, stringAttr("mode", "wrap"))},
			`node "pad" (Pad): attribute mode=wrap is not supported`},
		{"training batch norm", []int64{1, 3, 8, 8}, nil, []*Node{
			node("bn", "BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y"}, intAttr("training_mode", 1))},
			`node "bn" (BatchNormalization): training mode is not supported`},
		{"antialiased resize", []int64{1, 3, 8, 8}, []*Tensor{mustFloats("s", 1, 1, 2, 2)}, []*Node{
			node("up", "Resize", []string{"x", "", "s"}, []string{"y"}, intAttr("antialias", 1))},
			`node "up" (Resize): attribute antialias=1 is not supported`},
		{"crop and resize", []int64{1, 3, 8, 8}, []*Tensor{mustFloats("s", 1, 1, 2, 2)}, []*Node{
			node("up", "Resize", []string{"x", "", "s"}, []string{"y"}, stringAttr("coordinate_transformation_mode", "tf_crop_and_resize"))},
			`node "up" (Resize): attribute coordinate_transformation_mode=tf_crop_and_resize is not supported`},
		{"transposed conv of computed weights", []int64{1, 3, 8, 8}, nil, []*Node{
			node("neg", "Neg", []string{"x"}, []string{"w2"}),
			node("up", "ConvTranspose", []string{"x", "w2"}, []string{"y"}, intsAttr("strides", 2, 2))},
			`node "up" (ConvTranspose): weights "w2" are not an initializer`},
		{"no node name", []int64{1, 3, 8, 8}, nil, []*Node{node("", "Det", []string{"x"}, []string{"det_out"})},
			`node "det_out" (Det): op is not supported`},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := model(t, 13, c.dims, c.inits, c.nodes...)
			m, rep, err := legalize(t, raw, nil)
			var ue *UnsupportedError
			if !errors.As(err, &ue) || err.Error() != c.want {
				t.Fatalf("got %v, want %s", err, c.want)
			}
			if strings.ContainsAny(err.Error(), "\n") || len(rep.Unsupported) == 0 || rep.Unsupported[0] != ue {
				t.Errorf("want one line, reported first: %q %v", err, rep.Unsupported)
			}
			if string(m.Bytes()) != string(raw) {
				t.Errorf("the model changed although legalization failed")
			}
		})
	}
	// Two unsupported nodes: both reported.
	raw := model(t, 13, []int64{1, 3, 8, 8}, nil, node("a", "Det", []string{"x"}, []string{"y1"}), node("b", "Det", []string{"y1"}, []string{"y2"}))
	_, rep, err := legalize(t, raw, nil)
	if err == nil || len(rep.Unsupported) != 2 || rep.Unsupported[1].Node != "b" {
		t.Errorf("want both Det nodes reported, got %v %v", err, rep.Unsupported)
	}
}

func mustInts(name string, v ...int64) *Tensor {
	t, err := newTensor(name, Int64, []int64{int64(len(v))}, nil, v)
	if err != nil {
		panic(err)
	}
	return t
}

func mustFloats(name string, v ...float64) *Tensor {
	t, err := newTensor(name, Float32, []int64{int64(len(v))}, v, nil)
	if err != nil {
		panic(err)
	}
	return t
}

// Output sizes of pools, from the rules of PyTorch and ONNX, including
// ceil_mode's dropped last window.
func TestPoolShapes(t *testing.T) {
	for _, c := range []struct {
		name  string
		in    int64
		attrs []*Attr
		out   int64
	}{
		{"floor", 10, []*Attr{intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2)}, 4},
		{"ceil", 10, []*Attr{intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2), intAttr("ceil_mode", 1)}, 5},
		{"ceil, last window dropped", 9, []*Attr{intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2), intsAttr("pads", 1, 1, 1, 1), intAttr("ceil_mode", 1)}, 5},
		{"GoogLeNet's 112 → 56", 112, []*Attr{intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2), intAttr("ceil_mode", 1)}, 56},
		{"no strides is 1", 10, []*Attr{intsAttr("kernel_shape", 3, 3)}, 8},
		{"same upper", 9, []*Attr{intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2), stringAttr("auto_pad", "SAME_UPPER")}, 5},
		{"valid", 9, []*Attr{intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2), stringAttr("auto_pad", "VALID")}, 4},
		{"dilated", 10, []*Attr{intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2), intsAttr("pads", 1, 1, 1, 1), intsAttr("dilations", 2, 2)}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := model(t, 13, []int64{1, 3, c.in, c.in}, nil, node("pool", "MaxPool", []string{"x"}, []string{"y"}, c.attrs...))
			_, rep, err := legalize(t, raw, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.Shapes["y"]; !slices.Equal(got, []int64{1, 3, c.out, c.out}) {
				t.Errorf("output %v, want [1 3 %d %d]", got, c.out, c.out)
			}
		})
	}
}

// The pads of torch's F.pad, computed with ConstantOfShape, Concat,
// Reshape, a reversing Slice, Transpose and Cast, fold to constants.
func TestFoldsTorchPadArithmetic(t *testing.T) {
	raw, err := os.ReadFile("../testdata/transfer/legal/pad_computed.onnx")
	if err != nil {
		t.Fatal(err)
	}
	m, rep, err := legalize(t, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	// F.pad(x, (1, 2, 0, 3)) on [2 3 5 5]: width +3, height +3.
	if got := rep.Shapes["y"]; !slices.Equal(got, []int64{2, 3, 8, 8}) {
		t.Errorf("y %v, want [2 3 8 8]", got)
	}
	for _, n := range m.Graph.Nodes {
		if n.Op == "Pad" {
			t.Errorf("a Pad remains (GoMLX cannot differentiate it): %v", n.Inputs)
		}
	}
}

// Interpolation matrices: rows of linear and cubic weights sum to 1,
// align_corners keeps the corners, nearest picks one input.
func TestInterpolationMatrices(t *testing.T) {
	for _, p := range []resizePlan{
		{mode: "linear", coord: "half_pixel"}, {mode: "linear", coord: "align_corners"}, {mode: "linear", coord: "asymmetric"},
		{mode: "cubic", coord: "half_pixel", cubicA: -0.75}, {mode: "cubic", coord: "pytorch_half_pixel", cubicA: -0.5, exclude: true},
		{mode: "nearest", coord: "asymmetric", nearest: "floor"}, {mode: "nearest", coord: "half_pixel", nearest: "round_prefer_ceil"},
	} {
		p.in, p.out, p.scales = []int64{1, 1, 5, 7}, []int64{1, 1, 5, 13}, []float64{1, 1, 1, 13.0 / 7}
		m, err := p.matrix(3)
		if err != nil {
			t.Fatal(err)
		}
		for o, row := range m {
			sum, ones := 0.0, 0
			for _, v := range row {
				sum += v
				if v == 1 {
					ones++
				}
			}
			if math.Abs(sum-1) > 1e-12 {
				t.Errorf("%s %s: row %d sums to %g", p.mode, p.coord, o, sum)
			}
			if p.mode == "nearest" && ones != 1 {
				t.Errorf("%s: row %d picks %d inputs", p.coord, o, ones)
			}
		}
		if p.coord == "align_corners" && (m[0][0] != 1 || m[12][6] != 1) {
			t.Errorf("align_corners: corners %v %v", m[0], m[12])
		}
	}
}

func TestHalfFloat(t *testing.T) {
	for _, f := range []float32{0, 1, -2.5, 0.1, 65504, 1e-7, float32(math.Inf(-1))} {
		got := halfToFloat(floatToHalf(f))
		if f != 0 && math.Abs(float64(got-f)) > math.Abs(float64(f))*1e-3+6e-8 || f == 0 && got != 0 {
			t.Errorf("%g → %g", f, got)
		}
	}
}

// encodeValueInfo writes a ValueInfoProto for a tensor of the given type
// and dims (-1: unknown).
func encodeValueInfo(name string, elem int32, dims []int64) []byte {
	var shape []byte
	for _, d := range dims {
		var dim []byte
		if d >= 0 {
			dim = appendVarint(nil, fDimValue, d)
		}
		shape = appendMsg(shape, fShapeDim, dim)
	}
	tt := appendVarint(nil, fTTElem, int64(elem))
	if dims != nil {
		tt = appendMsg(tt, fTTShape, shape)
	}
	return appendMsg(appendString(nil, fValueName, name), fValueType, appendMsg(nil, fTypeTensor, tt))
}
