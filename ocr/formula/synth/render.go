package synth

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"

	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
)

// inkThreshold is the coverage (of 255) at which a pixel counts as ink for
// the ground-truth boxes: the middle, where a threshold between text and
// background colours lands.
const inkThreshold = 128

// renderLine draws text in white on a transparent mask: CJK characters with
// cjk, everything else with digits, with a little random extra spacing
// between characters. It returns the mask rotated by angle (radians).
func renderLine(rng *rand.Rand, text string, cjk, digits *sfnt.Font, size float64, angle float64) (*image.Alpha, error) {
	opts := &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingNone}
	cf, err := opentype.NewFace(cjk, opts)
	if err != nil {
		return nil, fmt.Errorf("CJK face: %w", err)
	}
	defer cf.Close()
	df, err := opentype.NewFace(digits, opts)
	if err != nil {
		return nil, fmt.Errorf("digit face: %w", err)
	}
	defer df.Close()
	faceOf := func(r rune) font.Face {
		if r >= 0x2E80 {
			return cf
		}
		return df
	}
	runes := []rune(text)
	spacing := make([]fixed.Int26_6, len(runes))
	width := fixed.Int26_6(0)
	for i, r := range runes {
		adv, ok := faceOf(r).GlyphAdvance(r)
		if !ok {
			return nil, fmt.Errorf("no glyph for %q", r)
		}
		spacing[i] = adv + fixed.Int26_6(rng.Float64()*0.12*size*64)
		width += spacing[i]
	}
	asc := max(cf.Metrics().Ascent, df.Metrics().Ascent)
	desc := max(cf.Metrics().Descent, df.Metrics().Descent)
	margin := int(size/4) + 2
	w := width.Ceil() + 2*margin
	h := (asc + desc).Ceil() + 2*margin
	mask := image.NewAlpha(image.Rect(0, 0, w, h))
	d := font.Drawer{Dst: mask, Src: image.Opaque}
	dot := fixed.P(margin, margin+asc.Ceil())
	for i, r := range runes {
		d.Face = faceOf(r)
		d.Dot = dot
		d.DrawString(string(r))
		dot.X += spacing[i]
	}
	return rotateAlpha(mask, angle), nil
}

// rotateAlpha rotates m about its centre by angle radians (bilinear), into
// a canvas large enough to hold the result.
func rotateAlpha(m *image.Alpha, angle float64) *image.Alpha {
	if angle == 0 {
		return m
	}
	sw, sh := m.Rect.Dx(), m.Rect.Dy()
	c, s := math.Cos(angle), math.Sin(angle)
	dw := int(math.Ceil(math.Abs(float64(sw)*c)+math.Abs(float64(sh)*s))) + 2
	dh := int(math.Ceil(math.Abs(float64(sw)*s)+math.Abs(float64(sh)*c))) + 2
	out := image.NewAlpha(image.Rect(0, 0, dw, dh))
	scx, scy := float64(sw)/2, float64(sh)/2
	dcx, dcy := float64(dw)/2, float64(dh)/2
	at := func(x, y int) float64 {
		if x < 0 || y < 0 || x >= sw || y >= sh {
			return 0
		}
		return float64(m.Pix[y*m.Stride+x])
	}
	for y := range dh {
		for x := range dw {
			// Inverse map the destination pixel centre into the source.
			fx, fy := float64(x)+0.5-dcx, float64(y)+0.5-dcy
			sx := c*fx + s*fy + scx - 0.5
			sy := -s*fx + c*fy + scy - 0.5
			x0, y0 := int(math.Floor(sx)), int(math.Floor(sy))
			ax, ay := sx-float64(x0), sy-float64(y0)
			v := (at(x0, y0)*(1-ax)+at(x0+1, y0)*ax)*(1-ay) + (at(x0, y0+1)*(1-ax)+at(x0+1, y0+1)*ax)*ay
			if v > 0 {
				out.Pix[y*out.Stride+x] = uint8(v + 0.5)
			}
		}
	}
	return out
}

// inkBounds is the bounding box of pixels with coverage ≥ inkThreshold.
func inkBounds(m *image.Alpha) image.Rectangle {
	r := image.Rectangle{}
	for y := m.Rect.Min.Y; y < m.Rect.Max.Y; y++ {
		row := m.Pix[(y-m.Rect.Min.Y)*m.Stride:]
		for x := 0; x < m.Rect.Dx(); x++ {
			if row[x] >= inkThreshold {
				r = r.Union(image.Rect(x+m.Rect.Min.X, y, x+m.Rect.Min.X+1, y+1))
			}
		}
	}
	return r
}

type rgb [3]float64

// canvas is an RGB float image; the generator composes in float and
// quantizes once, so layered noise does not accumulate rounding.
type canvas struct {
	w, h int
	pix  []float32 // 3 per pixel
}

func newCanvas(w, h int) *canvas { return &canvas{w: w, h: h, pix: make([]float32, 3*w*h)} }

// blend mixes colour c into pixel (x, y) with weight a in [0,1].
func (cv *canvas) blend(x, y int, c rgb, a float64) {
	if x < 0 || y < 0 || x >= cv.w || y >= cv.h || a <= 0 {
		return
	}
	i := 3 * (y*cv.w + x)
	fa := float32(min(a, 1))
	for k := range 3 {
		cv.pix[i+k] += (float32(c[k]) - cv.pix[i+k]) * fa
	}
}

