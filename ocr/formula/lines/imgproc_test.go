package lines

import (
	"image"
	"image/color"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dl4img/dl4img/internal/imagefile"
)

func randGray(rng *rand.Rand, w, h int) *image.Gray {
	g := newGray(w, h)
	for i := range g.Pix {
		g.Pix[i] = uint8(rng.IntN(256))
	}
	return g
}

func grayFrom(w int, vals ...uint8) *image.Gray {
	g := newGray(w, len(vals)/w)
	copy(g.Pix, vals)
	return g
}

func TestToGray(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rgba := image.NewRGBA(image.Rect(3, 4, 20, 13)) // not at the origin
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(rng.IntN(256))
	}
	for i := 3; i < len(rgba.Pix); i += 4 {
		rgba.Pix[i] = 255
	}
	nrgba := image.NewNRGBA(rgba.Rect)
	copy(nrgba.Pix, rgba.Pix)
	ycc := image.NewYCbCr(rgba.Rect, image.YCbCrSubsampleRatio420)
	for i := range ycc.Y {
		ycc.Y[i] = uint8(rng.IntN(256))
	}
	// Neutral chroma: JPEG luma is then exactly the gray value.
	for i := range ycc.Cb {
		ycc.Cb[i], ycc.Cr[i] = 128, 128
	}
	pal := image.NewPaletted(rgba.Rect, color.Palette{color.Black, color.White, color.RGBA{200, 10, 30, 255}})
	for i := range pal.Pix {
		pal.Pix[i] = uint8(rng.IntN(3))
	}
	// Wide enough for the vector kernel (16 pixels a step) plus a tail: it
	// must match luma exactly.
	wide := image.NewRGBA(image.Rect(0, 0, 70, 3))
	for i := range wide.Pix {
		wide.Pix[i] = uint8(rng.IntN(256))
	}
	wg := ToGray(wide)
	for i := range wg.Pix {
		if p := wide.Pix[4*i:]; wg.Pix[i] != imagefile.Luma(p[0], p[1], p[2]) {
			t.Fatalf("wide RGBA pixel %d: %d, want %d", i, wg.Pix[i], imagefile.Luma(p[0], p[1], p[2]))
		}
	}
	for _, img := range []image.Image{rgba, nrgba, ycc, pal, rgba.SubImage(image.Rect(5, 6, 9, 12))} {
		g := ToGray(img)
		b := img.Bounds()
		if g.Rect != image.Rect(0, 0, b.Dx(), b.Dy()) {
			t.Fatalf("%T: rect %v", img, g.Rect)
		}
		for y := range b.Dy() {
			for x := range b.Dx() {
				want := color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray).Y
				if d := int(g.GrayAt(x, y).Y) - int(want); d < -1 || d > 1 {
					t.Fatalf("%T at %d,%d: %d, want %d", img, x, y, g.GrayAt(x, y).Y, want)
				}
			}
		}
	}
}

func TestEqualize(t *testing.T) {
	// Two levels spread to the extremes; order is kept.
	g := grayFrom(4, 100, 100, 100, 150, 150, 150, 150, 150)
	eq := Equalize(g)
	if eq.Pix[0] != 0 || eq.Pix[7] != 255 {
		t.Errorf("two-level image equalized to %v", eq.Pix)
	}
	// Uniform histogram maps to itself.
	u := newGray(256, 1)
	for i := range u.Pix {
		u.Pix[i] = uint8(i)
	}
	lut := EqualizeLUT(Histogram(u))
	for i, v := range lut {
		if v != uint8(i) {
			t.Fatalf("uniform lut[%d] = %d", i, v)
		}
	}
	// Monotone on random data.
	lut = EqualizeLUT(Histogram(randGray(rand.New(rand.NewPCG(3, 4)), 50, 40)))
	for i := 1; i < 256; i++ {
		if lut[i] < lut[i-1] {
			t.Fatalf("lut not monotone at %d", i)
		}
	}
	flat := grayFrom(2, 7, 7, 7, 7)
	if eq := Equalize(flat); !slices.Equal(eq.Pix, flat.Pix) {
		t.Errorf("flat image changed: %v", eq.Pix)
	}
}

