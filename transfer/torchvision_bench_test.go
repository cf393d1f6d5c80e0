package transfer

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dl4img/dl4img/tasks"
)

// BenchmarkTorchvisionBackbones loads the full-size torchvision exports
// that bench/torchvision_table.py wrote to $DL4IMG_BACKBONES (random
// weights; too large to commit), checks the features at the automatic cut
// against PyTorch's (at most 1e-4 of the largest feature), and times
// feature extraction in batches of $DL4IMG_BATCH (default 4) images.
// Each model logs one line "table {json}" that bench/backbones.sh turns
// into the README's table:
//
//	DL4IMG_BACKBONES=DIR go test ./transfer -run '^$' -bench TorchvisionBackbones -benchtime 2x -v
func BenchmarkTorchvisionBackbones(b *testing.B) {
	dir := os.Getenv("DL4IMG_BACKBONES")
	if dir == "" {
		b.Skip("DL4IMG_BACKBONES is not set (run bench/torchvision_table.py DIR first)")
	}
	batch := 4
	if s := os.Getenv("DL4IMG_BATCH"); s != "" {
		batch, _ = strconv.Atoi(s)
	}
	refs, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(refs) == 0 {
		b.Fatalf("no NET.json in %s", dir)
	}
	backend, _, err := tasks.NewBackend("go")
	if err != nil {
		b.Fatal(err)
	}
	if only := os.Getenv("DL4IMG_NETS"); only != "" {
		var keep []string
		for _, r := range refs {
			for _, n := range strings.Split(only, ",") {
				if strings.TrimSuffix(filepath.Base(r), ".json") == n {
					keep = append(keep, r)
				}
			}
		}
		refs = keep
	}
	for _, refPath := range refs {
		var ref struct {
			Net         string      `json:"net"`
			Size        int         `json:"size"`
			Features    [][]float64 `json:"features"`
			ExportError string      `json:"export_error"`
			TorchIPS    float64     `json:"torch_images_per_s"`
		}
		raw, err := os.ReadFile(refPath)
		if err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(raw, &ref); err != nil {
			b.Fatalf("%s: %v", refPath, err)
		}
		b.Run(ref.Net, func(b *testing.B) {
			row := map[string]any{"net": ref.Net, "torch_images_per_s": ref.TorchIPS}
			defer func() {
				line, _ := json.Marshal(row)
				b.Logf("table %s", line)
			}()
			if ref.ExportError != "" {
				row["error"] = ref.ExportError
				return
			}
			start := time.Now()
			bb, err := LoadBackbone(backend, filepath.Join(dir, ref.Net+".onnx"), Preprocess{ref.Size, "squash", "unit"}, "")
			if err != nil {
				row["error"] = err.Error()
				return
			}
			feats, err := bb.Features([][]float32{fixtureImage(0, ref.Size), fixtureImage(1, ref.Size)})
			if err != nil {
				row["error"] = err.Error()
				return
			}
			row["load_and_first_s"] = time.Since(start).Seconds()
			row["rewrites"] = len(bb.report.Rewrites)
			worst := 0.0
			for i, want := range ref.Features {
				if len(feats[i]) != len(want) {
					b.Errorf("%d features, PyTorch has %d", len(feats[i]), len(want))
					row["error"] = "feature width differs from PyTorch's"
					return
				}
				scale, diff := 0.0, 0.0
				for k, w := range want {
					scale = math.Max(scale, math.Abs(w))
					diff = math.Max(diff, math.Abs(float64(feats[i][k])-w))
				}
				worst = math.Max(worst, diff/scale)
			}
			row["features"], row["max_rel_diff"] = len(ref.Features[0]), worst
			if worst > 1e-4 {
				b.Errorf("max |dl4img − PyTorch| is %.3g of the largest feature, want ≤ 1e-4", worst)
			}
			r := rand.New(rand.NewPCG(1, 2))
			imgs := make([][]float32, batch)
			for i := range imgs {
				imgs[i] = make([]float32, ref.Size*ref.Size*3)
				for k := range imgs[i] {
					imgs[i][k] = float32(r.NormFloat64())
				}
			}
			if _, err := bb.Features(imgs); err != nil { // compiles the batch's graph
				b.Fatal(err)
			}
			b.ResetTimer()
			t0 := time.Now()
			for range b.N {
				if _, err := bb.Features(imgs); err != nil {
					b.Fatal(err)
				}
			}
			ips := float64(batch*b.N) / time.Since(t0).Seconds()
			b.ReportMetric(ips, "images/s")
			row["images_per_s"], row["batch"] = ips, batch
		})
	}
}
