package transfer

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute"

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
		// Loaded and checked once per model, here: a sub-benchmark's body
		// runs once with b.N=1 and again with b.N set.
		row, bb, imgs := checkTorchvision(b, backend, dir, ref.Net, ref.Size, ref.Features, ref.ExportError, batch)
		row["torch_images_per_s"] = ref.TorchIPS
		if bb != nil {
			b.Run(ref.Net, func(b *testing.B) {
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
		line, _ := json.Marshal(row)
		b.Logf("table %s", line)
	}
}

// checkTorchvision loads one export and compares its features with
// PyTorch's; the row has the error when it does not load. It returns the
// backbone, warmed up on a batch of random images, ready to time.
func checkTorchvision(b *testing.B, backend compute.Backend, dir, net string, size int, want [][]float64, exportErr string, batch int) (map[string]any, *Backbone, [][]float32) {
	row := map[string]any{"net": net}
	if exportErr != "" {
		row["error"] = exportErr
		return row, nil, nil
	}
	start := time.Now()
	bb, err := LoadBackbone(backend, filepath.Join(dir, net+".onnx"), Preprocess{size, "squash", "unit"}, "")
	if err != nil {
		row["error"] = err.Error()
		return row, nil, nil
	}
	feats, err := bb.Features([][]float32{fixtureImage(0, size), fixtureImage(1, size)})
	if err != nil {
		row["error"] = err.Error()
		return row, nil, nil
	}
	row["load_and_first_s"] = time.Since(start).Seconds()
	// What was rewritten, by op, most first; Identity (every torch export
	// has them) left out.
	count := map[string]int{}
	for _, r := range bb.report.Rewrites {
		if r.Op != "Identity" {
			count[r.Op]++
		}
	}
	ops := slices.Collect(maps.Keys(count))
	slices.SortFunc(ops, func(a, b string) int { return cmp.Or(count[b]-count[a], strings.Compare(a, b)) })
	var rewrites []string
	for _, op := range ops {
		rewrites = append(rewrites, fmt.Sprintf("%s ×%d", op, count[op]))
	}
	row["rewrites"] = strings.Join(rewrites, ", ")
	worst := 0.0
	for i, w := range want {
		if len(feats[i]) != len(w) {
			b.Errorf("%s: %d features, PyTorch has %d", net, len(feats[i]), len(w))
			row["error"] = "feature width differs from PyTorch's"
			return row, nil, nil
		}
		w32 := make([]float32, len(w))
		for k, v := range w {
			w32[k] = float32(v)
		}
		worst = math.Max(worst, relDiff(feats[i], w32))
	}
	row["features"], row["max_rel_diff"] = len(want[0]), worst
	if worst > 1e-4 {
		b.Errorf("%s: max |dl4img − PyTorch| is %.3g of the largest feature, want ≤ 1e-4", net, worst)
	}
	r := rand.New(rand.NewPCG(1, 2))
	imgs := make([][]float32, batch)
	for i := range imgs {
		imgs[i] = make([]float32, size*size*3)
		for k := range imgs[i] {
			imgs[i][k] = float32(r.NormFloat64())
		}
	}
	if _, err := bb.Features(imgs); err != nil { // compiles the batch's graph
		row["error"] = err.Error()
		return row, nil, nil
	}
	return row, bb, imgs
}
