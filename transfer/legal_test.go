package transfer

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/onnx-gomlx/onnx"
	"github.com/gomlx/onnx-gomlx/onnx/parser"

	"github.com/dl4img/dl4img/onnxlegal"
	"github.com/dl4img/dl4img/tasks"
)

const legalDir = "../testdata/transfer/legal"

// inputValues and pattern are make_legal.py's input_values and pattern.
func inputValues(n int) []float32 {
	out := make([]float32, n)
	for k := range out {
		out[k] = float32(math.Sin(0.37*float64(k)+1.1)*1.5 + 0.3*math.Cos(0.05*float64(k)))
	}
	return out
}

func pattern(n int) []float32 {
	out := make([]float32, n)
	for k := range out {
		out[k] = float32(math.Sin(0.61*float64(k)+0.3) * math.Cos(0.13*float64(k)))
	}
	return out
}

type legalRef struct {
	Dims    []int  `json:"dims"`
	OutDims []int  `json:"out_dims"`
	Output  string `json:"output"`
	Grad    string `json:"grad"`
	Weight  string `json:"weight"`
	WGrad   string `json:"wgrad"`
	Groups  int    `json:"groups"`
}

func float32s(tb testing.TB, b64 string) []float32 {
	tb.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// relDiff is max |got − want| over max |want|; +Inf where got is NaN or
// infinite and want is not.
func relDiff(got, want []float32) float64 {
	scale, worst := 0.0, 0.0
	for i, w := range want {
		d := math.Abs(float64(got[i]) - float64(w))
		if math.IsNaN(d) || math.IsInf(d, 0) {
			return math.Inf(1)
		}
		scale = math.Max(scale, math.Abs(float64(w)))
		worst = math.Max(worst, d)
	}
	if scale == 0 {
		return worst
	}
	return worst / scale
}

// legalized reads a fixture, legalizes it for its input dims and parses it.
func legalized(tb testing.TB, name string, dims []int) (onnx.Model, onnxlegal.Report) {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(legalDir, name+".onnx"))
	if err != nil {
		tb.Fatal(err)
	}
	lm, err := onnxlegal.Read(raw)
	if err != nil {
		tb.Fatal(err)
	}
	in := make([]int64, len(dims))
	for i, d := range dims {
		in[i] = int64(d)
	}
	rep, err := lm.Legalize(onnxlegal.Options{Inputs: map[string][]int64{"x": in}})
	if err != nil {
		tb.Fatal(err)
	}
	if len(rep.Rewrites) == 0 {
		tb.Fatalf("%s: nothing was rewritten", name)
	}
	m, err := parser.Parse(lm.Bytes())
	if err != nil {
		tb.Fatal(err)
	}
	return m, rep
}

// TestLegalizedOpsMatchPyTorch runs each rewrite on its own, and the U-Net
// decoder with its ConvTransposes, MaxPools and bilinear Resize, on
// dl4img's Go backend, and compares the outputs and the gradients (the
// input's, and ConvTranspose's weights', which fine-tuning trains through
// the rewritten kernel) with PyTorch's.
func TestLegalizedOpsMatchPyTorch(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(legalDir, "ref.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs map[string]legalRef
	if err := json.Unmarshal(raw, &refs); err != nil {
		t.Fatal(err)
	}
	backend, _, err := tasks.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ref := refs[name]
		t.Run(name, func(t *testing.T) {
			m, rep := legalized(t, name, ref.Dims)
			var whats []string
			for _, r := range rep.Rewrites {
				whats = append(whats, r.Op+": "+r.What)
			}
			t.Logf("rewrites: %s", strings.Join(whats, "; "))
			got := runLegalCase(t, backend, m, rep, ref)
			want := map[string][]float32{"output": float32s(t, ref.Output), "input gradient": float32s(t, ref.Grad)}
			if ref.WGrad != "" {
				want["weight gradient"] = float32s(t, ref.WGrad)
			}
			for what, w := range want {
				g := got[what]
				if len(g) != len(w) {
					t.Fatalf("%s: %d values, PyTorch has %d", what, len(g), len(w))
				}
				d := relDiff(g, w)
				if d > 1e-4 {
					t.Errorf("%s: max |dl4img − PyTorch| is %.3g of the largest value, want ≤ 1e-4", what, d)
				}
				t.Logf("%s: max relative difference %.2g over %d values", what, d, len(w))
			}
		})
	}
}

