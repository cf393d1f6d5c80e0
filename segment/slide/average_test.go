package slide

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// writeProbs writes a w×h probability raster whose pixel (x, y) is f(x, y).
func writeProbs(t *testing.T, path string, w, h int, f func(x, y int) float32) {
	t.Helper()
	const win = 48
	st, err := NewStitcher(path, StitchOptions{Width: w, Height: h, Window: win, BlockSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	cols, rows := st.Grid()
	buf := make([]float32, win*win)
	for r := range rows {
		for c := range cols {
			for j := range win {
				for i := range win {
					buf[j*win+i] = f(c*win+i, r*win+j)
				}
			}
			if err := st.Add(c, r, buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// Two maps of a 300×270 slide (not multiples of the tiles) average pixel
// by pixel, to the uint8 step the rasters store.
func TestAverageRasters(t *testing.T) {
	dir := t.TempDir()
	a, b, c, out := filepath.Join(dir, "a.tif"), filepath.Join(dir, "b.tif"), filepath.Join(dir, "c.tif"), filepath.Join(dir, "avg.tif")
	fa := func(x, y int) float32 { return float32(x) / 300 }
	fb := func(x, y int) float32 { return float32(y%100) / 100 }
	writeProbs(t, a, 300, 270, fa)
	writeProbs(t, b, 300, 270, fb)
	if err := AverageRasters(context.Background(), []string{a, b}, out); err != nil {
		t.Fatal(err)
	}
	got, size := readAll(t, out)
	va, _ := readAll(t, a)
	vb, _ := readAll(t, b)
	if size.X != 300 || size.Y != 270 {
		t.Fatalf("size %v", size)
	}
	worst := 0.0
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i]-(va[i]+vb[i])/2)))
	}
	if worst > 0.5/255+1e-6 {
		t.Fatalf("average off by %g (more than half a uint8 step)", worst)
	}
	if !mustOpen(t, out).HasOverviews() {
		t.Fatal("no overviews")
	}
	writeProbs(t, c, 200, 270, fa)
	if err := AverageRasters(context.Background(), []string{a, c}, out+"2"); err == nil || !strings.Contains(err.Error(), "c.tif is (200,270)") {
		t.Fatalf("rasters of different sizes: %v", err)
	}
}
