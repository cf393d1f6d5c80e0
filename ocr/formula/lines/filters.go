package lines

import (
	"fmt"
	"image"
)

// Median applies a k×k median filter (k odd) with replicated borders, like
// OpenCV's medianBlur. k = 3 uses a separable min/max network; k = 5 a
// median-selection network on 32 pixels at once where AVX2 is available
// (build with GOEXPERIMENT=simd), about 15× faster than the fallback; larger
// k (and k = 5 elsewhere) a sliding histogram (Huang), O(k) per pixel.
func Median(g *image.Gray, k int) (*image.Gray, error) {
	switch {
	case k == 1:
		return ToGray(g), nil
	case k == 3:
		return median3(g), nil
	case k == 5:
		if out, ok := median5SIMD(g); ok {
			return out, nil
		}
		return medianHist(g, k), nil
	case k >= 3 && k%2 == 1:
		return medianHist(g, k), nil
	}
	return nil, fmt.Errorf("median filter: size %d must be odd and positive", k)
}

func sort3(a, b, c uint8) (lo, mid, hi uint8) {
	lo, hi = min(a, b), max(a, b)
	mid = max(lo, min(hi, c))
	lo, hi = min(lo, c), max(hi, c)
	return lo, mid, hi
}

func med3(a, b, c uint8) uint8 { return max(min(a, b), min(max(a, b), c)) }

// median3 uses the identity median9 = med3(max of column minima, med3 of
// column medians, min of column maxima), where each column triple is sorted
// once and shared by three neighbouring outputs.
func median3(g *image.Gray) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	out := newGray(w, h)
	if w == 0 || h == 0 {
		return out
	}
	lo := make([]uint8, w+2)
	mid := make([]uint8, w+2)
	hi := make([]uint8, w+2)
	for y := range h {
		a := g.Pix[max(y-1, 0)*w:][:w]
		b := g.Pix[y*w:][:w]
		c := g.Pix[min(y+1, h-1)*w:][:w]
		l, m, u := lo[1:w+1], mid[1:w+1], hi[1:w+1]
		for x := range w {
			l[x], m[x], u[x] = sort3(a[x], b[x], c[x])
		}
		lo[0], mid[0], hi[0] = lo[1], mid[1], hi[1]
		lo[w+1], mid[w+1], hi[w+1] = lo[w], mid[w], hi[w]
		o := out.Pix[y*w:][:w]
		for x := range o {
			maxLo := max(lo[x], lo[x+1], lo[x+2])
			medMid := med3(mid[x], mid[x+1], mid[x+2])
			minHi := min(hi[x], hi[x+1], hi[x+2])
			o[x] = med3(maxLo, medMid, minHi)
		}
	}
	return out
}

// medianHist is Huang's sliding-window median: a 256-bin histogram of the
// window is updated by one column per step and the median found by moving
// from the previous one.
func medianHist(g *image.Gray, k int) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	out := newGray(w, h)
	r := k / 2
	half := k*k/2 + 1 // the median is the half-th smallest value
	clampX := func(x int) int { return min(max(x, 0), w-1) }
	rows := make([][]uint8, k)
	for y := range h {
		for i := range k {
			yy := min(max(y-r+i, 0), h-1)
			rows[i] = g.Pix[yy*w : (yy+1)*w]
		}
		var hist [256]int
		for dx := -r; dx <= r; dx++ {
			x := clampX(dx)
			for _, row := range rows {
				hist[row[x]]++
			}
		}
		// m is the median and below the count of values < m.
		m, below := 0, 0
		for below+hist[m] < half {
			below += hist[m]
			m++
		}
		out.Pix[y*w] = uint8(m)
		for x := 1; x < w; x++ {
			xo, xi := clampX(x-r-1), clampX(x+r)
			for _, row := range rows {
				vo, vi := row[xo], row[xi]
				hist[vo]--
				if int(vo) < m {
					below--
				}
				hist[vi]++
				if int(vi) < m {
					below++
				}
			}
			for below+hist[m] < half {
				below += hist[m]
				m++
			}
			for below >= half {
				m--
				below -= hist[m]
			}
			out.Pix[y*w+x] = uint8(m)
		}
	}
	return out
}

