package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/onnx-gomlx/onnx"
	"github.com/gomlx/onnx-gomlx/onnx/parser"

	"github.com/dl4img/dl4img/onnxlegal"
)

// onnxNode is the part of an ONNX node the feature cut and fine-tuning
// read, copied out of the legalized graph (so the file's bytes can go).
type onnxNode struct {
	Name, Op       string
	Inputs, Output []string
	// Axes of a reduction, from its attribute or constant input.
	Axes []int64
}

// imageModel is an ONNX model with one image input, legalized for the
// import (onnxlegal) and parsed by it.
type imageModel struct {
	m     onnx.Model
	input string
	dims  []int // of the input; -1 where dynamic
	nchw  bool
	size  int
	// hash is the sha256 of the file, or, when legalization rewrote the
	// graph, of the file and the legalization version: what the features
	// depend on, the feature cache's key.
	hash    string
	nodes   []onnxNode
	outputs []string
	inits   map[string]bool
	report  onnxlegal.Report
	opset   int64
	bytes   int64 // the file's size
}

// parseImageModel reads the ONNX file at path, checks that it has one
// image input that takes size×size images (size 0: the model's own
// static size), legalizes it for that size and parses it. Errors are one
// line starting with the path.
func parseImageModel(path string, size int) (im imageModel, err error) {
	// onnx-gomlx panics on some malformed models (a missing graph).
	defer func() {
		if r := recover(); r != nil {
			msg, _, _ := strings.Cut(fmt.Sprint(r), "\n")
			err = fmt.Errorf("%s: not a usable ONNX model: %s", path, msg)
		}
	}()
	b, err := os.ReadFile(path)
	if err != nil {
		return im, err
	}
	if err := checkONNXTensors(b); errors.Is(err, errNotONNX) {
		return im, fmt.Errorf("%s: %w", path, err)
	} else if err != nil {
		return im, fmt.Errorf("%s: not a usable ONNX model: %w", path, err)
	}
	lm, err := onnxlegal.Read(b)
	if err != nil {
		return im, fmt.Errorf("%s: %w", path, err)
	}
	ins := lm.Inputs()
	if len(ins) != 1 {
		names := make([]string, len(ins))
		for i, in := range ins {
			names[i] = in.Name
		}
		return im, fmt.Errorf("%s: want one image input, the model has %d (%v)", path, len(ins), names)
	}
	in := ins[0]
	im.input, im.size = in.Name, size
	for _, d := range in.Dims {
		im.dims = append(im.dims, int(d))
	}
	if im.size == 0 {
		if im.size = staticSize(im.dims); im.size == 0 {
			return im, fmt.Errorf("%s: input %q has no static size (%s): give the size", path, in.Name, dimsText(im.dims))
		}
	}
	if im.nchw, err = inputLayout(im.dims, im.size); err != nil {
		return im, fmt.Errorf("%s: input %q: %w", path, in.Name, err)
	}
	fixed := []int64{-1, 3, int64(im.size), int64(im.size)}
	if !im.nchw {
		fixed = []int64{-1, int64(im.size), int64(im.size), 3}
	}
	if len(im.dims) == 4 && im.dims[0] > 0 {
		fixed[0] = int64(im.dims[0])
	}
	im.report, err = lm.Legalize(onnxlegal.Options{Inputs: map[string][]int64{in.Name: fixed}})
	im.nodes, im.outputs, im.inits = summarize(lm)
	im.opset, im.bytes = lm.Opset, int64(len(b))
	if err != nil {
		return im, fmt.Errorf("%s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	im.hash = hex.EncodeToString(sum[:])
	if len(im.report.Rewrites) > 0 {
		sum = sha256.Sum256(fmt.Appendf(nil, "%s onnxlegal v%d", im.hash, onnxlegal.Version))
		im.hash = hex.EncodeToString(sum[:])
		b = lm.Bytes()
	}
	if im.m, err = parser.Parse(b); err != nil {
		return im, fmt.Errorf("%s: %w", path, err)
	}
	// External data lives next to the file.
	im.m = im.m.WithBaseDir(filepath.Dir(path))
	return im, nil
}

// summarize copies out what the cut and fine-tuning need.
func summarize(lm *onnxlegal.Model) (nodes []onnxNode, outputs []string, inits map[string]bool) {
	inits = map[string]bool{}
	for _, t := range lm.Graph.Inits {
		inits[t.Name] = true
	}
	for _, n := range lm.Graph.Nodes {
		nd := onnxNode{Name: n.Name, Op: n.Op, Inputs: slices.Clone(n.Inputs), Output: slices.Clone(n.Outputs)}
		if n.Op == "Constant" {
			for _, o := range n.Outputs {
				inits[o] = true // a constant operand, like an initializer
			}
		}
		if nd.Axes = slices.Clone(n.Ints("axes")); nd.Axes == nil && len(n.Inputs) > 1 && strings.HasPrefix(n.Op, "Reduce") {
			nd.Axes, _ = lm.ConstInts(n.Inputs[1])
		}
		nodes = append(nodes, nd)
	}
	for _, o := range lm.Graph.Outputs {
		outputs = append(outputs, o.Name)
	}
	return nodes, outputs, inits
}

// inputLayout tells NCHW from NHWC by where the 3 channels are, and checks
// a static spatial size against the preprocessing.
func inputLayout(d []int, size int) (nchw bool, err error) {
	if len(d) != 4 {
		return false, fmt.Errorf("want a rank-4 image input, got %s", dimsText(d))
	}
	switch {
	case d[1] == 3:
		nchw = true
	case d[3] == 3:
	default:
		return false, fmt.Errorf("no axis of 3 channels in %s", dimsText(d))
	}
	h, w := d[1], d[2]
	if nchw {
		h, w = d[2], d[3]
	}
	if (h > 0 && h != size) || (w > 0 && w != size) {
		return false, fmt.Errorf("model wants %dx%d images but input_size is %d", h, w, size)
	}
	return nchw, nil
}

func dimsText(d []int) string {
	s := "["
	for i, v := range d {
		if i > 0 {
			s += " "
		}
		if v < 0 {
			s += "?"
		} else {
			s += fmt.Sprint(v)
		}
	}
	return s + "]"
}

// featureCut is where a backbone is cut: Features is the tensor whose
// flattening is the feature vector; Map, when known, is the last
// convolutional feature map that was pooled into it (for CAM), with
// MapNCHW telling its layout. Classifier names the final classifier layer
// whose input the cut is ("" for the global-pool fallback or a cut the
// user named).
type featureCut struct {
	Features   string
	Map        string
	MapNCHW    bool
	Classifier string
}

// passThrough ops do not change values, only shapes: the cut traces back
// through them from the classifier's input.
var passThrough = map[string]bool{"Flatten": true, "Reshape": true, "Dropout": true, "Identity": true, "Squeeze": true, "Unsqueeze": true}

// headOps may follow the classifier layer: its bias, the activation of
// the logits.
var headOps = map[string]bool{"Softmax": true, "LogSoftmax": true, "Sigmoid": true, "Identity": true, "Flatten": true,
	"Reshape": true, "Squeeze": true, "Add": true, "Dropout": true}

// findCut picks the features the classifier sees: from the first graph
// output back through the head ops to the final Gemm/MatMul with constant
// weights, then from its data input back through shape-only ops to the
// last op that changes values. Without such a classifier (a headless
// export, SqueezeNet's convolutional classifier) it falls back to the
// last global average pool (GlobalAveragePool, or ReduceMean over the two
// spatial axes as tf2onnx writes Keras' pooling).
func findCut(nodes []onnxNode, outputs []string, inits map[string]bool) (featureCut, error) {
	producer := map[string]int{}
	for i, n := range nodes {
		for _, o := range n.Output {
			producer[o] = i
		}
	}
	if c, ok := classifierCut(nodes, outputs, inits, producer); ok {
		return c, nil
	}
	for i := len(nodes) - 1; i >= 0; i-- {
		if c, ok := poolCut(nodes[i]); ok {
			return c, nil
		}
	}
	return featureCut{}, errors.New("no final Gemm/MatMul classifier and no global average pool found: name the feature node with feature_node")
}

func classifierCut(nodes []onnxNode, outputs []string, inits map[string]bool, producer map[string]int) (featureCut, bool) {
	if len(outputs) == 0 {
		return featureCut{}, false
	}
	t := outputs[0]
	for range len(nodes) { // at most one step per node: a malformed graph may loop
		i, ok := producer[t]
		if !ok {
			return featureCut{}, false
		}
		n := nodes[i]
		if n.Op == "Gemm" || n.Op == "MatMul" {
			data := ""
			switch {
			case len(n.Inputs) >= 2 && inits[n.Inputs[1]] && !inits[n.Inputs[0]]:
				data = n.Inputs[0]
			case len(n.Inputs) >= 2 && inits[n.Inputs[0]] && !inits[n.Inputs[1]] && n.Op == "MatMul":
				data = n.Inputs[1]
			default:
				return featureCut{}, false
			}
			c := featureCut{Features: traceBack(nodes, producer, data), Classifier: n.Name}
			if j, ok := producer[c.Features]; ok {
				if p, ok := poolCut(nodes[j]); ok {
					c.Map, c.MapNCHW = p.Map, p.MapNCHW
				}
			}
			return c, true
		}
		if !headOps[n.Op] || len(n.Inputs) == 0 {
			return featureCut{}, false
		}
		next := n.Inputs[0]
		if n.Op == "Add" { // the bias: follow the operand that is not constant
			if len(n.Inputs) != 2 || inits[n.Inputs[0]] == inits[n.Inputs[1]] {
				return featureCut{}, false
			}
			if inits[next] {
				next = n.Inputs[1]
			}
		}
		t = next
	}
	return featureCut{}, false
}

// traceBack follows t back through pass-through ops (at most one step per
// node: a malformed graph may loop).
func traceBack(nodes []onnxNode, producer map[string]int, t string) string {
	for range len(nodes) {
		i, ok := producer[t]
		if !ok || !passThrough[nodes[i].Op] || len(nodes[i].Inputs) == 0 {
			return t
		}
		t = nodes[i].Inputs[0]
	}
	return t
}

// poolCut is the cut at a global average pool node, with its map.
func poolCut(n onnxNode) (featureCut, bool) {
	if len(n.Inputs) == 0 || len(n.Output) == 0 {
		return featureCut{}, false // not a pool of anything
	}
	switch n.Op {
	case "GlobalAveragePool":
		return featureCut{Features: n.Output[0], Map: n.Inputs[0], MapNCHW: true}, true
	case "ReduceMean":
		if slices.Equal(n.Axes, []int64{1, 2}) {
			return featureCut{Features: n.Output[0], Map: n.Inputs[0]}, true
		}
		if slices.Equal(n.Axes, []int64{2, 3}) || slices.Equal(n.Axes, []int64{-2, -1}) {
			return featureCut{Features: n.Output[0], Map: n.Inputs[0], MapNCHW: true}, true
		}
	}
	return featureCut{}, false
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
			if p, ok := poolCut(n); ok && p.Features == c.Features {
				c.Map, c.MapNCHW = p.Map, p.MapNCHW
			}
			return c, nil
		}
	}
	return featureCut{}, fmt.Errorf("parameter feature_node: no node or node output named %q", name)
}
