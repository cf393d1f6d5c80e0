package slide

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airbusgeo/godal"
)

// pattern is constant on 2×2 blocks, so nearest and average 2× decimation
// agree exactly.
func pattern(x, y int) (uint8, uint8, uint8) {
	bx, by := x/2, y/2
	return uint8(bx * 7), uint8(by * 5), uint8((bx + by) * 3)
}

func patternImage(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b := pattern(x, y)
			m.SetNRGBA(x, y, color.NRGBA{r, g, b, 255})
		}
	}
	return m
}

func writePNG(t testing.TB, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeTIFF writes an RGB pattern TIFF through GDAL with the given creation
// options and optional overview factors.
func writeTIFF(t testing.TB, path string, w, h int, co []string, ovr ...int) {
	t.Helper()
	initGDAL()
	ds, err := godal.Create(godal.GTiff, path, 3, godal.Byte, w, h, godal.CreationOption(co...), failuresOnly())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			buf[3*(y*w+x)], buf[3*(y*w+x)+1], buf[3*(y*w+x)+2] = pattern(x, y)
		}
	}
	if err := ds.Write(0, 0, buf, w, h, failuresOnly()); err != nil {
		t.Fatal(err)
	}
	if len(ovr) > 0 {
		if err := ds.BuildOverviews(godal.Levels(ovr...), godal.Resampling(godal.Nearest), failuresOnly()); err != nil {
			t.Fatal(err)
		}
	}
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustOpen(t *testing.T, path string) *Slide {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkPattern compares a region read at level lvl (factor f = 2^lvl)
// against the pattern; out-of-bounds pixels must be white.
func checkPattern(t *testing.T, s *Slide, lvl int, r image.Rectangle) {
	t.Helper()
	img, err := s.ReadRegion(lvl, r)
	if err != nil {
		t.Fatal(err)
	}
	f := 1 << lvl
	sz := s.Size(0)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			got := img.NRGBAAt(x, y)
			want := color.NRGBA{255, 255, 255, 255}
			if x >= 0 && y >= 0 && x*f < sz.X && y*f < sz.Y {
				// A level pixel covers level-0 pixels [x·f, x·f+f); any of them
				// within one 2×2 block has the same value for f ≤ 2.
				rr, gg, bb := pattern(x*f, y*f)
				want = color.NRGBA{rr, gg, bb, 255}
			}
			if got != want {
				t.Fatalf("level %d pixel %d,%d = %v, want %v", lvl, x, y, got, want)
			}
		}
	}
}

func TestReadFormats(t *testing.T) {
	dir := t.TempDir()
	const w, h = 300, 200
	png1 := filepath.Join(dir, "a.png")
	writePNG(t, png1, patternImage(w, h))
	striped := filepath.Join(dir, "striped.tif")
	writeTIFF(t, striped, w, h, []string{"COMPRESS=DEFLATE"})
	tiled := filepath.Join(dir, "tiled.tif")
	writeTIFF(t, tiled, w, h, []string{"TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", "BIGTIFF=YES", "COMPRESS=LZW"})
	pyr := filepath.Join(dir, "pyramid.tif")
	writeTIFF(t, pyr, w, h, []string{"TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", "COMPRESS=DEFLATE"}, 2, 4)

	for _, tc := range []struct {
		name      string
		path      string
		overviews bool
	}{
		{"png", png1, false},
		{"striped tiff", striped, false},
		{"tiled bigtiff", tiled, false},
		{"pyramidal tiff", pyr, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t, tc.path)
			if s.Size(0) != image.Pt(w, h) {
				t.Fatalf("size %v", s.Size(0))
			}
			if s.HasOverviews() != tc.overviews {
				t.Fatalf("HasOverviews = %v", s.HasOverviews())
			}
			if s.Levels() < 2 || s.Size(1) != image.Pt(w/2, h/2) {
				t.Fatalf("levels %d, level 1 size %v", s.Levels(), s.Size(1))
			}
			if fx, fy := s.Downsample(1); fx != 2 || fy != 2 {
				t.Fatalf("downsample %g %g", fx, fy)
			}
			checkPattern(t, s, 0, image.Rect(37, 21, 37+70, 21+50))
			checkPattern(t, s, 0, image.Rect(w-10, h-5, w+20, h+7)) // padded with white
			checkPattern(t, s, 1, image.Rect(3, 5, 3+64, 5+40))
			checkPattern(t, s, 1, s.Bounds(1))
			if _, err := s.ReadRegion(s.Levels(), image.Rect(0, 0, 1, 1)); err == nil {
				t.Fatal("bad level: no error")
			}
		})
	}
}

