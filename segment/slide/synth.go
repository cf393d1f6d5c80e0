package slide

import "math"

// synth is the pure per-pixel model of a synthetic H&E slide. All shapes scale
// with the slide size except nuclei, which have real-cell sizes (a few pixels
// at level 0, like a 40x scan seen at 4x less).
type synth struct {
	w, h             int64
	seed             uint64
	tissueP, holeP   int64 // periods of the tissue outline and hole noise
	tumourP          int64
	tissueThr        float64
	holeThr          float64
	tumourThr        float64
	edge             float64 // border band (pixels) where tissue fades out
	normalS, tumourS int64   // nucleus grid spacing
}

const (
	latticeStep = 8  // fields are sampled every 8 pixels and interpolated
	nucMargin   = 16 // nuclei centred this far outside a tile still reach into it
)

func newSynth(w, h int, seed int64, tumour float64) *synth {
	side := int64(max(w, h))
	tp := max(side/3, 64)
	s := &synth{
		w: int64(w), h: int64(h), seed: uint64(seed),
		tissueP: tp, holeP: max(tp/10, 32), tumourP: max(tp*2/3, 48),
		tissueThr: 0.47, holeThr: 0.73,
		edge:    0.08 * float64(min(w, h)),
		normalS: 14, tumourS: 9,
	}
	// tumour is the share of tissue to cover with tumour; map it onto a
	// threshold of smooth noise whose values cluster around 0.5.
	s.tumourThr = 0.5 + (0.5-tumour)*0.4
	return s
}

// fields at a lattice point: tissue score, hole score, tumour score.
func (s *synth) lattice(x, y int64) (t, ho, tu float64) {
	t = fbm(s.seed^0x1, x, y, s.tissueP, 4)
	xf, yf := float64(x), float64(y)
	d := math.Min(math.Min(xf, float64(s.w)-xf), math.Min(yf, float64(s.h)-yf))
	if e := d / s.edge; e < 1 {
		t -= 0.3 * (1 - math.Max(e, 0))
	}
	ho = fbm(s.seed^0x2, x, y, s.holeP, 2)
	tu = fbm(s.seed^0x3, x, y, s.tumourP, 3)
	return
}

// fieldTile caches lattice samples covering a rectangle of the slide.
type fieldTile struct {
	gx0, gy0, gw, gh int64
	v                [][3]float64
}

func (s *synth) fields(x0, y0, x1, y1 int64) *fieldTile {
	gx0, gy0 := floorDiv(x0, latticeStep), floorDiv(y0, latticeStep)
	gx1, gy1 := floorDiv(x1, latticeStep)+1, floorDiv(y1, latticeStep)+1
	f := &fieldTile{gx0: gx0, gy0: gy0, gw: gx1 - gx0 + 1, gh: gy1 - gy0 + 1}
	f.v = make([][3]float64, f.gw*f.gh)
	for gy := gy0; gy <= gy1; gy++ {
		for gx := gx0; gx <= gx1; gx++ {
			t, ho, tu := s.lattice(gx*latticeStep, gy*latticeStep)
			f.v[(gy-gy0)*f.gw+gx-gx0] = [3]float64{t, ho, tu}
		}
	}
	return f
}

// class of pixel (x, y): 0 background (glass or hole), 1 normal tissue,
// 2 tumour. The ground-truth mask is exactly class == 2.
func (s *synth) class(f *fieldTile, x, y int64) uint8 {
	if x < 0 || y < 0 || x >= s.w || y >= s.h {
		return 0
	}
	gx, gy := floorDiv(x, latticeStep), floorDiv(y, latticeStep)
	fx := float64(x-gx*latticeStep) / latticeStep
	fy := float64(y-gy*latticeStep) / latticeStep
	i := (gy-f.gy0)*f.gw + gx - f.gx0
	a, b, c, d := &f.v[i], &f.v[i+1], &f.v[i+f.gw], &f.v[i+f.gw+1]
	lerp := func(k int) float64 {
		top := a[k] + (b[k]-a[k])*fx
		bot := c[k] + (d[k]-c[k])*fx
		return top + (bot-top)*fy
	}
	if lerp(0) < s.tissueThr || lerp(1) > s.holeThr {
		return 0
	}
	if lerp(2) > s.tumourThr {
		return 2
	}
	return 1
}

