package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/gomlx/onnx-gomlx/onnx"
	"github.com/gomlx/onnx-gomlx/onnx/parser"
)

// Backbone is a pretrained CNN imported from ONNX, cut at its pooled
// features.
type Backbone struct {
	Path string
	// Hash is the sha256 of the ONNX file: the feature cache key.
	Hash string
	Pre  Preprocess
	// Dim is the feature vector length (known after the first call).
	Dim int

	m         onnx.Model
	nodes     []onnxNode
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
	hash, err := fileHash(path)
	if err != nil {
		return nil, fmt.Errorf("backbone: %w", err)
	}
	nodes, err := onnxNodes(path)
	if err != nil {
		return nil, fmt.Errorf("backbone: %w", err)
	}
	var cut featureCut
	if featureNode != "" {
		cut, err = cutAt(nodes, featureNode)
	} else {
		cut, err = findCut(nodes)
	}
	if err != nil {
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
	m, nchw := im.m, im.nchw
	st := model.NewStore()
	if err := m.VariablesToScope(st.RootScope()); err != nil {
		return nil, fmt.Errorf("backbone %s: %w", path, err)
	}
	return &Backbone{Path: path, Hash: hash, Pre: pre, m: m, nodes: nodes, cut: cut, input: im.input,
		nchw: nchw, store: st, backend: backend}, nil
}

// imageModel is a parsed ONNX model with one image input.
type imageModel struct {
	m     onnx.Model
	input string
	dims  []int // of the input; -1 where dynamic
	nchw  bool
	size  int
}

// parseImageModel parses the ONNX file at path and checks that it has one
// image input that takes size×size images (size 0: the model's own static
// size). Errors start with the path.
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
	if err := checkONNXTensors(b); err != nil {
		return im, fmt.Errorf("%s: not a usable ONNX model: %w", path, err)
	}
	im.m, err = parser.Parse(b)
	if err != nil {
		return im, fmt.Errorf("%s: %w", path, err)
	}
	names, shs := im.m.Inputs()
	if len(names) != 1 {
		return im, fmt.Errorf("%s: want one image input, the model has %d (%v)", path, len(names), names)
	}
	im.input, im.dims, im.size = names[0], shs[0].Dimensions, size
	if im.size == 0 {
		if im.size = staticSize(im.dims); im.size == 0 {
			return im, fmt.Errorf("%s: input %q has no static size (%s): give the size", path, names[0], shs[0])
		}
	}
	if im.nchw, err = inputLayout(shs[0], im.size); err != nil {
		return im, fmt.Errorf("%s: input %q: %w", path, names[0], err)
	}
	return im, nil
}

// inputLayout tells NCHW from NHWC by where the 3 channels are, and checks
// a static spatial size against the preprocessing.
func inputLayout(s shapes.Shape, size int) (nchw bool, err error) {
	d := s.Dimensions
	if len(d) != 4 {
		return false, fmt.Errorf("want a rank-4 image input, got %s", s)
	}
	switch {
	case d[1] == 3:
		nchw = true
	case d[3] == 3:
	default:
		return false, fmt.Errorf("no axis of 3 channels in %s", s)
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

func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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

// recoverErr turns a graph-building panic into an error, and an ONNX op
// that onnx-gomlx cannot build into one line naming the op and the node.
func recoverErr(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: %v", what, r)
	}
	if *err != nil {
		if m := unsupportedOp.FindStringSubmatch((*err).Error()); m != nil {
			*err = fmt.Errorf("%s: ONNX op %s (node %s) is not supported by dl4img's ONNX import", what, m[1], m[2])
		}
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
