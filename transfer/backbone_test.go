package transfer

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"

	"github.com/dl4img/dl4img/nn/netbench"
	"github.com/dl4img/dl4img/tasks"
)

const fixtureDir = "../testdata/transfer"

// goBackend is the Go backend as jobs get it: with the engine.
func goBackend(tb testing.TB) compute.Backend {
	tb.Helper()
	b, _, err := tasks.NewBackend("go")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func fixtureBackbone(tb testing.TB) *Backbone {
	tb.Helper()
	bb, err := LoadBackbone(goBackend(tb), filepath.Join(fixtureDir, "tinycnn.onnx"), BackbonePresets["tinycnn"], "")
	if err != nil {
		tb.Fatal(err)
	}
	return bb
}

// TestBackboneMatchesPyTorch checks the ONNX import against the features
// PyTorch computed for the same images (make_fixtures.py).
func TestBackboneMatchesPyTorch(t *testing.T) {
	var ref struct {
		Images map[string]struct {
			Features  []float64 `json:"features"`
			FmapShape []int     `json:"fmap_shape"`
		} `json:"images"`
	}
	raw, err := os.ReadFile(filepath.Join(fixtureDir, "ref_features.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	bb := fixtureBackbone(t)
	if !bb.HasMap() {
		t.Fatalf("cut %+v: want the feature map found automatically", bb.cut)
	}
	for name, want := range ref.Images {
		x, err := bb.Pre.loadInput(filepath.Join(fixtureDir, name))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		feats, maps, err := bb.FeatureMaps([][]float32{x, x})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %v", name, time.Since(start))
		if len(feats[0]) != len(want.Features) {
			t.Fatalf("%s: %d features, want %d", name, len(feats[0]), len(want.Features))
		}
		worst := 0.0
		for i, v := range feats[1] {
			worst = max(worst, math.Abs(float64(v)-want.Features[i]))
		}
		if worst > 1e-4 {
			t.Errorf("%s: max |dl4img - pytorch| = %g, want <= 1e-4", name, worst)
		}
		t.Logf("%s: max abs diff %.3g over %d features", name, worst, len(feats[0]))
		// NCHW [1,64,16,16] in PyTorch is NHWC [2,16,16,64] here.
		d := maps.Shape().Dimensions
		if d[1] != want.FmapShape[2] || d[2] != want.FmapShape[3] || d[3] != want.FmapShape[1] {
			t.Errorf("%s: feature map %v, want NHWC of %v", name, d, want.FmapShape)
		}
	}
}

// The transfer entry of the backend check is deterministic and complete.
func TestCheckNet(t *testing.T) {
	a, err := CheckNet(goBackend(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	b, err := CheckNet(goBackend(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := netbench.RelErr(a, b); err != nil || e != 0 {
		t.Errorf("two runs differ: %g %v", e, err)
	}
	if len(a.Outputs) != 4 || !(a.Loss > 0) || !(a.GradNorm > 0) {
		t.Errorf("implausible %+v", a)
	}
}
