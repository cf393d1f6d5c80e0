// Package augment transforms (image, mask) training pairs: geometric changes
// apply to both, colour changes to the image only, so labels stay aligned.
package augment

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
)

// Pair is an image with its per-pixel mask of the same size.
type Pair struct {
	Image *image.NRGBA
	Mask  *image.Gray
}

func (p Pair) check() error {
	if p.Image == nil || p.Mask == nil {
		return fmt.Errorf("augment: nil image or mask")
	}
	if p.Image.Rect.Size() != p.Mask.Rect.Size() {
		return fmt.Errorf("augment: image %v and mask %v differ in size", p.Image.Rect.Size(), p.Mask.Rect.Size())
	}
	return nil
}

// transform maps every destination pixel (x, y) of a w×h result to a source
// pixel; it is applied identically to image and mask.
func transform(p Pair, w, h int, src func(x, y int) (int, int)) Pair {
	im := image.NewNRGBA(image.Rect(0, 0, w, h))
	mk := image.NewGray(image.Rect(0, 0, w, h))
	ib, mb := p.Image.Rect.Min, p.Mask.Rect.Min
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			sx, sy := src(x, y)
			si := p.Image.PixOffset(ib.X+sx, ib.Y+sy)
			copy(im.Pix[(y*w+x)*4:(y*w+x)*4+4], p.Image.Pix[si:si+4])
			mk.Pix[y*w+x] = p.Mask.Pix[p.Mask.PixOffset(mb.X+sx, mb.Y+sy)]
		}
	}
	return Pair{im, mk}
}

// FlipH mirrors left–right.
func FlipH(p Pair) (Pair, error) {
	if err := p.check(); err != nil {
		return Pair{}, err
	}
	w, h := p.Image.Rect.Dx(), p.Image.Rect.Dy()
	return transform(p, w, h, func(x, y int) (int, int) { return w - 1 - x, y }), nil
}

// FlipV mirrors top–bottom.
func FlipV(p Pair) (Pair, error) {
	if err := p.check(); err != nil {
		return Pair{}, err
	}
	w, h := p.Image.Rect.Dx(), p.Image.Rect.Dy()
	return transform(p, w, h, func(x, y int) (int, int) { return x, h - 1 - y }), nil
}

// Rot90 rotates by k quarter turns counter-clockwise (k may be negative).
func Rot90(p Pair, k int) (Pair, error) {
	if err := p.check(); err != nil {
		return Pair{}, err
	}
	w, h := p.Image.Rect.Dx(), p.Image.Rect.Dy()
	switch ((k % 4) + 4) % 4 {
	case 1: // destination is h×w; dst(x,y) = src(w-1-y, x)
		return transform(p, h, w, func(x, y int) (int, int) { return w - 1 - y, x }), nil
	case 2:
		return transform(p, w, h, func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }), nil
	case 3:
		return transform(p, h, w, func(x, y int) (int, int) { return y, h - 1 - x }), nil
	}
	return transform(p, w, h, func(x, y int) (int, int) { return x, y }), nil
}

// Crop cuts the rectangle r (relative to the images' top-left corner).
func Crop(p Pair, r image.Rectangle) (Pair, error) {
	if err := p.check(); err != nil {
		return Pair{}, err
	}
	if !r.In(image.Rectangle{Max: p.Image.Rect.Size()}) || r.Empty() {
		return Pair{}, fmt.Errorf("augment: crop %v outside %v", r, p.Image.Rect.Size())
	}
	return transform(p, r.Dx(), r.Dy(), func(x, y int) (int, int) { return r.Min.X + x, r.Min.Y + y }), nil
}

// Jitter bounds random colour changes. Zero fields disable that change.
type Jitter struct {
	Hue        float64 // hue shift up to ±Hue turns (0.05 ≈ ±18°)
	Saturation float64 // saturation scale in [1−S, 1+S]
	Brightness float64 // value scale in [1−B, 1+B]
	// HED perturbs haematoxylin, eosin and DAB stain concentrations after
	// Ruifrok–Johnston colour deconvolution: each channel c becomes
	// c·α + β with α ∈ [1−HED, 1+HED], β ∈ [−HED/10, HED/10] (in optical
	// density), imitating stain variation between labs.
	HED float64
}

