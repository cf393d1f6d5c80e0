package lines

import (
	"image"
	"image/color"
	"image/draw"
	"sync"

	"github.com/dl4img/dl4img/internal/imagefile"
)

// The stages below work on compact 8-bit images: Rect at the origin and
// Stride equal to the width, so rows are contiguous and loops index Pix
// directly.

func newGray(w, h int) *image.Gray { return image.NewGray(image.Rect(0, 0, w, h)) }

// grayOn is a compact w×h image on buf's storage, or a new one when buf is
// too small. Its pixels are whatever buf held.
func grayOn(buf []uint8, w, h int) *image.Gray {
	if cap(buf) < w*h {
		return newGray(w, h)
	}
	return &image.Gray{Pix: buf[:w*h], Stride: w, Rect: image.Rect(0, 0, w, h)}
}

// pixPool recycles the full-resolution gray and median buffers of
// ExtractLines (megabytes per image): fresh ones cost page faults and
// clearing on every image.
var pixPool sync.Pool

func getPix() []uint8 {
	if b, ok := pixPool.Get().(*[]uint8); ok {
		return *b
	}
	return nil
}

func putPix(b []uint8) {
	if b != nil {
		pixPool.Put(&b)
	}
}

// ToGray converts any image to a compact gray image with imagefile.Luma
// (image/color's weights, ITU-R BT.601), alpha composited over white, with
// fast paths for the types decoders return: the gray values
// imagefile.ReadGray's PNG fast path gives.
func ToGray(img image.Image) *image.Gray { return toGrayInto(img, nil) }

// toGrayInto is ToGray writing into buf's storage when it is large enough
// (every pixel is written, so buf need not be clear).
func toGrayInto(img image.Image, buf []uint8) *image.Gray {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	g := grayOn(buf, w, h)
	switch src := img.(type) {
	case *image.Gray:
		for y := range h {
			copy(g.Pix[y*w:(y+1)*w], src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):])
		}
	case *image.RGBA:
		for y := range h {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			out := g.Pix[y*w : (y+1)*w]
			for x := grayRGBAVec(out, row[:4*w]); x < w; x++ {
				p := row[4*x : 4*x+3 : 4*x+3]
				out[x] = imagefile.Luma(p[0], p[1], p[2])
			}
		}
	case *image.NRGBA:
		// Opaque PNGs decode as RGBA; NRGBA means real alpha, which we
		// composite over white like a viewer would.
		for y := range h {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			out := g.Pix[y*w : (y+1)*w]
			for x := range out {
				p := row[4*x : 4*x+4 : 4*x+4]
				l := uint32(imagefile.Luma(p[0], p[1], p[2]))
				a := uint32(p[3])
				out[x] = uint8((l*a + 255*(255-a) + 127) / 255)
			}
		}
	case *image.YCbCr:
		for y := range h {
			copy(g.Pix[y*w:(y+1)*w], src.Y[src.YOffset(b.Min.X, b.Min.Y+y):])
		}
	default:
		gw := &image.Gray{Pix: g.Pix, Stride: w, Rect: image.Rect(b.Min.X, b.Min.Y, b.Max.X, b.Max.Y)}
		draw.Draw(gw, gw.Rect, &image.Uniform{C: color.White}, image.Point{}, draw.Src)
		draw.Draw(gw, gw.Rect, img, b.Min, draw.Over)
	}
	return g
}

// Histogram counts the pixel values of a compact gray image.
func Histogram(g *image.Gray) [256]int {
	// Four sub-histograms break the store-to-load dependency when
	// neighbouring pixels share a value, which is the common case here.
	var h [4][256]int
	p := g.Pix
	n := len(p) &^ 3
	for i := 0; i < n; i += 4 {
		h[0][p[i]]++
		h[1][p[i+1]]++
		h[2][p[i+2]]++
		h[3][p[i+3]]++
	}
	for _, v := range p[n:] {
		h[0][v]++
	}
	var out [256]int
	for i := range out {
		out[i] = h[0][i] + h[1][i] + h[2][i] + h[3][i]
	}
	return out
}

// EqualizeLUT is the histogram-equalization mapping, as OpenCV's
// equalizeHist computes it: lut[v] = round((cdf(v)-cdf_min)*255/(n-cdf_min)).
func EqualizeLUT(hist [256]int) [256]uint8 {
	var lut [256]uint8
	total, cdfMin := 0, -1
	for _, c := range hist {
		total += c
		if c > 0 && cdfMin < 0 {
			cdfMin = c
		}
	}
	if total == cdfMin || cdfMin < 0 {
		// A flat image: keep it as it is.
		for i := range lut {
			lut[i] = uint8(i)
		}
		return lut
	}
	cdf := 0
	den := total - cdfMin
	for i, c := range hist {
		cdf += c
		v := (cdf - cdfMin) * 255
		lut[i] = uint8(max(0, (v+den/2)/den))
	}
	return lut
}