// runLegalCase computes y, and with grads the gradients of sum(y·pattern).
func runLegalCase(t *testing.T, backend compute.Backend, m onnx.Model, rep onnxlegal.Report, ref legalRef) map[string][]float32 {
	t.Helper()
	store := model.NewStore()
	if err := m.VariablesToScope(store.RootScope()); err != nil {
		t.Fatal(err)
	}
	// The kernel the ConvTranspose rewrite derived from the weights PyTorch
	// differentiated.
	var kernel *model.Variable
	if ref.Weight != "" {
		for derived, from := range rep.Derived {
			if from != ref.Weight {
				continue
			}
			for v := range store.IterVariables() {
				if v.Scope() == "/"+onnx.ModelScope && v.Name() == safeVarName(derived) {
					kernel = v
				}
			}
		}
		if kernel == nil {
			t.Fatalf("no initializer derived from %q", ref.Weight)
		}
	}
	n := 1
	for _, d := range ref.OutDims {
		n *= d
	}
	p := tensors.FromFlatDataAndDimensions(pattern(n), ref.OutDims...)
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, x *Node) []*Node {
		y := m.CallGraph(scope, x.Graph(), map[string]*Node{"x": x}, "y")[0]
		outs := []*Node{y}
		loss := ReduceAllSum(Mul(y, Const(x.Graph(), p)))
		outs = append(outs, Gradient(loss, x)[0])
		if kernel != nil {
			outs = append(outs, Gradient(loss, kernel.NodeValue(x.Graph()))[0])
		}
		return outs
	})
	if err != nil {
		t.Fatal(err)
	}
	size := 1
	for _, d := range ref.Dims {
		size *= d
	}
	res, err := exec.Call(tensors.FromFlatDataAndDimensions(inputValues(size), ref.Dims...))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{"output": tensors.MustCopyFlatData[float32](res[0])}
	if !slices.Equal(res[0].Shape().Dimensions, ref.OutDims) {
		t.Fatalf("output %v, PyTorch's %v", res[0].Shape().Dimensions, ref.OutDims)
	}
	got["input gradient"] = tensors.MustCopyFlatData[float32](res[1])
	if kernel != nil {
		got["weight gradient"] = unflipKernel(tensors.MustCopyFlatData[float32](res[2]), kernel.Shape(), max(1, ref.Groups))
	}
	return got
}

// unflipKernel maps the gradient of the rewritten kernel W'[g·coutG+co,
// i, flipped taps] back to ConvTranspose's layout W[g·cinG+i, co, taps].
func unflipKernel(dw []float32, s shapes.Shape, groups int) []float32 {
	cout, cinG := s.Dimensions[0], s.Dimensions[1]
	taps := s.Size() / (cout * cinG)
	coutG := cout / groups
	out := make([]float32, len(dw))
	for g := range groups {
		for i := range cinG {
			for co := range coutG {
				for p := range taps {
					out[((g*cinG+i)*coutG+co)*taps+p] = dw[((g*coutG+co)*cinG+i)*taps+taps-1-p]
				}
			}
		}
	}
	return out
}