// ColorJitter changes the image's colours in place-free fashion (returns a
// new image); the mask is untouched by design.
func ColorJitter(img *image.NRGBA, j Jitter, rng *rand.Rand) *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, img.Rect.Dx(), img.Rect.Dy()))
	u := func(a float64) float64 { return (2*rng.Float64() - 1) * a }
	dh, ds, dv := u(j.Hue), 1+u(j.Saturation), 1+u(j.Brightness)
	var ha, hb [3]float64
	for c := range 3 {
		ha[c], hb[c] = 1+u(j.HED), u(j.HED/10)
	}
	doHSV := j.Hue != 0 || j.Saturation != 0 || j.Brightness != 0
	w := img.Rect.Dx()
	for y := 0; y < img.Rect.Dy(); y++ {
		for x := 0; x < w; x++ {
			si := img.PixOffset(img.Rect.Min.X+x, img.Rect.Min.Y+y)
			r, g, b := float64(img.Pix[si]), float64(img.Pix[si+1]), float64(img.Pix[si+2])
			if j.HED != 0 {
				r, g, b = hedJitter(r, g, b, ha, hb)
			}
			if doHSV {
				h, s, v := rgbToHSV(r, g, b)
				h = math.Mod(h+dh+1, 1)
				s = math.Min(s*ds, 1)
				v = math.Min(v*dv, 255)
				r, g, b = hsvToRGB(h, s, v)
			}
			di := (y*w + x) * 4
			out.Pix[di], out.Pix[di+1], out.Pix[di+2], out.Pix[di+3] = to8(r), to8(g), to8(b), img.Pix[si+3]
		}
	}
	return out
}

// Options of a random augmentation.
type Options struct {
	Flip   bool // random horizontal and vertical flips
	Rotate bool // random multiple of 90°
	Color  Jitter
	// CropSize > 0 cuts a random CropSize² window.
	CropSize int
}

// Random applies a random augmentation drawn from rng (seed it for
// reproducible runs).
func Random(p Pair, o Options, rng *rand.Rand) (Pair, error) {
	if err := p.check(); err != nil {
		return Pair{}, err
	}
	var err error
	if o.CropSize > 0 {
		w, h := p.Image.Rect.Dx(), p.Image.Rect.Dy()
		if o.CropSize > w || o.CropSize > h {
			return Pair{}, fmt.Errorf("augment: crop %d larger than %dx%d", o.CropSize, w, h)
		}
		x, y := rng.IntN(w-o.CropSize+1), rng.IntN(h-o.CropSize+1)
		if p, err = Crop(p, image.Rect(x, y, x+o.CropSize, y+o.CropSize)); err != nil {
			return Pair{}, err
		}
	}
	if o.Flip && rng.IntN(2) == 1 {
		p, _ = FlipH(p)
	}
	if o.Flip && rng.IntN(2) == 1 {
		p, _ = FlipV(p)
	}
	if o.Rotate {
		if k := rng.IntN(4); k != 0 {
			p, _ = Rot90(p, k)
		}
	}
	if o.Color != (Jitter{}) {
		p.Image = ColorJitter(p.Image, o.Color, rng)
	}
	return p, nil
}

// Ruifrok & Johnston (2001) stain vectors (rows: H, E, DAB) in optical
// density per RGB channel, and the inverse used for deconvolution, as in
// scikit-image's rgb2hed.
var (
	hedFromRGB = [3][3]float64{
		{1.87798274, -1.00767869, -0.55611582},
		{-0.06590806, 1.13473037, -0.1355218},
		{-0.60190736, -0.48041419, 1.57358807},
	}
	rgbFromHED = [3][3]float64{
		{0.65, 0.70, 0.29},
		{0.07, 0.99, 0.11},
		{0.27, 0.57, 0.78},
	}
)

func hedJitter(r, g, b float64, a, bb [3]float64) (float64, float64, float64) {
	od := [3]float64{-math.Log((r + 1) / 256), -math.Log((g + 1) / 256), -math.Log((b + 1) / 256)}
	var hed, od2 [3]float64
	for c := range 3 {
		for k := range 3 {
			hed[c] += od[k] * hedFromRGB[k][c]
		}
		hed[c] = hed[c]*a[c] + bb[c]
	}
	for k := range 3 {
		for c := range 3 {
			od2[k] += hed[c] * rgbFromHED[c][k]
		}
	}
	return 256*math.Exp(-od2[0]) - 1, 256*math.Exp(-od2[1]) - 1, 256*math.Exp(-od2[2]) - 1
}

func rgbToHSV(r, g, b float64) (h, s, v float64) {
	mx, mn := math.Max(r, math.Max(g, b)), math.Min(r, math.Min(g, b))
	v = mx
	if mx <= 0 {
		return 0, 0, 0
	}
	s = (mx - mn) / mx
	d := mx - mn
	if d == 0 {
		return 0, s, v
	}
	switch mx {
	case r:
		h = (g - b) / d
	case g:
		h = 2 + (b-r)/d
	default:
		h = 4 + (r-g)/d
	}
	h /= 6
	if h < 0 {
		h++
	}
	return h, s, v
}

func hsvToRGB(h, s, v float64) (float64, float64, float64) {
	h6 := h * 6
	i := math.Floor(h6)
	f := h6 - i
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	switch int(i) % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	}
	return v, p, q
}

func to8(v float64) uint8 {
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return uint8(v + 0.5)
}
