package transfer

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
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
	dir := filepath.Join(fixtureDir, "backbones")
	raw, err := os.ReadFile(filepath.Join(dir, "ref.json"))
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
	for _, name := range []string{"resnet-mini", "mobilenetv2-mini", "inceptionv3-mini", "keras-nhwc-mini"} {
		t.Run(name, func(t *testing.T) {
			r, ok := ref[name]
			if !ok {
				t.Fatalf("%s missing from ref.json", name)
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
				scale, worst := 0.0, 0.0
				for k, w := range want {
					scale = math.Max(scale, math.Abs(w))
					worst = math.Max(worst, math.Abs(float64(feats[i][k])-w))
				}
				if worst > 1e-4*scale {
					t.Errorf("image %d: max |dl4img - pytorch| = %.3g, %.3g of the largest feature, want <= 1e-4",
						i, worst, worst/scale)
				}
				t.Logf("image %d: max relative difference %.2g over %d features", i, worst/scale, len(want))
			}
			if s, ok := engine.StatsOf(backend); ok && (len(s.Kept) > 0 || len(s.Fallbacks) > 0 || s.Ran("conv forward") == 0) {
				t.Errorf("not every convolution and pool ran on oneDNN: %s", s)
			}
		})
	}
}