// TestFinetuneThroughRewrittenOps checks fine-tuning of the legalized
// blocks, the last layers as finetune_layers picks them: the gradient of
// a loss on the features with respect to every tuned weight passes
// through the rewritten HardSwish and HardSigmoid (MobileNetV3), the
// classifier's LayerNorm (ConvNeXt), Keras' "same" average pool (a padded
// pool rewritten as zero blocks, a mean and K/count) and ZeroPadding2D
// (Pad as Concat), and it agrees with the loss itself: along the
// gradient's direction d, (L(θ+εd) − L(θ−εd))/2ε equals |∇L|. Then two
// training steps with a dense head change every tuned weight. GoogLeNet's
// block fine-tunes through a max pool (the engine's SelectAndScatterMax).
func TestFinetuneThroughRewrittenOps(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(legalDir, "blocks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref map[string]struct {
		Size int `json:"size"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	backend, _, err := tasks.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		layers int
	}{{"mobilenetv3-block", 6}, {"convnext-mini", 3}, {"keras-inceptionv3-mini", 4}, {"keras-resnet50-mini", 6},
		{"googlenet-block", 4}} {
		t.Run(c.name, func(t *testing.T) {
			size := ref[c.name].Size
			bb, err := LoadBackbone(backend, filepath.Join(legalDir, c.name+".onnx"), Preprocess{size, "squash", "unit"}, "")
			if err != nil {
				t.Fatal(err)
			}
			tune, err := bb.tuneVars(c.layers)
			if err != nil {
				t.Fatal(err)
			}
			var vars []*model.Variable
			for v := range bb.store.IterVariables() {
				if v.Scope() == "/"+onnx.ModelScope && tune[v.Name()] {
					vars = append(vars, v)
				}
			}
			x := tensors.FromFlatDataAndDimensions(append(fixtureImage(0, size), fixtureImage(1, size)...), 2, size, size, 3)
			lossOf := func(scope *model.Scope, x *Node) *Node {
				f := bb.featuresGraph(scope, x)
				p := tensors.FromFlatDataAndDimensions(pattern(f.Shape().Size()), f.Shape().Dimensions...)
				return ReduceAllSum(Mul(f, Const(x.Graph(), p)))
			}
			gradExec, err := model.NewExec(backend, bb.store, func(scope *model.Scope, x *Node) []*Node {
				var ws []*Node
				for _, v := range vars {
					ws = append(ws, v.NodeValue(x.Graph()))
				}
				return Gradient(lossOf(scope, x), ws...)
			})
			if err != nil {
				t.Fatal(err)
			}
			gs, err := gradExec.Call(x)
			if err != nil {
				t.Fatal(err)
			}
			var norm float64
			grads := make([][]float32, len(vars))
			for i, g := range gs {
				grads[i] = tensors.MustCopyFlatData[float32](g)
				sq := 0.0
				for _, v := range grads[i] {
					sq += float64(v) * float64(v)
				}
				if sq == 0 || math.IsNaN(sq) || math.IsInf(sq, 0) {
					t.Errorf("weight %s: gradient with squared norm %g", vars[i].Name(), sq)
				}
				norm += sq
			}
			norm = math.Sqrt(norm)
			lossExec, err := model.NewExec(backend, bb.store, lossOf)
			if err != nil {
				t.Fatal(err)
			}
			orig := make([][]float32, len(vars))
			for i, v := range vars {
				orig[i] = tensors.MustCopyFlatData[float32](v.MustValue())
			}
			eps := 1e-2 / norm * float64(len(vars)) // a step small against the weights
			lossAt := func(sign float64) float64 {
				for i, v := range vars {
					w := slices.Clone(orig[i])
					for k := range w {
						w[k] += float32(sign * eps * float64(grads[i][k]) / norm)
					}
					v.MustSetValue(tensors.FromFlatDataAndDimensions(w, v.Shape().Dimensions...))
				}
				l, err := lossExec.Call1(x)
				if err != nil {
					t.Fatal(err)
				}
				return float64(tensors.MustCopyFlatData[float32](l)[0])
			}
			num := (lossAt(1) - lossAt(-1)) / (2 * eps)
			for i, v := range vars {
				v.MustSetValue(tensors.FromFlatDataAndDimensions(orig[i], v.Shape().Dimensions...))
			}
			if math.Abs(num-norm) > 0.02*norm {
				t.Errorf("directional derivative %g along the gradient, |gradient| %g", num, norm)
			}
			t.Logf("%d weights of %d layers: |∇L| %.4g, central difference along it %.4g", len(vars), c.layers, norm, num)

			// Two training steps with a dense head, as bench onnx --finetune.
			trainer, err := bb.finetuneTrainer(c.layers, 1e-3)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, err := trainer.TrainStep(train.Batch{Inputs: []*tensors.Tensor{x},
					Labels: []*tensors.Tensor{tensors.FromFlatDataAndDimensions([]float32{0, 1}, 2, 1)}}); err != nil {
					t.Fatal(err)
				}
				x = tensors.FromFlatDataAndDimensions(append(fixtureImage(0, size), fixtureImage(1, size)...), 2, size, size, 3)
			}
			for i, v := range vars {
				if relDiff(tensors.MustCopyFlatData[float32](v.MustValue()), orig[i]) == 0 {
					t.Errorf("weight %s did not change in training", v.Name())
				}
			}
		})
	}
}