// render draws the slide rectangle [x0,x0+w)×[y0,y0+h) into rgb (3 bytes per
// pixel, stride 3w) and its ground truth into mask (0 or 255, stride w).
func (s *synth) render(x0, y0 int64, w, h int, rgb, mask []byte) {
	x1, y1 := x0+int64(w), y0+int64(h)
	f := s.fields(x0-nucMargin, y0-nucMargin, x1+nucMargin, y1+nucMargin)
	cls := make([]uint8, w*h)
	for j := 0; j < h; j++ {
		y := y0 + int64(j)
		for i := 0; i < w; i++ {
			x := x0 + int64(i)
			c := s.class(f, x, y)
			cls[j*w+i] = c
			if c == 2 {
				mask[j*w+i] = 255
			} else {
				mask[j*w+i] = 0
			}
			g := unit(hash3(s.seed^0x55, x, y)) - 0.5 // grain
			p := rgb[3*(j*w+i):]
			if c == 0 {
				p[0], p[1], p[2] = to8(243+4*g), to8(242+4*g), to8(245+4*g)
				continue
			}
			// Eosin-stained stroma: wavy fibres of light and deep pink.
			tex := valueNoise(s.seed^0x66, x+int64(8*valueNoise(s.seed^0x67, x, y, 40)), y, 10)
			tex = 0.6*tex + 0.4*valueNoise(s.seed^0x68, x, y, 37)
			r, gg, b := mix3(246, 200, 224, 220, 138, 184, tex)
			if c == 2 { // crowded tumour stroma is more basophilic
				r, gg, b = mix3(r, gg, b, 200, 140, 200, 0.45)
			}
			p[0], p[1], p[2] = to8(r+10*g), to8(gg+10*g), to8(b+10*g)
		}
	}
	s.nuclei(f, x0, y0, w, h, cls, rgb, s.normalS, 1)
	s.nuclei(f, x0, y0, w, h, cls, rgb, s.tumourS, 2)
}

// nuclei draws haematoxylin-stained nuclei from a jittered grid of spacing sp
// whose centres fall in tissue of class want.
func (s *synth) nuclei(f *fieldTile, x0, y0 int64, w, h int, cls []uint8, rgb []byte, sp int64, want uint8) {
	tumour := want == 2
	cx0, cy0 := floorDiv(x0-nucMargin, sp), floorDiv(y0-nucMargin, sp)
	cx1, cy1 := floorDiv(x0+int64(w)+nucMargin, sp), floorDiv(y0+int64(h)+nucMargin, sp)
	salt := uint64(0x70) + uint64(want)
	for cy := cy0; cy <= cy1; cy++ {
		for cx := cx0; cx <= cx1; cx++ {
			hv := hash3(s.seed^salt, cx, cy)
			u := func(k uint) float64 { return unit(hash3(hv, int64(k), 7)) }
			presence := 0.75
			if tumour {
				presence = 0.93
			}
			if u(0) > presence {
				continue
			}
			nx := cx*sp + int64(u(1)*float64(sp))
			ny := cy*sp + int64(u(2)*float64(sp))
			if nx < x0-nucMargin || ny < y0-nucMargin || nx >= x0+int64(w)+nucMargin ||
				ny >= y0+int64(h)+nucMargin || s.class(f, nx, ny) != want {
				continue
			}
			// Normal nuclei are small and round-ish; tumour nuclei large,
			// irregular and dark.
			ra, rb := 2.2+1.6*u(3), 1.6+1.2*u(4)
			dark := 0.75 + 0.2*u(5)
			if tumour {
				ra, rb = 4.0+2.5*u(3), 3.0+2.0*u(4)
				dark = 0.9 + 0.1*u(5)
			}
			ang := math.Pi * u(6)
			ca, sa := math.Cos(ang), math.Sin(ang)
			rr := int64(math.Ceil(ra)) + 1
			for py := max(ny-rr, y0); py <= min(ny+rr, y0+int64(h)-1); py++ {
				for px := max(nx-rr, x0); px <= min(nx+rr, x0+int64(w)-1); px++ {
					li := int(py-y0)*w + int(px-x0)
					if cls[li] == 0 {
						continue
					}
					dx, dy := float64(px-nx), float64(py-ny)
					e1, e2 := (dx*ca+dy*sa)/ra, (-dx*sa+dy*ca)/rb
					d := e1*e1 + e2*e2
					if d >= 1 {
						continue
					}
					// Soft rim and chromatin grain.
					a := dark * (1 - smooth(math.Max(0, (d-0.6)/0.4)))
					chrom := unit(hash3(hv, px, py))
					nr, ng, nb := 95-30*chrom, 55-25*chrom, 150-30*chrom
					if tumour {
						nr, ng, nb = nr-25, ng-15, nb-25
					}
					p := rgb[3*li:]
					p[0] = to8(float64(p[0])*(1-a) + nr*a)
					p[1] = to8(float64(p[1])*(1-a) + ng*a)
					p[2] = to8(float64(p[2])*(1-a) + nb*a)
				}
			}
		}
	}
}

func mix3(r0, g0, b0, r1, g1, b1, t float64) (float64, float64, float64) {
	return r0 + (r1-r0)*t, g0 + (g1-g0)*t, b0 + (b1-b0)*t
}

func to8(v float64) byte {
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return byte(v + 0.5)
}