func TestReadGrayPaletteAlpha(t *testing.T) {
	dir := t.TempDir()
	g := image.NewGray(image.Rect(0, 0, 20, 10))
	pal := image.NewPaletted(image.Rect(0, 0, 20, 10), color.Palette{color.NRGBA{10, 20, 30, 255}, color.NRGBA{200, 100, 50, 255}})
	rgba := image.NewNRGBA(image.Rect(0, 0, 20, 10))
	for i := range g.Pix {
		g.Pix[i] = uint8(i)
		pal.Pix[i] = uint8(i % 2)
		rgba.Pix[4*i], rgba.Pix[4*i+3] = uint8(i), 128
	}
	for _, tc := range []struct {
		name string
		img  image.Image
		want func(i int) color.NRGBA
	}{
		{"gray", g, func(i int) color.NRGBA { return color.NRGBA{uint8(i), uint8(i), uint8(i), 255} }},
		{"palette", pal, func(i int) color.NRGBA { return pal.Palette[i%2].(color.NRGBA) }},
		{"alpha", rgba, func(i int) color.NRGBA { return color.NRGBA{uint8(i), 0, 0, 128} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".png")
			writePNG(t, p, tc.img)
			s := mustOpen(t, p)
			img, err := s.ReadRegion(0, s.Bounds(0))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 200; i++ {
				if got := img.NRGBAAt(i%20, i/20); got != tc.want(i) {
					t.Fatalf("pixel %d = %v, want %v", i, got, tc.want(i))
				}
			}
		})
	}
}

func TestCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.tif")
	os.WriteFile(garbage, []byte("this is not a tiff at all, just text"), 0o644)
	missing := filepath.Join(dir, "missing.svs")
	for _, p := range []string{garbage, missing} {
		if _, err := Open(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("Open(%s) error %v, want one naming the file", p, err)
		}
	}
	// A truncated slide may open (the header is intact) but its tiles are
	// gone: the read must fail and name the file.
	full, mask := filepath.Join(dir, "full.tif"), filepath.Join(dir, "mask.tif")
	if err := GenerateSlide(context.Background(), GenConfig{Width: 512, Height: 512, Seed: 3, NoOverviews: true}, full, mask); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(full)
	trunc := filepath.Join(dir, "trunc.tif")
	os.WriteFile(trunc, data[:len(data)/3], 0o644)
	s, err := Open(trunc)
	if err == nil {
		defer s.Close()
		_, err = s.ReadRegion(0, s.Bounds(0))
	}
	if err == nil || !strings.Contains(err.Error(), trunc) {
		t.Fatalf("truncated slide: error %v, want one naming the file", err)
	}
}

