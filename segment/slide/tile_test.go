package slide

import (
	"context"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// genSlide generates a small synthetic slide and mask in t's TempDir.
func genSlide(t testing.TB, w, h int) (string, string) {
	t.Helper()
	td := t.TempDir()
	p, m := filepath.Join(td, "slide.tif"), filepath.Join(td, "slide_mask.tif")
	if err := GenerateSlide(context.Background(), GenConfig{Width: w, Height: h, Seed: 11}, p, m); err != nil {
		t.Fatal(err)
	}
	return p, m
}

func TestTissueMask(t *testing.T) {
	p, _ := genSlide(t, 2048, 1536)
	s := mustOpen(t, p)
	tm, err := DetectTissue(s, TissueOptions{MinSide: 512})
	if err != nil {
		t.Fatal(err)
	}
	if tm.Level == 0 {
		t.Fatalf("tissue detection read level 0")
	}
	fx, _ := s.Downsample(tm.Level)
	syn := newSynth(2048, 1536, 11, 0.3)
	f := syn.fields(-nucMargin, -nucMargin, 2048+nucMargin, 1536+nucMargin)
	var inter, union, truth int
	mw, mh := tm.Mask.Rect.Dx(), tm.Mask.Rect.Dy()
	for y := 0; y < mh; y++ {
		for x := 0; x < mw; x++ {
			c := syn.class(f, int64((float64(x)+0.5)*fx), int64((float64(y)+0.5)*fx))
			got := tm.Mask.Pix[y*tm.Mask.Stride+x] != 0
			if c != 0 {
				truth++
			}
			if got && c != 0 {
				inter++
			}
			if got || c != 0 {
				union++
			}
		}
	}
	iou := float64(inter) / float64(union)
	t.Logf("tissue IoU %.3f (threshold %d, level %d, %dx%d)", iou, tm.Threshold, tm.Level, mw, mh)
	if truth == 0 || iou < 0.9 {
		t.Fatalf("tissue IoU %.3f, want ≥ 0.9", iou)
	}
	if f := tm.Fraction(image.Rect(-100, -100, -10, -10)); f != 0 {
		t.Fatalf("fraction outside slide = %g", f)
	}
	if f := tm.Fraction(s.Bounds(0)); math.Abs(f-float64(inter)/float64(mw*mh)) > 0.05 {
		t.Fatalf("whole-slide fraction %g", f)
	}
}

func TestOtsuAndMorph(t *testing.T) {
	var h [256]int
	h[10], h[11], h[200], h[201] = 100, 100, 50, 50
	if th := otsu(h[:]); th < 11 || th >= 200 {
		t.Fatalf("otsu threshold %d", th)
	}
	m := image.NewGray(image.Rect(0, 0, 9, 9))
	m.Pix[4*9+4] = 255 // one dot
	morph(m, 1, true)
	n := 0
	for _, v := range m.Pix {
		if v != 0 {
			n++
		}
	}
	if n != 9 {
		t.Fatalf("dilated dot has %d pixels, want 9", n)
	}
	morph(m, 1, false)
	if m.Pix[4*9+4] != 255 || m.Pix[3*9+4] != 0 {
		t.Fatal("erosion did not undo dilation")
	}
}

func TestPlanTiles(t *testing.T) {
	p, mp := genSlide(t, 1024, 768)
	s := mustOpen(t, p)
	m, err := OpenMask(mp, s.Size(0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	tm, err := DetectTissue(s, TissueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		o              TileOptions
		cols, rows     int
		stride, expect int
	}{
		{"level0", TileOptions{TileSize: 256}, 4, 3, 256, 12},
		{"overlap", TileOptions{TileSize: 256, Overlap: 64}, 5, 4, 192, 20},
		{"level1", TileOptions{TileSize: 128, Level: 1}, 4, 3, 128, 12},
		{"edge", TileOptions{TileSize: 300}, 4, 3, 300, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Tissue, tc.o.Mask = tm, m
			recs, err := PlanTiles(ctx, s, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tc.expect {
				t.Fatalf("%d tiles, want %d", len(recs), tc.expect)
			}
			last := recs[len(recs)-1]
			if last.Col != tc.cols-1 || last.Row != tc.rows-1 || last.X != last.Col*tc.stride || last.Y != last.Row*tc.stride {
				t.Fatalf("last tile %+v", last)
			}
			for _, r := range recs {
				fx, _ := s.Downsample(r.Level)
				r0 := image.Rect(int(float64(r.X)*fx), int(float64(r.Y)*fx), int(float64(r.X+r.Size)*fx), int(float64(r.Y+r.Size)*fx))
				want, _ := m.Fraction(r0)
				if r.TumourFrac != want || r.TissueFrac < 0 || r.TissueFrac > 1 || r.Level != tc.o.Level {
					t.Fatalf("tile %+v: tumour fraction want %g", r, want)
				}
				if r.TumourFrac > r.TissueFrac+0.1 {
					t.Fatalf("tile %+v: more tumour than tissue", r)
				}
			}
		})
	}
	all, _ := PlanTiles(ctx, s, TileOptions{Tissue: tm})
	some, _ := PlanTiles(ctx, s, TileOptions{Tissue: tm, MinTissue: 0.5})
	if len(some) == 0 || len(some) >= len(all) {
		t.Fatalf("min tissue 0.5 kept %d of %d tiles", len(some), len(all))
	}
	for _, r := range some {
		if r.TissueFrac < 0.5 {
			t.Fatalf("kept %+v", r)
		}
	}
	if _, err := PlanTiles(ctx, s, TileOptions{TileSize: 64, Overlap: 64}); err == nil {
		t.Fatal("overlap = size accepted")
	}
}

func TestExportTilesResume(t *testing.T) {
	p, mp := genSlide(t, 1024, 1024)
	s := mustOpen(t, p)
	m, _ := OpenMask(mp, s.Size(0))
	defer m.Close()
	ctx := context.Background()
	for _, format := range []string{"jpeg", "png"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "tiles")
			o := TileOptions{TileSize: 128, MinTissue: 0.2, Format: format, Mask: m, Workers: 3}
			plan, err := PlanTiles(ctx, s, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan) < 10 {
				t.Fatalf("only %d tiles", len(plan))
			}
			// First run "dies" after 5 tiles.
			done := map[string]TileRecord{}
			stop := errors.New("killed")
			err = ExportTiles(ctx, s, o, out, func(r TileRecord) error {
				done[r.Name()] = r
				if len(done) == 5 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || len(done) != 5 {
				t.Fatalf("first run: err %v, %d done", err, len(done))
			}
			// Resume: only the rest is exported and reported.
			o.Skip = func(r TileRecord) bool { _, ok := done[r.Name()]; return ok }
			second := 0
			err = ExportTiles(ctx, s, o, out, func(r TileRecord) error {
				if _, dup := done[r.Name()]; dup {
					t.Errorf("tile %s exported twice", r.Name())
				}
				done[r.Name()] = r
				second++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if second != len(plan)-5 || len(done) != len(plan) {
				t.Fatalf("resume exported %d, total %d, plan %d", second, len(done), len(plan))
			}
			files, _ := filepath.Glob(filepath.Join(out, "*"))
			hidden, _ := filepath.Glob(filepath.Join(out, ".*"))
			if len(files) != len(plan) || len(hidden) != 0 {
				t.Fatalf("%d files (%d temp) for %d tiles", len(files), len(hidden), len(plan))
			}
			sort.Slice(plan, func(i, j int) bool { return plan[i].Name() < plan[j].Name() })
			for _, r := range plan[:3] {
				if done[r.Name()] != r {
					t.Fatalf("reported %+v, planned %+v", done[r.Name()], r)
				}
				f, err := os.Open(filepath.Join(out, r.Name()+"."+format))
				if err != nil {
					t.Fatal(err)
				}
				var img image.Image
				if format == "png" {
					img, err = png.Decode(f)
				} else {
					img, err = jpeg.Decode(f)
				}
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				want, _ := s.ReadRegion(0, r.Rect())
				if img.Bounds().Size() != image.Pt(128, 128) {
					t.Fatalf("tile size %v", img.Bounds())
				}
				var se float64
				for y := 0; y < 128; y++ {
					for x := 0; x < 128; x++ {
						r1, g1, b1, _ := img.At(x, y).RGBA()
						w := want.NRGBAAt(r.X+x, r.Y+y)
						d := []float64{float64(r1>>8) - float64(w.R), float64(g1>>8) - float64(w.G), float64(b1>>8) - float64(w.B)}
						se += d[0]*d[0] + d[1]*d[1] + d[2]*d[2]
					}
				}
				mse := se / (3 * 128 * 128)
				if format == "png" && mse != 0 || mse > 60 {
					t.Fatalf("tile %s differs from the slide: MSE %.1f", r.Name(), mse)
				}
			}
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := ExportTiles(cctx, s, TileOptions{}, t.TempDir(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled export: %v", err)
	}
}