// Erode is a grayscale erosion (minimum) over a kw×kh rectangle anchored at
// its centre (kw/2, kh/2); pixels outside the image are ignored, as with
// OpenCV's default border for morphology.
func Erode(g *image.Gray, kw, kh int) *image.Gray { return morph(g, kw, kh, false) }

// Dilate is the maximum counterpart of Erode.
func Dilate(g *image.Gray, kw, kh int) *image.Gray { return morph(g, kw, kh, true) }

// Open is erosion then dilation: on dark text over a light background it
// fills light gaps narrower than the kernel, joining a line's characters.
func Open(g *image.Gray, kw, kh int) *image.Gray {
	return Dilate(Erode(g, kw, kh), kw, kh)
}

// Close is dilation then erosion: it removes dark structures that the kernel
// does not fit in, such as thin noise lines and specks.
func Close(g *image.Gray, kw, kh int) *image.Gray {
	return Erode(Dilate(g, kw, kh), kw, kh)
}

func morph(g *image.Gray, kw, kh int, isMax bool) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	kw, kh = max(kw, 1), max(kh, 1)
	tmp := newGray(w, h)
	neutral := uint8(255)
	if isMax {
		neutral = 0
	}
	// Horizontal pass: van Herk / Gil-Werman, three comparisons per pixel
	// whatever kw is.
	ext := make([]uint8, w+kw-1)
	pre := make([]uint8, len(ext))
	suf := make([]uint8, len(ext))
	a := kw / 2
	for y := range h {
		row := g.Pix[y*w : (y+1)*w]
		if kw == 1 {
			copy(tmp.Pix[y*w:], row)
			continue
		}
		for i := range a {
			ext[i] = neutral
		}
		copy(ext[a:], row)
		for i := a + w; i < len(ext); i++ {
			ext[i] = neutral
		}
		if hasAVX2 {
			windowOp(ext, pre, suf, kw, tmp.Pix[y*w:(y+1)*w], isMax)
		} else {
			vhgw(ext, pre, suf, kw, tmp.Pix[y*w:(y+1)*w], isMax)
		}
	}
	if kh == 1 {
		return tmp
	}
	if kh > 4 {
		return morphVertical(tmp, kh, isMax, neutral)
	}
	// Vertical pass, row at a time so the inner loop runs over contiguous
	// memory; for small kh O(kh) per pixel beats van Herk's three passes.
	out := newGray(w, h)
	b := kh / 2
	for y := range h {
		o := out.Pix[y*w : (y+1)*w]
		y0, y1 := max(y-b, 0), min(y-b+kh, h)
		copy(o, tmp.Pix[y0*w:(y0+1)*w])
		for yy := y0 + 1; yy < y1; yy++ {
			r := tmp.Pix[yy*w : (yy+1)*w]
			x0 := minMaxRowVec(o, o, r, isMax)
			o, r := o[x0:], r[x0:]
			if isMax {
				for x := range o {
					o[x] = max(o[x], r[x])
				}
			} else {
				for x := range o {
					o[x] = min(o[x], r[x])
				}
			}
		}
	}
	return out
}

// vhgw computes out[i] = op(ext[i : i+k]) for every i < len(out) with
// per-block prefix and suffix extrema: out[i] = op(suf[i], pre[i+k-1]).
func vhgw(ext, pre, suf []uint8, k int, out []uint8, isMax bool) {
	n := len(ext)
	for s := 0; s < n; s += k {
		e := min(s+k, n)
		pre[s] = ext[s]
		suf[e-1] = ext[e-1]
		if isMax {
			for i := s + 1; i < e; i++ {
				pre[i] = max(pre[i-1], ext[i])
			}
			for i := e - 2; i >= s; i-- {
				suf[i] = max(suf[i+1], ext[i])
			}
		} else {
			for i := s + 1; i < e; i++ {
				pre[i] = min(pre[i-1], ext[i])
			}
			for i := e - 2; i >= s; i-- {
				suf[i] = min(suf[i+1], ext[i])
			}
		}
	}
	pre = pre[k-1:]
	if isMax {
		for i := range out {
			out[i] = max(suf[i], pre[i])
		}
	} else {
		for i := range out {
			out[i] = min(suf[i], pre[i])
		}
	}
}