// ApplyLUT maps every pixel through lut into a new image.
func ApplyLUT(g *image.Gray, lut *[256]uint8) *image.Gray {
	out := newGray(g.Rect.Dx(), g.Rect.Dy())
	for i, v := range g.Pix {
		out.Pix[i] = lut[v]
	}
	return out
}

// Equalize is histogram equalization.
func Equalize(g *image.Gray) *image.Gray {
	lut := EqualizeLUT(Histogram(g))
	return ApplyLUT(g, &lut)
}

// Downscale shrinks by an integer factor, averaging each f×f block (OpenCV's
// INTER_AREA for integer factors); partial blocks at the right and bottom
// edges average the pixels they have. lut, if not nil, maps pixels first,
// which fuses a LUT stage into this pass.
func Downscale(g *image.Gray, f int, lut *[256]uint8) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	dw, dh := (w+f-1)/f, (h+f-1)/f
	out := newGray(dw, dh)
	sums := make([]uint32, dw)
	for dy := range dh {
		clear(sums)
		y0, y1 := dy*f, min(dy*f+f, h)
		orow := out.Pix[dy*dw : (dy+1)*dw]
		// The vector kernel does the full 4×4 blocks of the common case.
		done := 0
		if f == 4 && lut == nil && y1-y0 == 4 {
			done = downscale4Vec(orow[:w/4], g.Pix[y0*w:(y0+1)*w], g.Pix[(y0+1)*w:(y0+2)*w], g.Pix[(y0+2)*w:(y0+3)*w], g.Pix[(y0+3)*w:(y0+4)*w])
		}
		for y := y0; y < y1; y++ {
			row := g.Pix[y*w : (y+1)*w]
			for dx := done; dx < dw; dx++ {
				blk := row[dx*f : min(dx*f+f, w)]
				s := uint32(0)
				if lut != nil {
					for _, v := range blk {
						s += uint32(lut[v])
					}
				} else {
					for _, v := range blk {
						s += uint32(v)
					}
				}
				sums[dx] += s
			}
		}
		rows := uint32(y1 - y0)
		for dx := done; dx < dw; dx++ {
			n := rows * uint32(min(dx*f+f, w)-dx*f)
			orow[dx] = uint8((sums[dx] + n/2) / n)
		}
	}
	return out
}

// UpscaleNearest enlarges by an integer factor f by pixel replication and
// crops to w×h.
func UpscaleNearest(g *image.Gray, f, w, h int) *image.Gray {
	out := newGray(w, h)
	sw := g.Rect.Dx()
	for y := range h {
		srow := g.Pix[(y/f)*sw:]
		orow := out.Pix[y*w : (y+1)*w]
		for x := range orow {
			orow[x] = srow[x/f]
		}
	}
	return out
}

// Otsu returns the threshold t that maximizes the between-class variance of
// {v ≤ t} and {v > t}.
func Otsu(hist [256]int) uint8 {
	total, sum := 0, 0.0
	for i, c := range hist {
		total += c
		sum += float64(i) * float64(c)
	}
	best, bestT := -1.0, 0
	w0, sum0 := 0, 0.0
	for t, c := range hist {
		w0 += c
		if w0 == 0 {
			continue
		}
		w1 := total - w0
		if w1 == 0 {
			break
		}
		sum0 += float64(t) * float64(c)
		m0 := sum0 / float64(w0)
		m1 := (sum - sum0) / float64(w1)
		v := float64(w0) * float64(w1) * (m0 - m1) * (m0 - m1)
		if v > best {
			best, bestT = v, t
		}
	}
	return uint8(bestT)
}

// ThresholdInv marks dark pixels (v ≤ t) as 255 and the rest as 0: text is
// dark, and the mask has it as foreground.
func ThresholdInv(g *image.Gray, t uint8) *image.Gray {
	out := newGray(g.Rect.Dx(), g.Rect.Dy())
	for i, v := range g.Pix {
		if v <= t {
			out.Pix[i] = 255
		}
	}
	return out
}

// BackgroundThreshold is for light images with little dark content: the
// background level is the histogram's mode and its spread the distance from
// the mode down to the 25th percentile (text covers far less than a quarter
// of the image). The threshold is max(MinContrast, 4*spread) below the mode.
func BackgroundThreshold(hist [256]int, minContrast int) uint8 {
	mode, total := 0, 0
	for v, c := range hist {
		total += c
		if c > hist[mode] {
			mode = v
		}
	}
	p25, acc := 0, 0
	for v, c := range hist {
		acc += c
		if 4*acc >= total {
			p25 = v
			break
		}
	}
	spread := max(mode-p25, 0)
	return uint8(max(mode-max(minContrast, 4*spread), 0))
}
