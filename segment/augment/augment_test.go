package augment

import (
	"bytes"
	"image"
	"image/color"
	"math/rand/v2"
	"testing"
)

// marked is an image whose "tumour" pixels (a lopsided L shape) are pure red
// and listed in the mask; everything else is unique grey-blue, so any
// misalignment between image and mask shows.
func marked(w, h int) Pair {
	im := image.NewNRGBA(image.Rect(0, 0, w, h))
	mk := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{uint8(x), uint8(y), 100, 255}
			if (x >= 2 && x < 5 && y >= 1 && y < 9) || (y >= 7 && y < 9 && x >= 2 && x < 12) {
				c = color.NRGBA{255, 0, 0, 255}
				mk.Pix[y*w+x] = 255
			}
			im.SetNRGBA(x, y, c)
		}
	}
	return Pair{im, mk}
}

func aligned(t *testing.T, p Pair) {
	t.Helper()
	if p.Image.Rect.Size() != p.Mask.Rect.Size() {
		t.Fatalf("sizes %v %v", p.Image.Rect, p.Mask.Rect)
	}
	n := 0
	for i, m := range p.Mask.Pix {
		red := p.Image.Pix[4*i] == 255 && p.Image.Pix[4*i+1] == 0 && p.Image.Pix[4*i+2] == 0
		if red != (m == 255) {
			t.Fatalf("pixel %d: red %v, mask %d", i, red, m)
		}
		if red {
			n++
		}
	}
	if n == 0 {
		t.Fatal("marker lost")
	}
}

func TestGeometricAligned(t *testing.T) {
	p := marked(16, 12)
	for _, tc := range []struct {
		name string
		f    func(Pair) (Pair, error)
		size image.Point
	}{
		{"flipH", FlipH, image.Pt(16, 12)},
		{"flipV", FlipV, image.Pt(16, 12)},
		{"rot90", func(p Pair) (Pair, error) { return Rot90(p, 1) }, image.Pt(12, 16)},
		{"rot180", func(p Pair) (Pair, error) { return Rot90(p, 2) }, image.Pt(16, 12)},
		{"rot270", func(p Pair) (Pair, error) { return Rot90(p, -1) }, image.Pt(12, 16)},
		{"crop", func(p Pair) (Pair, error) { return Crop(p, image.Rect(1, 1, 9, 10)) }, image.Pt(8, 9)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := tc.f(p)
			if err != nil {
				t.Fatal(err)
			}
			if q.Image.Rect.Size() != tc.size {
				t.Fatalf("size %v, want %v", q.Image.Rect.Size(), tc.size)
			}
			aligned(t, q)
		})
	}
	// Exact geometry: flipH moves (x,y) to (w-1-x, y); rot90 (CCW) moves
	// (x,y) to (y, w-1-x).
	q, _ := FlipH(p)
	if q.Image.NRGBAAt(15-3, 0) != p.Image.NRGBAAt(3, 0) {
		t.Fatal("flipH misplaced a pixel")
	}
	q, _ = Rot90(p, 1)
	if q.Image.NRGBAAt(0, 15-3) != p.Image.NRGBAAt(3, 0) {
		t.Fatal("rot90 misplaced a pixel")
	}
	// Four quarter turns and two flips are identities; rot180 = flipH∘flipV.
	r := p
	for range 4 {
		r, _ = Rot90(r, 1)
	}
	hv, _ := FlipH(p)
	hv, _ = FlipV(hv)
	r2, _ := Rot90(p, 2)
	if !bytes.Equal(r.Image.Pix, p.Image.Pix) || !bytes.Equal(r.Mask.Pix, p.Mask.Pix) ||
		!bytes.Equal(hv.Image.Pix, r2.Image.Pix) || !bytes.Equal(hv.Mask.Pix, r2.Mask.Pix) {
		t.Fatal("rotation/flip identities broken")
	}
	if _, err := FlipH(Pair{p.Image, image.NewGray(image.Rect(0, 0, 3, 3))}); err == nil {
		t.Fatal("mismatched sizes accepted")
	}
}

func TestRandomAlignedAndSeeded(t *testing.T) {
	p := marked(32, 24)
	o := Options{Flip: true, Rotate: true, CropSize: 20}
	for seed := range uint64(20) {
		q, err := Random(p, o, rand.New(rand.NewPCG(seed, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if q.Image.Rect.Size() != image.Pt(20, 20) {
			t.Fatalf("size %v", q.Image.Rect)
		}
		if q.Mask.Pix != nil && bytes.IndexByte(q.Mask.Pix, 255) >= 0 {
			aligned(t, q)
		}
		q2, _ := Random(p, o, rand.New(rand.NewPCG(seed, 1)))
		if !bytes.Equal(q.Image.Pix, q2.Image.Pix) {
			t.Fatal("same seed, different augmentation")
		}
	}
}

func TestColorJitter(t *testing.T) {
	p := marked(16, 12)
	rng := rand.New(rand.NewPCG(1, 2))
	// Zero jitter (including HED deconvolution round trip) is the identity.
	same := ColorJitter(p.Image, Jitter{HED: 1e-12}, rng)
	for i := range same.Pix {
		if d := int(same.Pix[i]) - int(p.Image.Pix[i]); d < -1 || d > 1 {
			t.Fatalf("identity jitter changed byte %d: %d -> %d", i, p.Image.Pix[i], same.Pix[i])
		}
	}
	maskBefore := bytes.Clone(p.Mask.Pix)
	q, err := Random(p, Options{Color: Jitter{Hue: 0.05, Saturation: 0.2, Brightness: 0.2, HED: 0.05}}, rng)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(q.Image.Pix, p.Image.Pix) {
		t.Fatal("colour jitter changed nothing")
	}
	if !bytes.Equal(q.Mask.Pix, maskBefore) || !bytes.Equal(p.Mask.Pix, maskBefore) {
		t.Fatal("colour jitter touched the mask")
	}
	// Hue rotation by a full turn and unit scales change nothing beyond
	// rounding.
	h, s, v := rgbToHSV(200, 100, 50)
	r, g, b := hsvToRGB(h, s, v)
	if abs(r-200) > 1e-9 || abs(g-100) > 1e-9 || abs(b-50) > 1e-9 {
		t.Fatalf("hsv round trip %g %g %g", r, g, b)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
