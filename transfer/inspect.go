package transfer

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/dl4img/dl4img/onnxlegal"
)

// Inspection is what `dl4img transfer inspect` reports about an ONNX
// backbone: its input, where the automatic cut falls and why, what the
// legalization rewrote or refuses, and whether it runs.
type Inspection struct {
	Path  string
	Bytes int64
	Opset int64
	Input string
	Dims  []int
	NCHW  bool
	Size  int
	// Cut and the op that writes it; Classifier is the layer whose input
	// the cut is ("" for the global-pool fallback or a named cut).
	Cut          featureCut
	CutOp        string
	ClassifierOp string
	// After are the ops that read, directly or not, the cut.
	After       []string
	Rewrites    []onnxlegal.Rewrite
	Unsupported []*onnxlegal.UnsupportedError
	// Features is the width the cut gives (from the inferred shapes, then
	// from running one image); 0 when unknown.
	Features int
	RunTime  time.Duration
}

// Inspect reads, legalizes and cuts an ONNX backbone and runs it on one
// black image of size×size (0: the model's own static size). An error is
// one line; the Inspection holds what was learned before it.
func Inspect(backend compute.Backend, path string, size int, featureNode string) (in *Inspection, err error) {
	in = &Inspection{Path: path}
	im, err := parseImageModel(path, size)
	in.Bytes, in.Opset, in.Input, in.Dims, in.NCHW, in.Size = im.bytes, im.opset, im.input, im.dims, im.nchw, im.size
	in.Rewrites, in.Unsupported = im.report.Rewrites, im.report.Unsupported
	if im.nodes == nil {
		return in, err
	}
	if featureNode != "" {
		in.Cut, _ = cutAt(im.nodes, featureNode)
	} else {
		in.Cut, _ = findCut(im.nodes, im.outputs, im.inits)
	}
	reached := map[string]bool{in.Cut.Features: true}
	for _, n := range im.nodes {
		for _, o := range n.Output {
			if o == in.Cut.Features {
				in.CutOp = n.Op
			}
		}
		if n.Name == in.Cut.Classifier && n.Name != "" {
			in.ClassifierOp = n.Op
		}
		for _, i := range n.Inputs {
			if reached[i] {
				in.After = append(in.After, n.Op)
				for _, o := range n.Output {
					reached[o] = true
				}
				break
			}
		}
	}
	if dims := im.report.Shapes[in.Cut.Features]; len(dims) > 1 {
		in.Features = int(max(0, onnxlegal.Size(dims[1:])))
	}
	if err != nil {
		return in, err
	}
	defer recoverErr(&err, path)
	bb, err := newBackbone(backend, im, path, Preprocess{Size: im.size, Resize: "squash", Normalize: "unit"}, featureNode)
	if err != nil {
		return in, err
	}
	start := time.Now()
	feats, err := bb.Features([][]float32{make([]float32, im.size*im.size*3)})
	if err != nil {
		return in, err
	}
	in.RunTime, in.Features = time.Since(start), len(feats[0])
	return in, nil
}

// Print writes the inspection for a person.
func (in *Inspection) Print(w io.Writer) {
	layout := "NHWC"
	if in.NCHW {
		layout = "NCHW"
	}
	fmt.Fprintf(w, "model:       %s (%.1f MB, ONNX opset %d)\n", in.Path, float64(in.Bytes)/1e6, in.Opset)
	if in.Input == "" {
		return
	}
	fmt.Fprintf(w, "input:       %q %s, %s, %d×%d images\n", in.Input, dimsText(in.Dims), layout, in.Size, in.Size)
	if in.Cut.Features != "" {
		how := "the last global average pool (no Gemm/MatMul classifier found)"
		if in.Cut.Classifier != "" {
			how = fmt.Sprintf("the input of the classifier %q (%s), traced back through shape-only ops", in.Cut.Classifier, in.ClassifierOp)
		}
		fmt.Fprintf(w, "cut:         %q (%s): %s\n", in.Cut.Features, in.CutOp, how)
		if in.Cut.Map != "" {
			fmt.Fprintf(w, "CAM map:     %q\n", in.Cut.Map)
		}
		fmt.Fprintf(w, "after cut:   %s\n", opList(in.After))
	}
	if in.Features > 0 {
		fmt.Fprintf(w, "features:    %d\n", in.Features)
	}
	if len(in.Rewrites) == 0 {
		fmt.Fprintln(w, "rewritten:   none (the import takes every node as it is)")
	} else {
		fmt.Fprintf(w, "rewritten:   %d nodes, for the import (onnxlegal v%d)\n", len(in.Rewrites), onnxlegal.Version)
		type group struct {
			n     int
			first string
		}
		var order []string
		groups := map[string]*group{}
		for _, r := range in.Rewrites {
			k := r.Op + ": " + r.What
			if groups[k] == nil {
				groups[k] = &group{first: r.Node}
				order = append(order, k)
			}
			groups[k].n++
		}
		for _, k := range order {
			g := groups[k]
			op, what, _ := strings.Cut(k, ": ")
			fmt.Fprintf(w, "  %s ×%d: %s (first %q)\n", op, g.n, what, g.first)
		}
	}
	if len(in.Unsupported) == 0 {
		fmt.Fprintln(w, "unsupported: none")
	} else {
		fmt.Fprintf(w, "unsupported: %d node(s)\n", len(in.Unsupported))
		for _, u := range in.Unsupported {
			fmt.Fprintf(w, "  %s\n", u)
		}
	}
	if in.RunTime > 0 {
		fmt.Fprintf(w, "loads:       yes (built and ran one image in %.1f s)\n", in.RunTime.Seconds())
	}
}

// opList is "A, B ×3, C" for a run of op names.
func opList(ops []string) string {
	if len(ops) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(ops); {
		j := i
		for j < len(ops) && ops[j] == ops[i] {
			j++
		}
		if j-i > 1 {
			parts = append(parts, fmt.Sprintf("%s ×%d", ops[i], j-i))
		} else {
			parts = append(parts, ops[i])
		}
		i = j
	}
	if len(ops) == 1 {
		return parts[0] + " (1 op)"
	}
	return fmt.Sprintf("%s (%d ops)", strings.Join(parts, ", "), len(ops))
}
