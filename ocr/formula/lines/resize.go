package lines

import (
	"image"
	"math"
)

// Resize resamples to w×h with a separable triangle filter whose support
// widens with the reduction factor, so shrinking averages (like area
// interpolation) and enlarging is bilinear. Weights are 16-bit fixed point.
func Resize(g *image.Gray, w, h int) *image.Gray {
	sw, sh := g.Rect.Dx(), g.Rect.Dy()
	if w <= 0 || h <= 0 || sw == 0 || sh == 0 {
		return newGray(max(w, 0), max(h, 0))
	}
	if w == sw && h == sh {
		return ToGray(g)
	}
	hw := resampleWeights(sw, w)
	vw := resampleWeights(sh, h)
	// Horizontal pass into 32-bit rows keeps full precision for the second.
	// Every output takes the same number of taps (zero weights pad the
	// shorter windows, shifted to stay inside the row), so the inner loop
	// has a fixed length and no per-output slice.
	taps := 0
	for _, c := range hw {
		taps = max(taps, len(c.w))
	}
	starts := make([]int, w)
	wts := make([]int32, w*taps)
	for x, c := range hw {
		st := min(c.start, sw-taps)
		starts[x] = st
		copy(wts[x*taps+c.start-st:], c.w)
	}
	tmp := make([]int32, sh*w)
	for y := range sh {
		src := g.Pix[y*sw : (y+1)*sw]
		dst := tmp[y*w : (y+1)*w]
		switch taps {
		case 2:
			for x := range dst {
				p, q := src[starts[x]:][:2], wts[2*x:][:2]
				dst[x] = int32(p[0])*q[0] + int32(p[1])*q[1]
			}
		case 3:
			for x := range dst {
				p, q := src[starts[x]:][:3], wts[3*x:][:3]
				dst[x] = int32(p[0])*q[0] + int32(p[1])*q[1] + int32(p[2])*q[2]
			}
		case 4:
			for x := range dst {
				p, q := src[starts[x]:][:4], wts[4*x:][:4]
				dst[x] = int32(p[0])*q[0] + int32(p[1])*q[1] + int32(p[2])*q[2] + int32(p[3])*q[3]
			}
		default:
			for x := range dst {
				p, q := src[starts[x]:][:taps], wts[taps*x:][:taps]
				s := int32(0)
				for i, wt := range q {
					s += int32(p[i]) * wt
				}
				dst[x] = s
			}
		}
	}
	out := newGray(w, h)
	acc := make([]int64, w)
	for y, c := range vw {
		clear(acc)
		for i, wt := range c.w {
			row := tmp[(c.start+i)*w : (c.start+i+1)*w]
			for x, v := range row {
				acc[x] += int64(v) * int64(wt)
			}
		}
		o := out.Pix[y*w : (y+1)*w]
		for x, v := range acc {
			v = (v + 1<<31) >> 32
			o[x] = uint8(min(max(v, 0), 255))
		}
	}
	return out
}

type contrib struct {
	start int
	w     []int32 // sums to 1<<16
}

func resampleWeights(src, dst int) []contrib {
	scale := float64(src) / float64(dst)
	support := math.Max(1, scale)
	out := make([]contrib, dst)
	for i := range out {
		center := (float64(i)+0.5)*scale - 0.5
		lo := max(int(math.Floor(center-support))+1, 0)
		hi := min(int(math.Ceil(center+support))-1, src-1)
		if hi < lo {
			lo, hi = min(max(int(math.Round(center)), 0), src-1), min(max(int(math.Round(center)), 0), src-1)
		}
		ws := make([]float64, hi-lo+1)
		sum := 0.0
		for j := range ws {
			ws[j] = math.Max(0, 1-math.Abs(float64(lo+j)-center)/support)
			sum += ws[j]
		}
		if sum == 0 {
			ws[0], sum = 1, 1
		}
		fixed := make([]int32, len(ws))
		total := int32(0)
		for j, v := range ws {
			fixed[j] = int32(math.Round(v / sum * 65536))
			total += fixed[j]
		}
		// Put the rounding error on the largest weight so flat areas stay flat.
		big := 0
		for j := range fixed {
			if fixed[j] > fixed[big] {
				big = j
			}
		}
		fixed[big] += 65536 - total
		out[i] = contrib{start: lo, w: fixed}
	}
	return out
}
