package slide

import (
	"fmt"
	"image"
)

// TissueOptions tunes tissue detection.
type TissueOptions struct {
	// MinSide picks the level to analyse: the lowest resolution whose longer
	// side is at least MinSide pixels (default 2048).
	MinSide int
	// MinSaturation is a floor on the Otsu threshold (0–255, default 20), so a
	// slide that is all glass or all tissue is not split at noise level.
	MinSaturation uint8
	// CloseRadius and OpenRadius are the half-widths of the square structuring
	// elements, in analysed-level pixels (default 2 and 2; -1 disables).
	CloseRadius, OpenRadius int
}

// TissueMap is a binary tissue mask at a low-resolution level, with a
// summed-area table for O(1) tissue fractions of any rectangle.
type TissueMap struct {
	Level     int         // slide level analysed
	Mask      *image.Gray // 255 = tissue, in that level's pixels
	Threshold uint8       // saturation threshold used (after the floor)
	fx, fy    float64     // level-0 pixels per mask pixel
	sum       []int32     // (w+1)×(h+1) summed-area table of tissue pixels
}

// DetectTissue thresholds HSV saturation (Otsu) at a low-resolution level and
// cleans the result with a morphological closing then opening.
func DetectTissue(s *Slide, o TissueOptions) (*TissueMap, error) {
	if o.MinSide == 0 {
		o.MinSide = 2048
	}
	if o.MinSaturation == 0 {
		o.MinSaturation = 20
	}
	if o.CloseRadius == 0 {
		o.CloseRadius = 2
	}
	if o.OpenRadius == 0 {
		o.OpenRadius = 2
	}
	lvl := s.BestLevel(o.MinSide)
	img, err := s.ReadRegion(lvl, s.Bounds(lvl))
	if err != nil {
		return nil, fmt.Errorf("tissue: %w", err)
	}
	sat := saturation(img)
	var hist [256]int
	for i, v := range sat.Pix {
		if img.Pix[4*i+3] != 0 { // transparent pixels are not slide
			hist[v]++
		}
	}
	t := max(otsu(hist[:]), o.MinSaturation)
	for i, v := range sat.Pix {
		if v > t && img.Pix[4*i+3] != 0 {
			sat.Pix[i] = 255
		} else {
			sat.Pix[i] = 0
		}
	}
	if o.CloseRadius > 0 {
		morph(sat, o.CloseRadius, true)
		morph(sat, o.CloseRadius, false)
	}
	if o.OpenRadius > 0 {
		morph(sat, o.OpenRadius, false)
		morph(sat, o.OpenRadius, true)
	}
	fx, fy := s.Downsample(lvl)
	return newTissueMap(lvl, sat, t, fx, fy), nil
}

func newTissueMap(lvl int, m *image.Gray, t uint8, fx, fy float64) *TissueMap {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	sum := make([]int32, (w+1)*(h+1))
	for y := 0; y < h; y++ {
		var row int32
		for x := 0; x < w; x++ {
			if m.Pix[y*m.Stride+x] != 0 {
				row++
			}
			sum[(y+1)*(w+1)+x+1] = sum[y*(w+1)+x+1] + row
		}
	}
	return &TissueMap{Level: lvl, Mask: m, Threshold: t, fx: fx, fy: fy, sum: sum}
}

// Fraction is the share of tissue in the level-0 rectangle r0, measured on
// the mask pixels it touches; outside the slide counts as glass.
func (t *TissueMap) Fraction(r0 image.Rectangle) float64 {
	w, h := t.Mask.Rect.Dx(), t.Mask.Rect.Dy()
	x0, y0 := int(float64(r0.Min.X)/t.fx), int(float64(r0.Min.Y)/t.fy)
	x1, y1 := ceilF(float64(r0.Max.X)/t.fx), ceilF(float64(r0.Max.Y)/t.fy)
	x1, y1 = max(x1, x0+1), max(y1, y0+1)
	area := (x1 - x0) * (y1 - y0)
	x0, y0 = min(max(x0, 0), w), min(max(y0, 0), h)
	x1, y1 = min(max(x1, 0), w), min(max(y1, 0), h)
	n := t.sum[y1*(w+1)+x1] - t.sum[y0*(w+1)+x1] - t.sum[y1*(w+1)+x0] + t.sum[y0*(w+1)+x0]
	return float64(n) / float64(area)
}

// saturation is HSV saturation scaled to 0–255.
func saturation(img *image.NRGBA) *image.Gray {
	b := img.Rect
	out := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		row := img.Pix[y*img.Stride : y*img.Stride+4*b.Dx()]
		for x := 0; x < b.Dx(); x++ {
			r, g, bb := row[4*x], row[4*x+1], row[4*x+2]
			mx, mn := max(r, g, bb), min(r, g, bb)
			if mx > 0 {
				out.Pix[y*out.Stride+x] = uint8((int(mx-mn)*255 + int(mx)/2) / int(mx))
			}
		}
	}
	return out
}

// otsu returns the threshold t maximizing between-class variance of the
// classes ≤ t and > t.
func otsu(hist []int) uint8 {
	total, sumAll := 0, 0.0
	for i, c := range hist {
		total += c
		sumAll += float64(i * c)
	}
	if total == 0 {
		return 0
	}
	var best float64
	var bestT int
	wB, sumB := 0, 0.0
	for t, c := range hist {
		wB += c
		if wB == 0 {
			continue
		}
		wF := total - wB
		if wF == 0 {
			break
		}
		sumB += float64(t * c)
		mB, mF := sumB/float64(wB), (sumAll-sumB)/float64(wF)
		v := float64(wB) * float64(wF) * (mB - mF) * (mB - mF)
		if v > best {
			best, bestT = v, t
		}
	}
	return uint8(bestT)
}

// morph dilates (or erodes) a binary image in place with a (2r+1)² square,
// as two separable running-count passes. Outside the image is ignored (the
// window is clipped), so borders neither grow nor eat tissue.
func morph(m *image.Gray, r int, dilate bool) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	line := make([]uint8, max(w, h))
	out := make([]uint8, max(w, h))
	pass := func(in []uint8) {
		n := len(in)
		cnt := 0
		for i := 0; i < min(r, n); i++ {
			if in[i] != 0 {
				cnt++
			}
		}
		for i := 0; i < n; i++ {
			if j := i + r; j < n && in[j] != 0 {
				cnt++
			}
			if j := i - r - 1; j >= 0 && in[j] != 0 {
				cnt--
			}
			full := min(i+r, n-1) - max(i-r, 0) + 1
			if dilate && cnt > 0 || !dilate && cnt == full {
				out[i] = 255
			} else {
				out[i] = 0
			}
		}
	}
	for y := 0; y < h; y++ {
		row := m.Pix[y*m.Stride : y*m.Stride+w]
		pass(row)
		copy(row, out[:w])
	}
	for x := 0; x < w; x++ {
		for y := 0; y < h; y++ {
			line[y] = m.Pix[y*m.Stride+x]
		}
		pass(line[:h])
		for y := 0; y < h; y++ {
			m.Pix[y*m.Stride+x] = out[y]
		}
	}
}
