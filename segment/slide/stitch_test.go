package slide

import (
	"context"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func readAll(t *testing.T, path string) ([]float32, image.Point) {
	t.Helper()
	r, err := OpenRaster(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	v, err := r.Read(image.Rectangle{Max: r.Size()}, r.Size())
	if err != nil {
		t.Fatal(err)
	}
	return v, r.Size()
}

// stitchFunc predicts f at every pixel of every window (except skipped ones)
// and returns the stitched raster.
func stitchFunc(t *testing.T, o StitchOptions, f func(x, y int) float32, skip func(c, r int) bool) []float32 {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pred.tif")
	st, err := NewStitcher(path, o)
	if err != nil {
		t.Fatal(err)
	}
	cols, rows := st.Grid()
	stride := o.Window - o.Overlap
	win := make([]float32, o.Window*o.Window)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			if skip != nil && skip(c, r) {
				continue
			}
			for j := 0; j < o.Window; j++ {
				for i := 0; i < o.Window; i++ {
					win[j*o.Window+i] = f(c*stride+i, r*stride+j)
				}
			}
			if err := st.Add(c, r, win); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	v, size := readAll(t, path)
	if size != image.Pt(o.Width, o.Height) {
		t.Fatalf("size %v", size)
	}
	s := mustOpen(t, path)
	if !o.NoOverviews && !s.HasOverviews() {
		t.Fatal("no overviews")
	}
	return v
}

func TestStitchSeamFree(t *testing.T) {
	for _, blend := range []Blend{BlendConstant, BlendGaussian, BlendCenter} {
		for _, tc := range []struct {
			name  string
			o     StitchOptions
			float bool
		}{
			{"no overlap", StitchOptions{Width: 300, Height: 290, Window: 64, BlockSize: 32}, true},
			{"overlap", StitchOptions{Width: 300, Height: 290, Window: 64, Overlap: 24, BlockSize: 32}, true},
			{"uint8", StitchOptions{Width: 333, Height: 200, Window: 50, Overlap: 10, BlockSize: 64}, false},
		} {
			o := tc.o
			o.Blend, o.Float = blend, tc.float
			t.Run(tc.name, func(t *testing.T) {
				// A constant prediction must come out constant: no seams.
				v := stitchFunc(t, o, func(x, y int) float32 { return 0.7 }, nil)
				tol := 1e-5
				if !tc.float {
					tol = 0.51 / 255
				}
				for i, p := range v {
					if math.Abs(float64(p)-0.7) > tol {
						t.Fatalf("blend %d pixel %d,%d = %g, want 0.7", blend, i%o.Width, i/o.Width, p)
					}
				}
				// A smooth field predicted consistently is reproduced.
				f := func(x, y int) float32 { return float32(x+2*y) / float32(o.Width+2*o.Height) }
				v = stitchFunc(t, o, f, nil)
				for i, p := range v {
					if math.Abs(float64(p-f(i%o.Width, i/o.Width))) > tol+1e-6 {
						t.Fatalf("blend %d pixel %d = %g, want %g", blend, i, p, f(i%o.Width, i/o.Width))
					}
				}
			})
		}
	}
}

func TestStitchCenterAndSkip(t *testing.T) {
	o := StitchOptions{Width: 200, Height: 100, Window: 40, Overlap: 20, Float: true, Blend: BlendCenter, BlockSize: 16}
	stride := 20
	// Window (c, r) predicts its own id; with centre blending each pixel
	// must take the id of the window whose centre crop [10,30) holds it.
	path := filepath.Join(t.TempDir(), "c.tif")
	st, err := NewStitcher(path, o)
	if err != nil {
		t.Fatal(err)
	}
	cols, rows := st.Grid()
	if cols != 9 || rows != 4 {
		t.Fatalf("grid %dx%d", cols, rows)
	}
	id := func(c, r int) float32 { return float32(r*cols+c+1) / 100 }
	win := make([]float32, 40*40)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			if c == 4 && r == 2 {
				continue // a skipped (background) window
			}
			for i := range win {
				win[i] = id(c, r)
			}
			if err := st.Add(c, r, win); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Add(0, 0, win); err == nil {
		t.Fatal("going back a row accepted")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	v, _ := readAll(t, path)
	owner := func(p, n int) int { // window index whose centre crop holds p
		k := (p - 10) / stride
		return min(max(k, 0), n-1)
	}
	for y := 0; y < 100; y++ {
		for x := 0; x < 200; x++ {
			c, r := owner(x, cols), owner(y, rows)
			want := id(c, r)
			if c == 4 && r == 2 {
				continue // covered only by neighbours' borders: checked below
			}
			if got := v[y*200+x]; math.Abs(float64(got-want)) > 1e-6 {
				t.Fatalf("pixel %d,%d = %g, want %g (window %d,%d)", x, y, got, want, c, r)
			}
		}
	}
	// Pixels covered by no window at all stay 0: skip a corner window in a
	// no-overlap stitch.
	o = StitchOptions{Width: 64, Height: 64, Window: 32, Float: true, BlockSize: 16}
	v = stitchFunc(t, o, func(x, y int) float32 { return 1 }, func(c, r int) bool { return c == 1 && r == 1 })
	if v[0] != 1 || v[63*64+63] != 0 {
		t.Fatalf("covered %g, uncovered %g", v[0], v[63*64+63])
	}
}

func TestMetrics(t *testing.T) {
	pred := []bool{true, true, false, false, true, false}
	truth := []bool{true, false, true, false, true, false}
	var m Metrics
	for i := range pred {
		m.Add(pred[i], truth[i])
	}
	if m.TP != 2 || m.FP != 1 || m.FN != 1 || m.TN != 2 {
		t.Fatalf("%+v", m)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"dice", m.Dice(), 4.0 / 6}, {"iou", m.IoU(), 2.0 / 4}, {"acc", m.Accuracy(), 4.0 / 6},
		{"tumour", m.TumourFraction(), 3.0 / 6}, {"empty dice", Metrics{TN: 5}.Dice(), 1},
	} {
		if math.Abs(c.got-c.want) > 1e-12 {
			t.Errorf("%s = %g, want %g", c.name, c.got, c.want)
		}
	}

	// Streaming comparison of a stitched prediction at level 1 against a
	// level-0 PNG mask: left half tumour in truth, top half in prediction.
	dir := t.TempDir()
	mask := image.NewGray(image.Rect(0, 0, 200, 120))
	for y := 0; y < 120; y++ {
		for x := 0; x < 100; x++ {
			mask.Pix[y*200+x] = 1
		}
	}
	mp := filepath.Join(dir, "truth.png")
	f, _ := os.Create(mp)
	png.Encode(f, mask)
	f.Close()
	tm, err := OpenMask(mp, image.Pt(200, 120))
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	pp := filepath.Join(dir, "pred.tif")
	st, _ := NewStitcher(pp, StitchOptions{Width: 100, Height: 60, Window: 20})
	win := make([]float32, 400)
	cols, rows := st.Grid()
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			for i := range win {
				win[i] = 0.1
				if r*20+i/20 < 30 {
					win[i] = 0.9
				}
			}
			st.Add(c, r, win)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := ComparePrediction(context.Background(), pp, 0.5, tm)
	if err != nil {
		t.Fatal(err)
	}
	want := Metrics{TP: 1500, FP: 1500, FN: 1500, TN: 1500}
	if got != want {
		t.Fatalf("metrics %+v, want %+v", got, want)
	}

	// Overlay: thumbnail with red prediction and green truth outline.
	s := mustOpen(t, mp)
	op := filepath.Join(dir, "overlay.png")
	if err := WriteOverlay(s, pp, op, OverlayOptions{MaxSide: 100, Truth: tm}); err != nil {
		t.Fatal(err)
	}
	of, _ := os.Open(op)
	oi, err := png.Decode(of)
	of.Close()
	if err != nil || oi.Bounds().Size() != image.Pt(100, 60) {
		t.Fatalf("overlay %v %v", err, oi.Bounds())
	}
	r, g, b, _ := oi.At(80, 10).RGBA() // predicted, not truth: red tint
	if !(r > g && r > b) {
		t.Fatalf("overlay predicted pixel %d %d %d not red", r>>8, g>>8, b>>8)
	}
	_, g, _, _ = oi.At(49, 40).RGBA() // truth edge
	if g>>8 != 200 {
		t.Fatalf("truth outline missing: green %d", g>>8)
	}
}