func bruteMedian(g *image.Gray, k int) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	out := newGray(w, h)
	r := k / 2
	vals := make([]uint8, 0, k*k)
	for y := range h {
		for x := range w {
			vals = vals[:0]
			for dy := -r; dy <= r; dy++ {
				for dx := -r; dx <= r; dx++ {
					xx, yy := min(max(x+dx, 0), w-1), min(max(y+dy, 0), h-1)
					vals = append(vals, g.Pix[yy*w+xx])
				}
			}
			slices.Sort(vals)
			out.Pix[y*w+x] = vals[len(vals)/2]
		}
	}
	return out
}

func TestMedian(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, k := range []int{3, 5, 7} {
		for _, sz := range [][2]int{{1, 1}, {2, 7}, {17, 9}, {40, 23}, {32, 1}, {64, 5}, {97, 31}} {
			g := randGray(rng, sz[0], sz[1])
			got, err := Median(g, k)
			if err != nil {
				t.Fatal(err)
			}
			if want := bruteMedian(g, k); !slices.Equal(got.Pix, want.Pix) {
				t.Errorf("median %d on %v differs from brute force", k, sz)
			}
		}
	}
	// The vector path against the fallback on an image with a long tail
	// of constant runs and extremes, where selection networks go wrong.
	g := randGray(rng, 333, 41)
	for i := range g.Pix {
		switch i % 7 {
		case 0:
			g.Pix[i] = 0
		case 1, 2:
			g.Pix[i] = 255
		}
	}
	if got, _ := Median(g, 5); !slices.Equal(got.Pix, medianHist(g, 5).Pix) {
		t.Error("median 5 differs from the sliding histogram")
	}
	if _, err := Median(newGray(3, 3), 4); err == nil {
		t.Error("even median size accepted")
	}
}

func bruteMorph(g *image.Gray, kw, kh int, isMax bool) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	out := newGray(w, h)
	for y := range h {
		for x := range w {
			v := uint8(255)
			if isMax {
				v = 0
			}
			for dy := range kh {
				for dx := range kw {
					xx, yy := x-kw/2+dx, y-kh/2+dy
					if xx < 0 || yy < 0 || xx >= w || yy >= h {
						continue
					}
					p := g.Pix[yy*w+xx]
					if isMax {
						v = max(v, p)
					} else {
						v = min(v, p)
					}
				}
			}
			out.Pix[y*w+x] = v
		}
	}
	return out
}

func TestErodeDilate(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, k := range [][2]int{{1, 1}, {3, 3}, {15, 1}, {4, 2}, {9, 5}, {30, 3}, {15, 15}, {3, 8}, {1, 30}} {
		for _, sz := range [][2]int{{1, 1}, {5, 3}, {37, 11}, {13, 40}, {100, 7}} {
			g := randGray(rng, sz[0], sz[1])
			if got, want := Erode(g, k[0], k[1]), bruteMorph(g, k[0], k[1], false); !slices.Equal(got.Pix, want.Pix) {
				t.Errorf("erode %v on %v differs", k, sz)
			}
			if got, want := Dilate(g, k[0], k[1]), bruteMorph(g, k[0], k[1], true); !slices.Equal(got.Pix, want.Pix) {
				t.Errorf("dilate %v on %v differs", k, sz)
			}
		}
	}
}

func TestOpenJoinsCharactersCloseRemovesSpecks(t *testing.T) {
	// Two dark "characters" 4 px apart on a light row, and a 1-px speck.
	const w = 40
	g := newGray(w, 9)
	for i := range g.Pix {
		g.Pix[i] = 250
	}
	for y := 2; y < 7; y++ {
		for x := 6; x < 11; x++ {
			g.Pix[y*w+x] = 20
			g.Pix[y*w+x+9] = 20
		}
	}
	g.Pix[4*w+30] = 20
	o := Open(g, 7, 1)
	for x := 6; x < 20; x++ {
		if o.Pix[4*w+x] != 20 {
			t.Fatalf("open did not fill the gap at x=%d: %d", x, o.Pix[4*w+x])
		}
	}
	if o.Pix[4*w+4] != 250 || o.Pix[4*w+21] != 250 {
		t.Error("open grew the blob beyond its ends")
	}
	c := Close(o, 3, 3)
	if c.Pix[4*w+30] != 250 {
		t.Error("close kept the speck")
	}
	if c.Pix[4*w+12] != 20 {
		t.Error("close removed the blob")
	}
	for i := range g.Pix {
		if o.Pix[i] > g.Pix[i] || c.Pix[i] < o.Pix[i] {
			t.Fatal("open must not brighten, close must not darken")
		}
	}
}