// background fills the canvas with a light base colour, a linear gradient in
// a random direction and soft blotches.
func (cv *canvas) background(rng *rand.Rand) {
	level := 170 + rng.Float64()*85
	var base rgb
	for k := range base {
		base[k] = level + (rng.Float64()-0.5)*30
	}
	theta := rng.Float64() * 2 * math.Pi
	amp := rng.Float64() * 40
	gx, gy := math.Cos(theta)*amp/float64(cv.w), math.Sin(theta)*amp/float64(cv.h)
	for y := range cv.h {
		for x := range cv.w {
			g := gx*float64(x-cv.w/2) + gy*float64(y-cv.h/2)
			i := 3 * (y*cv.w + x)
			for k := range 3 {
				cv.pix[i+k] = float32(base[k] + g)
			}
		}
	}
	for range 2 + rng.IntN(10) {
		cx, cy := rng.Float64()*float64(cv.w), rng.Float64()*float64(cv.h)
		rx := 20 + rng.Float64()*float64(cv.h)/2
		ry := 20 + rng.Float64()*float64(cv.h)/3
		shift := -45 + rng.Float64()*65
		c := rgb{level + shift + (rng.Float64()-0.5)*40, level + shift + (rng.Float64()-0.5)*40, level + shift + (rng.Float64()-0.5)*40}
		strength := 0.2 + rng.Float64()*0.6
		for y := max(0, int(cy-ry)); y < min(cv.h, int(cy+ry)+1); y++ {
			for x := max(0, int(cx-rx)); x < min(cv.w, int(cx+rx)+1); x++ {
				dx, dy := (float64(x)-cx)/rx, (float64(y)-cy)/ry
				d := dx*dx + dy*dy
				if d < 1 {
					cv.blend(x, y, c, strength*(1-d))
				}
			}
		}
	}
}

// drawMask composites colour c through mask m placed with its origin at off.
func (cv *canvas) drawMask(m *image.Alpha, off image.Point, c rgb) {
	for y := range m.Rect.Dy() {
		row := m.Pix[y*m.Stride:]
		for x := range m.Rect.Dx() {
			if a := row[x]; a > 0 {
				cv.blend(off.X+x, off.Y+y, c, float64(a)/255)
			}
		}
	}
}

// line draws an antialiased segment of the given thickness.
func (cv *canvas) line(x0, y0, x1, y1, thick float64, c rgb) {
	minX, maxX := int(math.Min(x0, x1)-thick-1), int(math.Max(x0, x1)+thick+1)
	minY, maxY := int(math.Min(y0, y1)-thick-1), int(math.Max(y0, y1)+thick+1)
	dx, dy := x1-x0, y1-y0
	l2 := dx*dx + dy*dy
	if l2 == 0 {
		return
	}
	// Walk the bounding box only near the segment: for long lines, iterate
	// along the major axis.
	half := thick / 2
	if math.Abs(dx) >= math.Abs(dy) {
		for x := max(minX, 0); x <= min(maxX, cv.w-1); x++ {
			t := (float64(x) + 0.5 - x0) / dx
			yc := y0 + t*dy
			for y := int(yc - thick - 1); y <= int(yc+thick+1); y++ {
				cv.blend(x, y, c, segCoverage(float64(x)+0.5, float64(y)+0.5, x0, y0, dx, dy, l2, half))
			}
		}
		return
	}
	for y := max(minY, 0); y <= min(maxY, cv.h-1); y++ {
		t := (float64(y) + 0.5 - y0) / dy
		xc := x0 + t*dx
		for x := int(xc - thick - 1); x <= int(xc+thick+1); x++ {
			cv.blend(x, y, c, segCoverage(float64(x)+0.5, float64(y)+0.5, x0, y0, dx, dy, l2, half))
		}
	}
}

func segCoverage(px, py, x0, y0, dx, dy, l2, half float64) float64 {
	t := math.Max(0, math.Min(1, ((px-x0)*dx+(py-y0)*dy)/l2))
	ex, ey := px-(x0+t*dx), py-(y0+t*dy)
	d := math.Sqrt(ex*ex + ey*ey)
	return math.Max(0, math.Min(1, half+0.5-d))
}

// dot draws an antialiased filled disc.
func (cv *canvas) dot(cx, cy, r float64, c rgb) {
	for y := int(cy - r - 1); y <= int(cy+r+1); y++ {
		for x := int(cx - r - 1); x <= int(cx+r+1); x++ {
			d := math.Hypot(float64(x)+0.5-cx, float64(y)+0.5-cy)
			cv.blend(x, y, c, r+0.5-d)
		}
	}
}

// toRGBA quantizes with uniform pixel noise of amplitude amp.
func (cv *canvas) toRGBA(rng *rand.Rand, amp float64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, cv.w, cv.h))
	var bits uint64
	nbits := 0
	for i := range cv.w * cv.h {
		for k := range 3 {
			if nbits == 0 {
				bits, nbits = rng.Uint64(), 8
			}
			n := (float64(bits&0xff)/255 - 0.5) * 2 * amp
			bits >>= 8
			nbits--
			v := float64(cv.pix[3*i+k]) + n
			img.Pix[4*i+k] = uint8(max(0, min(255, v+0.5)))
		}
		img.Pix[4*i+3] = 255
	}
	return img
}