// windowOp is vhgw by doubling, for vector units: windows of 2, 4, 8, …
// elements are op of two windows half as wide, and the k-wide window is op
// of two overlapping power-of-two windows (min and max are idempotent).
// a and b are scratch as long as ext.
func windowOp(ext, a, b []uint8, k int, out []uint8, isMax bool) {
	cur, n := ext, len(ext)
	p := 1
	for 2*p <= k {
		shiftOp(a[:n-p], cur, p, isMax)
		cur, a, b = a[:n-p], b, a
		n -= p
		p *= 2
	}
	shiftOp(out, cur, k-p, isMax)
}

// shiftOp sets dst[i] = op(a[i], a[i+s]).
func shiftOp(dst, a []uint8, s int, isMax bool) {
	if s == 0 {
		copy(dst, a)
		return
	}
	i := shiftOpVec(dst, a, s, isMax)
	if isMax {
		for ; i < len(dst); i++ {
			dst[i] = max(a[i], a[i+s])
		}
	} else {
		for ; i < len(dst); i++ {
			dst[i] = min(a[i], a[i+s])
		}
	}
}

// FlattenBackground returns 255 - (Close(g, k, k) - g): the closing is the
// background with dark strokes thinner than k removed, so the difference is
// the strokes alone on a flat white background.
func FlattenBackground(g *image.Gray, k int) *image.Gray {
	bg := Close(g, k, k)
	for i, v := range g.Pix {
		bg.Pix[i] = 255 - (bg.Pix[i] - v) // closing ≥ image, no underflow
	}
	return bg
}

// morphVertical is van Herk / Gil-Werman down the columns, a whole row at a
// time: rows are extended by kh/2 neutral rows above and the rest below,
// cut into blocks of kh, and each output row is op(suffix extremum of its
// block, prefix extremum of the next), three row operations per row
// whatever kh (the flatten stage's closing is 15 high).
func morphVertical(g *image.Gray, kh int, isMax bool, neutral uint8) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	b := kh / 2
	n := h + kh - 1
	blank := make([]uint8, w)
	for i := range blank {
		blank[i] = neutral
	}
	row := func(e int) []uint8 {
		if y := e - b; y >= 0 && y < h {
			return g.Pix[y*w : (y+1)*w]
		}
		return blank
	}
	op := func(dst, a, c []uint8) {
		x0 := minMaxRowVec(dst, a, c, isMax)
		dst, a, c = dst[x0:], a[x0:], c[x0:]
		if isMax {
			for x := range dst {
				dst[x] = max(a[x], c[x])
			}
		} else {
			for x := range dst {
				dst[x] = min(a[x], c[x])
			}
		}
	}
	pre := make([]uint8, n*w)
	suf := make([]uint8, n*w)
	at := func(buf []uint8, e int) []uint8 { return buf[e*w : (e+1)*w] }
	for s := 0; s < n; s += kh {
		e := min(s+kh, n)
		copy(at(pre, s), row(s))
		for i := s + 1; i < e; i++ {
			op(at(pre, i), at(pre, i-1), row(i))
		}
		copy(at(suf, e-1), row(e-1))
		for i := e - 2; i >= s; i-- {
			op(at(suf, i), at(suf, i+1), row(i))
		}
	}
	out := newGray(w, h)
	for y := range h {
		op(out.Pix[y*w:(y+1)*w], at(suf, y), at(pre, y+kh-1))
	}
	return out
}
