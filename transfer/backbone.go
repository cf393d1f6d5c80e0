package transfer

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/gomlx/onnx-gomlx/onnx"

	"github.com/dl4img/dl4img/onnxlegal"
)

// Backbone is a pretrained CNN imported from ONNX, cut at its pooled
// features.
type Backbone struct {
	Path string
	// Hash is the sha256 of the ONNX file (and of the legalization
	// version when it rewrote the graph): the feature cache key.
	Hash string
	Pre  Preprocess
	// Dim is the feature vector length (known after the first call).
	Dim int

	m         onnx.Model
	nodes     []onnxNode
	report    onnxlegal.Report
	cut       featureCut
	input     string
	nchw      bool
	store     *model.Store
	featExec  *model.Exec
	camExec   *model.Exec
	backend   compute.Backend
	scopeName string
}

// LoadBackbone parses an ONNX file and loads its weights. featureNode names
// the cut (a node or node output); "" finds it automatically.
func LoadBackbone(backend compute.Backend, path string, pre Preprocess, featureNode string) (b *Backbone, err error) {
	if err := pre.validate(); err != nil {
		return nil, fmt.Errorf("backbone %s: %w", path, err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("backbone %s: %v", path, r)
		}
	}()
	im, err := parseImageModel(path, pre.Size)
	if err != nil {
		return nil, fmt.Errorf("backbone %w", err)
	}
	return newBackbone(backend, im, path, pre, featureNode)
}

// newBackbone cuts a parsed model and loads its weights.
func newBackbone(backend compute.Backend, im imageModel, path string, pre Preprocess, featureNode string) (*Backbone, error) {
	var cut featureCut
	var err error
	if featureNode != "" {
		cut, err = cutAt(im.nodes, featureNode)
	} else {
		cut, err = findCut(im.nodes, im.outputs, im.inits)
	}
	if err != nil {
		return nil, fmt.Errorf("backbone %s: %w", path, err)
	}
	st := model.NewStore()
	if err := im.m.VariablesToScope(st.RootScope()); err != nil {
		return nil, fmt.Errorf("backbone %s: %w", path, err)
	}
	return &Backbone{Path: path, Hash: im.hash, Pre: pre, m: im.m, nodes: im.nodes, cut: cut, input: im.input,
		nchw: im.nchw, store: st, backend: backend, report: im.report}, nil
}

// graph builds the backbone on x [batch, size, size, 3] (HWC, normalized)
// and returns the named outputs.
func (b *Backbone) graph(scope *model.Scope, x *Node, outputs ...string) []*Node {
	if b.nchw {
		x = TransposeAllDims(x, 0, 3, 1, 2)
	}
	return b.m.CallGraph(scope, x.Graph(), map[string]*Node{b.input: x}, outputs...)
}

// featuresGraph returns the flattened pooled features [batch, dim].
func (b *Backbone) featuresGraph(scope *model.Scope, x *Node) *Node {
	f := b.graph(scope, x, b.cut.Features)[0]
	return Reshape(f, x.Shape().Dimensions[0], -1)
}

// mapGraph returns the features and the last conv feature map as NHWC.
func (b *Backbone) mapGraph(scope *model.Scope, x *Node) (*Node, *Node) {
	outs := b.graph(scope, x, b.cut.Features, b.cut.Map)
	f, fm := Reshape(outs[0], x.Shape().Dimensions[0], -1), outs[1]
	if fm.Rank() != 4 {
		exceptions.Panicf("feature map %q has shape %s, want rank 4", b.cut.Map, fm.Shape())
	}
	if b.cut.MapNCHW {
		fm = TransposeAllDims(fm, 0, 2, 3, 1)
	}
	return f, fm
}

// HasMap reports whether CAM is possible (the pooled conv map is known).
func (b *Backbone) HasMap() bool { return b.cut.Map != "" }

// batchTensor packs preprocessed HWC images into [n, size, size, 3].
func (b *Backbone) batchTensor(imgs [][]float32) *tensors.Tensor {
	return batchTensor(b.Pre.Size, imgs)
}

func batchTensor(s int, imgs [][]float32) *tensors.Tensor {
	n := len(imgs)
	t := tensors.FromShape(shapes.Make(tensorsDType, n, s, s, 3))
	tensors.MutableFlatData(t, func(flat []float32) {
		for i, im := range imgs {
			copy(flat[i*s*s*3:], im)
		}
	})
	return t
}

// Features computes the pooled features of preprocessed images.
func (b *Backbone) Features(imgs [][]float32) (out [][]float32, err error) {
	defer recoverErr(&err, "features of "+b.Path)
	if b.featExec == nil {
		b.featExec, err = model.NewExec(b.backend, b.store, b.featuresGraph)
		if err != nil {
			return nil, err
		}
	}
	t, err := b.featExec.Call1(b.batchTensor(imgs))
	if err != nil {
		return nil, err
	}
	return b.split(t, len(imgs)), nil
}

// FeatureMaps computes features and NHWC feature maps (for CAM).
func (b *Backbone) FeatureMaps(imgs [][]float32) (feats [][]float32, maps *tensors.Tensor, err error) {
	defer recoverErr(&err, "feature maps of "+b.Path)
	if !b.HasMap() {
		return nil, nil, fmt.Errorf("backbone %s: the feature map under the cut is unknown (feature_node is not a global pool)", b.Path)
	}
	if b.camExec == nil {
		b.camExec, err = model.NewExec(b.backend, b.store, b.mapGraph)
		if err != nil {
			return nil, nil, err
		}
	}
	f, fm, err := b.camExec.Call2(b.batchTensor(imgs))
	if err != nil {
		return nil, nil, err
	}
	return b.split(f, len(imgs)), fm, nil
}

func (b *Backbone) split(t *tensors.Tensor, n int) [][]float32 {
	flat := tensors.MustCopyFlatData[float32](t)
	dim := len(flat) / n
	b.Dim = dim
	out := make([][]float32, n)
	for i := range out {
		out[i] = flat[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return out
}

// recoverErr turns a graph-building panic into an error of one line. The
// legalization refuses what it knows the import lacks before this point;
// what still fails while the graph is built is reported by the import's
// own message, without the wrapping of GoMLX's executor around it.
func recoverErr(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: %v", what, r)
	}
	if *err == nil {
		return
	}
	msg := (*err).Error()
	if m := unsupportedOp.FindStringSubmatch(msg); m != nil {
		*err = fmt.Errorf("%s: node %s (%s): op is not supported", what, m[2], strings.Trim(m[1], `"`))
		return
	}
	if i := strings.LastIndex(msg, "panicked: "); i >= 0 {
		msg = msg[i+len("panicked: "):]
		if j := strings.IndexByte(msg, '\n'); j >= 0 {
			msg = msg[:j]
		}
		*err = fmt.Errorf("%s: the ONNX import failed: %s", what, msg)
	}
}

// unsupportedOp is how onnx-gomlx v0.5.0 reports an op it lacks, wrapped in
// GoMLX's compilation error.
var unsupportedOp = regexp.MustCompile(`unimplemented ONNX op ("[^"]*") in Node ("[^"]*")`)

// Name is a short label: the file's base name.
func (b *Backbone) Name() string {
	s := b.Path
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSuffix(s, ".onnx")
}