func TestDownscale(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var lut [256]uint8
	for i := range lut {
		lut[i] = uint8(255 - i)
	}
	// 70×9 and 128×8 take the vector kernel for f=4 (full 4×4 blocks,
	// then a scalar tail and a partial bottom row).
	for _, sz := range [][2]int{{11, 7}, {70, 9}, {128, 8}} {
		W, H := sz[0], sz[1]
		g := randGray(rng, W, H)
		for _, f := range []int{1, 2, 4} {
			for _, l := range []*[256]uint8{nil, &lut} {
				got := Downscale(g, f, l)
				dw, dh := (W+f-1)/f, (H+f-1)/f
				if got.Rect.Dx() != dw || got.Rect.Dy() != dh {
					t.Fatalf("f=%d: size %v", f, got.Rect)
				}
				for y := range dh {
					for x := range dw {
						s, n := 0, 0
						for yy := y * f; yy < min(y*f+f, H); yy++ {
							for xx := x * f; xx < min(x*f+f, W); xx++ {
								v := g.Pix[yy*W+xx]
								if l != nil {
									v = l[v]
								}
								s += int(v)
								n++
							}
						}
						if want := uint8((s + n/2) / n); got.Pix[y*dw+x] != want {
							t.Fatalf("%v f=%d lut=%v at %d,%d: %d want %d", sz, f, l != nil, x, y, got.Pix[y*dw+x], want)
						}
					}
				}
			}
		}
	}
	up := UpscaleNearest(grayFrom(2, 1, 2, 3, 4), 3, 5, 4)
	want := []uint8{1, 1, 1, 2, 2, 1, 1, 1, 2, 2, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4}
	if !slices.Equal(up.Pix, want) {
		t.Errorf("upscale = %v", up.Pix)
	}
}

func TestThresholds(t *testing.T) {
	var hist [256]int
	hist[40] = 100
	hist[45] = 50
	hist[200] = 1000
	hist[210] = 500
	if o := Otsu(hist); o < 45 || o >= 200 {
		t.Errorf("Otsu = %d, want in [45,200)", o)
	}
	// Background mode 250 with spread 2 → MinContrast wins.
	var bg [256]int
	bg[248], bg[250], bg[252], bg[100] = 300, 1000, 300, 20
	if got := BackgroundThreshold(bg, 24); got != 226 {
		t.Errorf("BackgroundThreshold = %d, want 226", got)
	}
	// A noisy background widens the margin.
	bg[240] = 600
	if got := BackgroundThreshold(bg, 24); got != 210 {
		t.Errorf("noisy BackgroundThreshold = %d, want 210", got)
	}
	m := ThresholdInv(grayFrom(4, 0, 100, 101, 255), 100)
	if !slices.Equal(m.Pix, []uint8{255, 255, 0, 0}) {
		t.Errorf("ThresholdInv = %v", m.Pix)
	}
}

func TestFlattenBackground(t *testing.T) {
	// A strong gradient with a thin dark stroke: the background becomes
	// white everywhere, the stroke stays dark.
	g := newGray(60, 20)
	for y := range 20 {
		for x := range 60 {
			g.Pix[y*60+x] = uint8(120 + 2*x)
		}
	}
	for y := 5; y < 15; y++ {
		g.Pix[y*60+30] = g.Pix[y*60+30] - 100
	}
	f := FlattenBackground(g, 5)
	for y := range 20 {
		for x := range 60 {
			v := f.Pix[y*60+x]
			stroke := x == 30 && y >= 5 && y < 15
			if stroke && v > 160 || !stroke && v < 250 {
				t.Fatalf("flattened %d,%d = %d (stroke %v)", x, y, v, stroke)
			}
		}
	}
}

// bruteComponents flood-fills 8-connected regions.
func bruteComponents(m *image.Gray) map[image.Rectangle]int {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	seen := make([]bool, w*h)
	out := map[image.Rectangle]int{}
	for i, v := range m.Pix {
		if v == 0 || seen[i] {
			continue
		}
		stack := []int{i}
		seen[i] = true
		var r image.Rectangle
		n := 0
		for len(stack) > 0 {
			j := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x, y := j%w, j/w
			r = r.Union(image.Rect(x, y, x+1, y+1))
			n++
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					xx, yy := x+dx, y+dy
					if xx >= 0 && yy >= 0 && xx < w && yy < h && m.Pix[yy*w+xx] != 0 && !seen[yy*w+xx] {
						seen[yy*w+xx] = true
						stack = append(stack, yy*w+xx)
					}
				}
			}
		}
		out[r] += n
	}
	return out
}

