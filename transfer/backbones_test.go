package transfer

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dl4img/dl4img/engine"
	"github.com/dl4img/dl4img/tasks"
)

// fixtureImage is image() of testdata/transfer/make_backbones.py: HWC.
func fixtureImage(n, size int) []float32 {
	v := make([]float32, 0, size*size*3)
	for h := range size {
		for w := range size {
			for c := range 3 {
				x := math.Sin(0.37*float64(h)+0.11*float64(w*(c+1))+1.3*float64(n)) * math.Cos(0.05*float64(h-w))
				v = append(v, float32(x))
			}
		}
	}
	return v
}

// TestBackbonesMatchPyTorch runs small networks with the op mix of
// torchvision's ResNet-50, MobileNetV2 and InceptionV3 exports and of a
// tf2onnx NHWC export (make_backbones.py) on dl4img's Go backend, whose
// convolutions and pools the engine runs on oneDNN (all of them: no op is
// left to the fallback), and compares the pooled features with PyTorch's.
func TestBackbonesMatchPyTorch(t *testing.T) {
	checkBackbones(t, filepath.Join(fixtureDir, "backbones"), "resnet-mini", "mobilenetv2-mini", "inceptionv3-mini", "keras-nhwc-mini")
}

// TestLegalizedBackbonesMatchPyTorch runs the blocks of real backbones
// that need the legalization (make_legal.py): GoogLeNet's ceil-mode max
// pools, MobileNetV3's HardSigmoid and HardSwish with its features after
// the classifier's first Linear and Hardswish, ConvNeXt's features after
// its classifier's LayerNorm, and ResNet50, InceptionV3 and Xception as
// tf2onnx writes Keras models (NHWC, ZeroPadding2D as Pad, "same" pools
// and convolutions as auto_pad, BatchNormalization with momentum 0.99,
// Dense as MatMul, Add and Softmax).
func TestLegalizedBackbonesMatchPyTorch(t *testing.T) {
	checkBackbones(t, legalDir, "googlenet-block", "mobilenetv3-block", "convnext-mini",
		"keras-resnet50-mini", "keras-inceptionv3-mini", "keras-xception-mini")
}

// checkBackbones compares the features at the automatic cut of the named
// models in dir with PyTorch's (dir's ref.json, or blocks.json).
func checkBackbones(t *testing.T, dir string, names ...string) {
	raw, err := os.ReadFile(filepath.Join(dir, "ref.json"))
	if filepath.Base(dir) == "legal" {
		raw, err = os.ReadFile(filepath.Join(dir, "blocks.json"))
	}
	if err != nil {
		t.Fatal(err)
	}
	var ref map[string]struct {
		Size     int         `json:"size"`
		Layout   string      `json:"layout"`
		Features [][]float64 `json:"features"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			r, ok := ref[name]
			if !ok {
				t.Fatalf("%s missing from the references", name)
			}
			backend, _, err := tasks.NewBackend("go")
			if err != nil {
				t.Fatal(err)
			}
			bb, err := LoadBackbone(backend, filepath.Join(dir, name+".onnx"), Preprocess{r.Size, "squash", "unit"}, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := map[bool]string{true: "NCHW", false: "NHWC"}[bb.nchw]; got != r.Layout {
				t.Errorf("layout %s, want %s", got, r.Layout)
			}
			feats, err := bb.Features([][]float32{fixtureImage(0, r.Size), fixtureImage(1, r.Size)})
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range r.Features {
				if len(feats[i]) != len(want) {
					t.Fatalf("image %d: %d features, want %d", i, len(feats[i]), len(want))
				}
				w32 := make([]float32, len(want))
				for k, v := range want {
					w32[k] = float32(v)
				}
				d := relDiff(feats[i], w32)
				if d > 1e-4 {
					t.Errorf("image %d: max |dl4img − PyTorch| is %.3g of the largest feature, want ≤ 1e-4", i, d)
				}
				t.Logf("image %d: max relative difference %.2g over %d features", i, d, len(want))
			}
			if s, ok := engine.StatsOf(backend); ok && (len(s.Kept) > 0 || len(s.Fallbacks) > 0 || s.Ran("conv forward") == 0) {
				t.Errorf("not every convolution and pool ran on oneDNN: %s", s)
			}
		})
	}
}

// TestTuneVarsKeepsSharedInitializersFrozen: an initializer the last layer
// shares with an earlier one (torch.onnx deduplicates equal tensors, such
// as a random network's zero biases) is not tuned.
func TestTuneVarsKeepsSharedInitializersFrozen(t *testing.T) {
	backend, _, err := tasks.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	bb, err := LoadBackbone(backend, filepath.Join(fixtureDir, "backbones", "resnet-mini.onnx"), Preprocess{224, "squash", "unit"}, "")
	if err != nil {
		t.Fatal(err)
	}
	tune, err := bb.tuneVars(1)
	if err != nil || len(tune) != 2 {
		t.Fatalf("tuneVars(1) = %v %v, want the last layer's weight and bias", tune, err)
	}
	var shared string
	for _, in := range bb.nodes[slices.IndexFunc(bb.nodes, func(n onnxNode) bool { return n.Op == "Conv" })].Inputs {
		if !tune[safeVarName(in)] && in != bb.nodes[0].Inputs[0] {
			shared = in
		}
	}
	// Make the last layer read one of the first conv's initializers.
	for i := len(bb.nodes) - 1; i >= 0; i-- {
		if bb.nodes[i].Op == "Conv" {
			bb.nodes[i].Inputs = append(slices.Clone(bb.nodes[i].Inputs), shared)
			break
		}
	}
	tune, err = bb.tuneVars(1)
	if err != nil || len(tune) != 2 || tune[safeVarName(shared)] {
		t.Errorf("with %s shared with the first layer: tuneVars(1) = %v %v, want it frozen", shared, tune, err)
	}
}
