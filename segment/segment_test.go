package segment

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/dl4img/dl4img/jobs"
	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/segment/fcn"
	"github.com/dl4img/dl4img/segment/slide"
	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/tasks"
	"github.com/dl4img/dl4img/tasks/taskstest"
)

// demoParams is the demo preset applied to the defaults.
func demoParams(t *testing.T, extra map[string]any) json.RawMessage {
	t.Helper()
	k, err := tasks.Default.Job("segment")
	if err != nil {
		t.Fatal(err)
	}
	var sets []string
	for key, v := range extra {
		b, _ := json.Marshal(v)
		sets = append(sets, key+"="+strings.Trim(string(b), `"`))
	}
	p, err := k.Resolve([]byte(`{"preset":"demo"}`), sets)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The whole job through the real runner on a generated slide pair (one
// held out): its Dice must be far above the all-background mask's 0.
func TestEndToEndRunner(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	id, err := jobs.Submit(ctx, db, tasks.Default, jobs.Request{Kind: "segment", Sets: []string{
		"preset=demo", "tile_size=32", "pred_overlap=8", "epochs=2", "steps_per_epoch=15", "max_val_tiles=16"}})
	if err != nil {
		t.Fatal(err)
	}
	w := &jobs.Worker{DB: db, Registry: tasks.Default, Root: t.TempDir(), Backend: "go", Drain: true, JobID: id}
	res, err := w.Run(ctx)
	if err != nil || res.Failed > 0 {
		t.Fatalf("worker: %+v %v", res, err)
	}
	j, err := db.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("job %d: %s in %v", id, j.State, time.Since(start).Round(time.Second))
	jobDir := jobs.Resolve(w.Root, j.WorkDir)
	f, err := os.Open(filepath.Join(jobDir, "submission.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || strings.Join(recs[0], ",") != "slide,tumour_fraction,dice,mask_path" {
		t.Fatalf("submission %v", recs)
	}
	dice, _ := strconv.ParseFloat(recs[1][2], 64)
	frac, _ := strconv.ParseFloat(recs[1][1], 64)
	t.Logf("submission row %v", recs[1])
	if dice < 0.8 {
		t.Fatalf("test slide dice %.3f, want > 0.8 (an all-background mask scores 0)", dice)
	}
	if frac <= 0.01 || frac > 0.5 {
		t.Fatalf("predicted tumour fraction %.3f is implausible", frac)
	}
	for _, p := range []string{recs[1][3], filepath.Join(jobDir, "predict", "slide-02_overlay.png")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	if dst := os.Getenv("SEGMENT_OVERLAY_OUT"); dst != "" {
		b, _ := os.ReadFile(filepath.Join(jobDir, "predict", "slide-02_overlay.png"))
		os.WriteFile(dst, b, 0o644)
	}
	s, err := slide.Open(recs[1][3])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Levels() < 2 || !s.HasOverviews() {
		t.Fatalf("predicted mask has %d levels, overviews %v: want a pyramid", s.Levels(), s.HasOverviews())
	}
}

// genSlides writes n synthetic slides with masks into dir (slide-0i.tif,
// slide-0i_mask.tif) and returns their index entries.
func genSlides(t *testing.T, dir string, n, size int) []slideEntry {
	t.Helper()
	var idx []slideEntry
	for i := range n {
		name := "slide-0" + string(rune('1'+i)) + ".tif"
		img, mask := filepath.Join(dir, name), filepath.Join(dir, strings.TrimSuffix(name, ".tif")+"_mask.tif")
		if err := slide.GenerateSlide(context.Background(), slide.GenConfig{Width: size, Height: size, Seed: int64(10 + i)}, img, mask); err != nil {
			t.Fatal(err)
		}
		idx = append(idx, slideEntry{Name: name, Path: img, Mask: FindMask(dir, img), Test: i == n-1 && n > 1})
		if idx[i].Mask != mask {
			t.Fatalf("FindMask(%s) = %q, want %s", img, idx[i].Mask, mask)
		}
	}
	return idx
}

func mustDecode(t *testing.T, raw json.RawMessage) *Params {
	t.Helper()
	p, err := decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestManifestRoundTripAndTornJournal(t *testing.T) {
	dir := t.TempDir()
	tiles := []Tile{
		{Slide: "a.tif", TileRecord: slide.TileRecord{Col: 1, Row: 2, X: 64, Y: 128, Level: 1, Size: 64, TissueFrac: 0.5, TumourFrac: 0.25}, Split: "train"},
		{Slide: "b,c.tif", TileRecord: slide.TileRecord{Col: 0, Row: 0, Size: 64, TissueFrac: 1}, Split: "test"},
	}
	path := filepath.Join(dir, "m.csv")
	if err := WriteManifest(path, tiles); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != tiles[0] || got[1] != tiles[1] {
		t.Fatalf("round trip: %+v, want %+v", got, tiles)
	}
	os.WriteFile(path, []byte("slide,col\na,1\n"), 0o644)
	if _, err := ReadManifest(path); err == nil || !strings.Contains(err.Error(), "header") {
		t.Fatalf("bad header: %v", err)
	}

	// A journal whose last line was torn by a kill keeps the good lines.
	jp := filepath.Join(dir, "journal.csv")
	jl, err := openTileLog(jp)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tiles {
		jl.add(tl)
	}
	jl.close()
	f, _ := os.OpenFile(jp, os.O_APPEND|os.O_WRONLY, 0o644)
	f.WriteString("c.tif,3,4,1")
	f.Close()
	jl, err = openTileLog(jp)
	if err != nil {
		t.Fatal(err)
	}
	if len(jl.done) != 2 {
		t.Fatalf("journal after a torn line has %d tiles, want 2", len(jl.done))
	}
	tl := tiles[0]
	tl.Col = 9
	jl.add(tl)
	jl.close()
	jl, _ = openTileLog(jp)
	defer jl.close()
	if len(jl.done) != 3 {
		t.Fatalf("journal after append has %d tiles, want 3", len(jl.done))
	}
}

// A tiling cancelled mid-way (as a killed worker) continues at the next
// tile: no tile is processed twice and the manifest equals an uninterrupted
// run's.
func TestTilingResume(t *testing.T) {
	dir := t.TempDir()
	idx := genSlides(t, dir, 2, 1024)
	for _, format := range []string{"none", "png"} {
		t.Run(format, func(t *testing.T) {
			p := mustDecode(t, demoParams(t, map[string]any{"level": 1, "tile_size": 64, "tile_format": format}))
			ref := taskstest.New(t, "tile")
			want, err := tileSlides(context.Background(), ref, p, idx, nil)
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for _, tl := range want {
				if tl.TumourFrac > 0 {
					total++
				}
			}
			if total == 0 || len(want) < 40 {
				t.Fatalf("%d tiles, %d with tumour: slide too empty for the test", len(want), total)
			}

			env := taskstest.New(t, "tile")
			seen := map[string]int{}
			ctx, cancel := context.WithCancel(context.Background())
			_, err = tileSlides(ctx, env, p, idx, func(k string) {
				seen[k]++
				if len(seen) == len(want)/3 {
					cancel()
				}
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled run: %v", err)
			}
			first := len(seen)
			if first >= len(want) {
				t.Fatalf("cancel did not stop the tiling (%d of %d tiles)", first, len(want))
			}
			got, err := tileSlides(context.Background(), env, p, idx, func(k string) { seen[k]++ })
			if err != nil {
				t.Fatal(err)
			}
			for k, n := range seen {
				if n != 1 {
					t.Fatalf("tile %s processed %d times", k, n)
				}
			}
			if len(seen) != len(want) {
				t.Fatalf("%d tiles processed over both runs, want %d", len(seen), len(want))
			}
			if len(got) != len(want) {
				t.Fatalf("manifest has %d tiles, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("tile %d: resumed %+v, uninterrupted %+v", i, got[i], want[i])
				}
			}
			done, _ := env.DoneItems()
			if len(done) != len(want) {
				t.Fatalf("%d done items, want %d", len(done), len(want))
			}
			// The manifest is in the store: one JSON row per tile, with its split.
			rows, _ := env.Items()
			for _, tl := range want {
				var row Tile
				if err := json.Unmarshal([]byte(rows[tl.Key()]), &row); err != nil || row != tl {
					t.Fatalf("stored manifest row of %s: %q (%v), want %+v", tl.Key(), rows[tl.Key()], err, tl)
				}
			}
			if format == "png" {
				m, _ := filepath.Glob(filepath.Join(env.JobDir(), "tiles", "slide-01", "*.png"))
				n := 0
				for _, tl := range want {
					if tl.Slide == "slide-01.tif" {
						n++
					}
				}
				if len(m) != n {
					t.Fatalf("%d exported tiles of slide-01, want %d", len(m), n)
				}
			}
		})
	}
}

func TestSamplerBalancedAndDeterministic(t *testing.T) {
	dir := t.TempDir()
	idx := genSlides(t, dir, 1, 1024)
	p := mustDecode(t, demoParams(t, map[string]any{"level": 1, "tile_size": 64, "crop": 32, "batch_size": 6}))
	env := taskstest.New(t, "tile")
	tiles, err := tileSlides(context.Background(), env, p, idx, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := newPairSource(idx, 64)
	defer src.close()
	smp, err := newSampler(src, tiles, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(smp.tumour) == 0 || len(smp.normal) < 3*len(smp.tumour)/2 && len(smp.normal) < 5 {
		t.Logf("%d tumour, %d normal tiles", len(smp.tumour), len(smp.normal))
	}
	x1, y1, err := smp.batchAt(7)
	if err != nil {
		t.Fatal(err)
	}
	x2, y2, _ := smp.batchAt(7)
	x3, _, _ := smp.batchAt(8)
	a, b, c := tensors.MustCopyFlatData[float32](x1), tensors.MustCopyFlatData[float32](x2), tensors.MustCopyFlatData[float32](x3)
	if !slices.Equal(a, b) || !slices.Equal(tensors.MustCopyFlatData[float32](y1), tensors.MustCopyFlatData[float32](y2)) {
		t.Fatal("batch of step 7 differs between calls: resume would change the data order")
	}
	if slices.Equal(a, c) {
		t.Fatal("steps 7 and 8 have the same batch")
	}
	if d := x1.Shape().Dimensions; d[0] != 6 || d[1] != 32 || d[2] != 32 || d[3] != 3 {
		t.Fatalf("batch shape %v, want [6 32 32 3]", d)
	}
	// Class balance: over many steps, even positions draw tumour tiles, so
	// the tumour pixel share is far above the slide's.
	var tum, all float64
	for s := range 20 {
		_, y, err := smp.batchAt(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range tensors.MustCopyFlatData[float32](y) {
			tum += float64(v)
			all++
		}
	}
	var slideTum, n float64
	for _, tl := range tiles {
		slideTum += tl.TumourFrac
		n++
	}
	if share, base := tum/all, slideTum/n; share < 0.3 || share < base+0.1 {
		t.Fatalf("tumour pixel share of batches %.3f, of the tiles %.3f: sampling is not balanced", share, base)
	}
}

func readRaster(t *testing.T, path string) []float32 {
	t.Helper()
	r, err := slide.OpenRaster(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sz := r.Size()
	v, err := r.Read(image.Rectangle{Max: sz}, sz)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A prediction cancelled mid-slide resumes at the next window from the
// window journal and stitches exactly the uninterrupted result.
func TestPredictResume(t *testing.T) {
	dir := t.TempDir()
	idx := genSlides(t, dir, 1, 1024)
	be, _, err := tasks.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fcn.Config{Filters: 4, Depth: 1, ConvsPerLevel: 1, Loss: "bce"}
	st, _ := nn.NewSeededStore(3)
	pr, err := fcn.NewPredictor(be, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &Model{Info: ModelInfo{FCN: cfg}, Dir: "test", pred: pr}
	s, err := slide.Open(idx[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := PredictOptions{Level: 1, Window: 32, Overlap: 8, Blend: slide.BlendGaussian, Batch: 4, MinTissue: 0.05}
	ref := filepath.Join(dir, "ref.tif")
	want, err := PredictSlide(context.Background(), m, s, ref, o)
	if err != nil {
		t.Fatal(err)
	}
	if want.Predicted < 50 || want.Skipped == 0 || want.Resumed != 0 {
		t.Fatalf("reference run %+v", want)
	}

	out := filepath.Join(dir, "out.tif")
	o.Cache = filepath.Join(dir, "out.windows")
	ctx, cancel := context.WithCancel(context.Background())
	o.Progress = func(done, total int) {
		if done == total/2 {
			cancel()
		}
	}
	if _, err := PredictSlide(ctx, m, s, out, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a cancelled prediction left a mask in place")
	}
	o.Progress = nil
	got, err := PredictSlide(context.Background(), m, s, out, o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Resumed == 0 || got.Predicted == 0 || got.Resumed+got.Predicted != want.Predicted {
		t.Fatalf("resumed run %+v, reference %+v", got, want)
	}
	if _, err := os.Stat(o.Cache); !os.IsNotExist(err) {
		t.Fatalf("window journal not removed after completion: %v", err)
	}
	if a, b := readRaster(t, ref), readRaster(t, out); !slices.Equal(a, b) {
		t.Fatal("resumed prediction differs from the uninterrupted one")
	}
}

// BenchmarkPredictSlide reports windows/s of whole-slide prediction (read,
// forward pass of the demo-sized network, stitch, overviews) on the Go
// backend: a 2048² synthetic slide at level 2, 64² windows, 16 overlap.
func BenchmarkPredictSlide(b *testing.B) {
	dir := b.TempDir()
	img := filepath.Join(dir, "s.tif")
	if err := slide.GenerateSlide(context.Background(), slide.GenConfig{Width: 2048, Height: 2048, Seed: 1}, img, filepath.Join(dir, "m.tif")); err != nil {
		b.Fatal(err)
	}
	be, _, err := tasks.NewBackend("go")
	if err != nil {
		b.Fatal(err)
	}
	cfg := fcn.Config{Filters: 8, Depth: 2, ConvsPerLevel: 2, Loss: "bce+dice"}
	st, _ := nn.NewSeededStore(1)
	pr, err := fcn.NewPredictor(be, st, cfg)
	if err != nil {
		b.Fatal(err)
	}
	m := &Model{Info: ModelInfo{FCN: cfg}, Dir: "bench", pred: pr}
	s, err := slide.Open(img)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	o := PredictOptions{Level: 2, Window: 64, Overlap: 16, Blend: slide.BlendGaussian, Batch: 8, MinTissue: 0.05}
	n := 0
	b.ResetTimer()
	for b.Loop() {
		stats, err := PredictSlide(context.Background(), m, s, filepath.Join(dir, "p.tif"), o)
		if err != nil {
			b.Fatal(err)
		}
		n += stats.Predicted
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "windows/s")
}