func TestComponents(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := range 20 {
		m := newGray(31, 17)
		for i := range m.Pix {
			if rng.IntN(100) < 20+3*trial {
				m.Pix[i] = 255
			}
		}
		want := bruteComponents(m)
		got := map[image.Rectangle]int{}
		for _, c := range Components(m) {
			got[c.Box] += c.Area
		}
		if len(got) != len(want) {
			t.Fatalf("trial %d: %d components, want %d", trial, len(got), len(want))
		}
		for r, n := range want {
			if got[r] != n {
				t.Fatalf("trial %d: component %v area %d, want %d", trial, r, got[r], n)
			}
		}
	}
	// A U shape: the two arms merge late (union-find must resolve it).
	m := grayFrom(5,
		255, 0, 0, 0, 255,
		255, 0, 0, 0, 255,
		255, 255, 255, 255, 255)
	if cs := Components(m); len(cs) != 1 || cs[0].Area != 9 || cs[0].Box != image.Rect(0, 0, 5, 3) {
		t.Errorf("U shape: %+v", cs)
	}
}

func TestResize(t *testing.T) {
	flat := newGray(13, 7)
	for i := range flat.Pix {
		flat.Pix[i] = 77
	}
	for _, sz := range [][2]int{{5, 3}, {40, 21}, {13, 7}, {1, 1}} {
		r := Resize(flat, sz[0], sz[1])
		if r.Rect.Dx() != sz[0] || r.Rect.Dy() != sz[1] {
			t.Fatalf("size %v", r.Rect)
		}
		for _, v := range r.Pix {
			if v != 77 {
				t.Fatalf("flat image resized to %v has %d", sz, v)
			}
		}
	}
	// Halving a fine checkerboard averages it.
	c := newGray(16, 16)
	for y := range 16 {
		for x := range 16 {
			if (x+y)%2 == 0 {
				c.Pix[y*16+x] = 200
			}
		}
	}
	for _, v := range Resize(c, 4, 4).Pix {
		if v < 90 || v > 110 {
			t.Fatalf("checkerboard shrunk to %d, want ~100", v)
		}
	}
	// A horizontal ramp stays monotone when enlarged.
	ramp := grayFrom(4, 0, 80, 160, 240)
	big := Resize(ramp, 16, 1)
	for i := 1; i < 16; i++ {
		if big.Pix[i] < big.Pix[i-1] {
			t.Fatalf("ramp not monotone: %v", big.Pix)
		}
	}
}

func TestJoinStrip(t *testing.T) {
	p := DefaultParams()
	mk := func(w, h int, v uint8) *image.Gray {
		g := newGray(w, h)
		for i := range g.Pix {
			g.Pix[i] = v
		}
		return g
	}
	inner := p.StripHeight - 2*p.StripMargin
	s := JoinStrip([]*image.Gray{mk(100, 50, 0), mk(40, 20, 0)}, p)
	wantW := 100*inner/50 + p.StripGap + 40*inner/20 + 2*p.StripMargin
	if s.Rect.Dy() != p.StripHeight || s.Rect.Dx() != wantW {
		t.Errorf("strip %v, want %dx%d", s.Rect, wantW, p.StripHeight)
	}
	// The gap between the crops is white, the crops dark.
	gx := p.StripMargin + 100*inner/50 + p.StripGap/2
	if s.GrayAt(gx, p.StripHeight/2).Y != 255 || s.GrayAt(p.StripMargin+5, p.StripHeight/2).Y != 0 {
		t.Error("strip layout wrong")
	}
	// Too wide: shrunk to the maximum width, centred vertically.
	s = JoinStrip([]*image.Gray{mk(2000, 50, 0), mk(900, 50, 0)}, p)
	if s.Rect.Dx() != p.StripMaxWidth || s.Rect.Dy() != p.StripHeight {
		t.Errorf("wide strip %v", s.Rect)
	}
	if s.GrayAt(p.StripMargin+10, 1).Y != 255 || s.GrayAt(p.StripMargin+10, p.StripHeight/2).Y != 0 {
		t.Error("wide strip not centred")
	}
	p.PadToWidth = true
	if s := JoinStrip([]*image.Gray{mk(10, 50, 0)}, p); s.Rect.Dx() != p.StripMaxWidth {
		t.Errorf("padded strip width %d", s.Rect.Dx())
	}
}