func TestGenerateSlide(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	gen := func(name string, cfg GenConfig) (string, string) {
		t.Helper()
		p, m := filepath.Join(dir, name+".tif"), filepath.Join(dir, name+"_mask.tif")
		if err := GenerateSlide(ctx, cfg, p, m); err != nil {
			t.Fatal(err)
		}
		return p, m
	}
	var calls, last int
	cfg := GenConfig{Width: 1000, Height: 700, Seed: 7, Compression: "DEFLATE", TileSize: 128,
		Progress: func(done, total int) { calls++; last = done; _ = total }}
	a, am := gen("a", cfg)
	if calls == 0 || last != 8*6 {
		t.Fatalf("progress: %d calls, last done %d, want 48", calls, last)
	}
	cfg.Progress = nil
	b, _ := gen("b", cfg)
	cfg.Seed = 8
	c, _ := gen("c", cfg)
	jp, _ := gen("jpeg", GenConfig{Width: 1000, Height: 700, Seed: 7})

	sa, sb, sc, sj := mustOpen(t, a), mustOpen(t, b), mustOpen(t, c), mustOpen(t, jp)
	if sa.Size(0) != image.Pt(1000, 700) || !sa.HasOverviews() || sa.Levels() < 3 {
		t.Fatalf("size %v levels %d overviews %v", sa.Size(0), sa.Levels(), sa.HasOverviews())
	}
	ia, _ := sa.ReadRegion(0, sa.Bounds(0))
	ib, _ := sb.ReadRegion(0, sb.Bounds(0))
	ic, _ := sc.ReadRegion(0, sc.Bounds(0))
	ij, _ := sj.ReadRegion(0, sj.Bounds(0))
	if !bytes.Equal(ia.Pix, ib.Pix) {
		t.Fatal("same seed gave different slides")
	}
	if bytes.Equal(ia.Pix, ic.Pix) {
		t.Fatal("different seeds gave the same slide")
	}
	// JPEG is lossy but must be close to the lossless rendering.
	var diff float64
	for i := range ia.Pix {
		d := float64(ia.Pix[i]) - float64(ij.Pix[i])
		diff += d * d
	}
	if rmse := diff / float64(len(ia.Pix)); rmse > 100 {
		t.Fatalf("JPEG slide differs from deflate one: MSE %.1f", rmse)
	}

	// The mask is exactly the renderer's tumour class, and tumour tissue is
	// darker (denser, darker nuclei) than normal tissue.
	m, err := OpenMask(am, sa.Size(0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mg, err := m.ReadRegion(image.Rect(0, 0, 1000, 700), image.Pt(1000, 700))
	if err != nil {
		t.Fatal(err)
	}
	syn := newSynth(1000, 700, 7, 0.3)
	f := syn.fields(-nucMargin, -nucMargin, 1000+nucMargin, 700+nucMargin)
	var sum [3]float64
	var n [3]int
	for y := 0; y < 700; y++ {
		for x := 0; x < 1000; x++ {
			cl := syn.class(f, int64(x), int64(y))
			if (cl == 2) != (mg.Pix[y*1000+x] == 255) {
				t.Fatalf("mask at %d,%d = %d, class %d", x, y, mg.Pix[y*1000+x], cl)
			}
			px := ia.NRGBAAt(x, y)
			sum[cl] += float64(px.R) + float64(px.G) + float64(px.B)
			n[cl]++
		}
	}
	if n[1] == 0 || n[2] == 0 || n[0] == 0 {
		t.Fatalf("classes present: %v", n)
	}
	bg, normal, tumour := sum[0]/float64(n[0]), sum[1]/float64(n[1]), sum[2]/float64(n[2])
	if !(bg > normal+60 && normal > tumour+60) {
		t.Fatalf("mean brightness bg %.0f normal %.0f tumour %.0f: want clear steps", bg, normal, tumour)
	}
	if _, err := OpenMask(am, image.Pt(999, 700)); err == nil {
		t.Fatal("mask of the wrong size accepted")
	}
	if err := GenerateSlide(ctx, GenConfig{Width: 0, Height: 10}, filepath.Join(dir, "x.tif"), filepath.Join(dir, "y.tif")); err == nil {
		t.Fatal("zero width accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	xp := filepath.Join(dir, "cancelled.tif")
	if err := GenerateSlide(cctx, GenConfig{Width: 600, Height: 600}, xp, filepath.Join(dir, "cm.tif")); err == nil {
		t.Fatal("cancelled generation succeeded")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*cancelled*")); len(left) != 0 {
		t.Fatalf("cancelled generation left %v", left)
	}
}

func TestGeoJSONMask(t *testing.T) {
	dir := t.TempDir()
	gj := filepath.Join(dir, "ann.geojson")
	// Pixel coordinates, y down: a square near the top-left, a triangle.
	os.WriteFile(gj, []byte(`{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[10,5],[30,5],[30,25],[10,25],[10,5]]]}},
{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[100,100],[140,100],[100,140],[100,100]]]}}]}`), 0o644)
	m, err := OpenMask(gj, image.Pt(200, 150))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	g, err := m.ReadRegion(image.Rect(0, 0, 200, 150), image.Pt(200, 150))
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for y := 0; y < 150; y++ {
		for x := 0; x < 200; x++ {
			if x >= 100 && y >= 100 && x+y+1 == 240 {
				continue // centre exactly on the hypotenuse
			}
			in := x >= 10 && x < 30 && y >= 5 && y < 25 || // pixel centres inside
				x >= 100 && y >= 100 && float64(x)+0.5+float64(y)+0.5 < 240
			if (g.Pix[y*200+x] == 255) != in {
				t.Fatalf("pixel %d,%d = %d, inside %v", x, y, g.Pix[y*200+x], in)
			}
			if in {
				count++
			}
		}
	}
	// A region read at half resolution, offset.
	g2, err := m.ReadRegion(image.Rect(10, 4, 50, 24), image.Pt(20, 10))
	if err != nil {
		t.Fatal(err)
	}
	if g2.Pix[0] != 255 || g2.Pix[9] != 255 || g2.Pix[10] != 0 || g2.Pix[19] != 0 {
		t.Fatalf("half-resolution row: %v", g2.Pix[:20])
	}
	if f, _ := m.Fraction(image.Rect(10, 5, 30, 25)); f != 1 {
		t.Fatalf("fraction inside square = %g", f)
	}
	if _, err := OpenMask(gj, image.Point{}); err == nil {
		t.Fatal("GeoJSON mask without slide size accepted")
	}
}

func TestCacheBounded(t *testing.T) {
	if os.Getenv("GDAL_CACHEMAX") != "" {
		t.Skip("GDAL_CACHEMAX set by the environment")
	}
	initGDAL()
	if got := CacheMax(); got != DefaultCacheMax {
		t.Fatalf("GDAL cache %d bytes, want %d", got, DefaultCacheMax)
	}
}
