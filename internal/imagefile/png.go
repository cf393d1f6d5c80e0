package imagefile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	_ "image/jpeg" // the other files the fallback reads
	_ "image/png"
	"io"
	"os"
	"sync"

	"github.com/dl4img/dl4img/internal/imagefile/inflate"
)

// The formula extractor spent more time decoding its input PNGs than
// processing them: image/png inflates with compress/flate, then converts
// every pixel into an RGBA/NRGBA image that the caller immediately turns
// to gray. decodePNGGray handles the PNGs the generator and common tools
// write (8-bit, non-interlaced gray, gray+alpha, RGB, RGBA) by inflating
// all the pixel data at once with package inflate (twice
// klauspost/compress's speed on these literal-heavy streams) and
// unfiltering and converting each row straight to gray. Anything else falls
// back to image.Decode, so the gray values are always those of converting
// image.Decode's result with Luma (alpha composited over white).

// errPNGFallback marks a valid-looking PNG the fast path does not handle.
var errPNGFallback = errors.New("png: not handled by the fast path")

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// ReadGray reads an image file for a caller that turns it gray: PNGs the
// fast path handles come back as *image.Gray, everything else as
// image.Decode returns it (converting that with Luma gives the same gray
// values).
func ReadGray(path string) (image.Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	img, err := DecodeGray(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

// DecodeGray is ReadGray of a file's bytes.
func DecodeGray(data []byte) (image.Image, error) {
	if bytes.HasPrefix(data, pngSignature) {
		g, err := decodePNGGray(data)
		if err == nil {
			return g, nil
		}
		if !errors.Is(err, errPNGFallback) {
			return nil, err
		}
	}
	img, _, err := Decode(bytes.NewReader(data))
	return img, err
}

// PNG color types (PNG spec 11.2.2) the fast path converts.
const (
	pngGray      = 0
	pngRGB       = 2
	pngGrayAlpha = 4
	pngRGBA      = 6
)

// pngScratch is decodePNGGray's reusable state: the concatenated IDAT data
// and the inflated rows (megabytes per image), and a zero row.
type pngScratch struct {
	idat []byte
	raw  []byte
	zero []byte // never written: the row above the first
}

var pngScratchPool = sync.Pool{New: func() any { return new(pngScratch) }}

// decodePNGGray decodes an 8-bit non-interlaced gray/gray+alpha/RGB/RGBA
// PNG to gray as Luma converts image/png's result. It returns errPNGFallback for
// other PNGs and a descriptive error for corrupt ones.
func decodePNGGray(data []byte) (*image.Gray, error) {
	if !bytes.HasPrefix(data, pngSignature) {
		return nil, errors.New("png: not a PNG file")
	}
	rest := data[len(pngSignature):]
	sc := pngScratchPool.Get().(*pngScratch)
	defer pngScratchPool.Put(sc)
	var (
		w, h, bpp  int
		colorType  byte
		idat       []byte
		idatChunks int
		idatDone   bool // a non-IDAT chunk followed the IDAT run
		seenIEND   bool
	)
	for first := true; len(rest) > 0 && !seenIEND; first = false {
		if len(rest) < 12 {
			return nil, fmt.Errorf("png: truncated chunk header (%d bytes left)", len(rest))
		}
		n := binary.BigEndian.Uint32(rest[:4])
		if n > 0x7fffffff || uint64(n)+12 > uint64(len(rest)) {
			return nil, fmt.Errorf("png: chunk length %d exceeds the %d bytes left", n, len(rest)-12)
		}
		typ := string(rest[4:8])
		body := rest[8 : 8+n]
		// CRC checking costs little next to inflating, and keeps corrupt
		// files failing as they do with image/png.
		if crc32.ChecksumIEEE(rest[4:8+n]) != binary.BigEndian.Uint32(rest[8+n:12+n]) {
			return nil, fmt.Errorf("png: %s chunk checksum mismatch", typ)
		}
		rest = rest[12+n:]
		if first != (typ == "IHDR") {
			if first {
				return nil, fmt.Errorf("png: first chunk is %q, not IHDR", typ)
			}
			return nil, errors.New("png: repeated IHDR chunk")
		}
		switch typ {
		case "IHDR":
			if n != 13 {
				return nil, fmt.Errorf("png: IHDR chunk length %d, want 13", n)
			}
			w32, h32 := binary.BigEndian.Uint32(body[0:4]), binary.BigEndian.Uint32(body[4:8])
			depth, ct, comp, filt, interlace := body[8], body[9], body[10], body[11], body[12]
			if w32 == 0 || h32 == 0 || w32 > 1<<24 || h32 > 1<<24 {
				// Odd sizes: let image/png apply its own rules.
				return nil, errPNGFallback
			}
			if err := CheckSize(int(w32), int(h32)); err != nil {
				return nil, fmt.Errorf("png: %w", err)
			}
			if depth != 8 || comp != 0 || filt != 0 || interlace != 0 {
				return nil, errPNGFallback
			}
			switch ct {
			case pngGray:
				bpp = 1
			case pngGrayAlpha:
				bpp = 2
			case pngRGB:
				bpp = 3
			case pngRGBA:
				bpp = 4
			default:
				return nil, errPNGFallback
			}
			w, h, colorType = int(w32), int(h32), ct
		case "IDAT":
			if idatDone {
				return nil, errPNGFallback
			}
			idatChunks++
			switch idatChunks {
			case 1:
				idat = body // a single-IDAT file needs no copy
			case 2:
				// The IDAT data left cannot exceed the file left: one
				// buffer, no regrowing (image/png's encoder writes 8 KiB
				// chunks, hundreds per scan).
				need := len(idat) + len(body) + len(rest)
				if cap(sc.idat) < need {
					sc.idat = make([]byte, 0, need)
				}
				idat = append(append(sc.idat[:0], idat...), body...)
			default:
				idat = append(idat, body...)
			}
		case "tRNS":
			// Turns gray/RGB into NRGBA in image/png: rare, leave it there.
			return nil, errPNGFallback
		case "IEND":
			seenIEND = true
		}
		if typ != "IDAT" && idatChunks > 0 {
			idatDone = true
		}
	}
	if !seenIEND {
		return nil, errors.New("png: missing IEND chunk (truncated file?)")
	}
	if idatChunks == 0 {
		return nil, errors.New("png: no IDAT chunk")
	}
	// Inflate everything at once: each row is a filter byte and the
	// filtered pixels.
	rowLen := w * bpp
	stride := 1 + rowLen
	size := h * stride
	// Deflate expands at most 1032:1 (258-byte matches in 2 bits): a
	// header that claims more pixels than the data can hold must not
	// make us allocate them.
	bufLen := min(size, 1032*len(idat)+258)
	if cap(sc.raw) < bufLen {
		sc.raw = make([]byte, bufLen)
	}
	raw := sc.raw[:bufLen]
	n, err := inflate.Zlib(raw, idat)
	switch {
	case errors.Is(err, inflate.ErrTooMuchData) && bufLen == size:
		return nil, errors.New("png: too much pixel data")
	case errors.Is(err, inflate.ErrHeader):
		return nil, fmt.Errorf("png: IDAT zlib header: %w", err)
	case err != nil && n >= size:
		// All pixels decoded, but the Adler-32 or the stream end is bad.
		return nil, fmt.Errorf("png: IDAT stream end: %w", err)
	case err != nil:
		return nil, fmt.Errorf("png: row %d of %d: %w", n/stride, h, err)
	case n < size:
		return nil, fmt.Errorf("png: row %d of %d: %w", n/stride, h, io.ErrUnexpectedEOF)
	}
	if cap(sc.zero) < rowLen {
		sc.zero = make([]byte, rowLen)
	}
	// Rows are unfiltered in place: the previous row in raw is the
	// unfiltered one above; the first row's is all zeros, as the spec
	// requires.
	prev := sc.zero[:rowLen]
	g := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		row := raw[y*stride : (y+1)*stride]
		filter, cur := row[0], row[1:]
		out := g.Pix[y*w : (y+1)*w]
		switch {
		case colorType == pngRGB && filter == 3:
			// Noisy scans make the encoder pick Average for most rows.
			unfilterAvgRGBToGray(out, cur, prev)
		case colorType == pngRGB && filter == 1:
			unfilterSubRGBToGray(out, cur)
		case colorType == pngRGB && filter == 4:
			unfilterPaethRGBToGray(out, cur, prev)
		default:
			if err := unfilterRow(filter, cur, prev, bpp); err != nil {
				return nil, fmt.Errorf("png: row %d: %w", y, err)
			}
			grayRow(out, cur, colorType)
		}
		prev = cur
	}
	return g, nil
}

// unfilterRow reverses a PNG row filter (PNG spec section 9) in place.
func unfilterRow(filter byte, cur, prev []byte, bpp int) error {
	prev = prev[:len(cur)]
	switch filter {
	case 0: // None
	case 1: // Sub
		for i := bpp; i < len(cur); i++ {
			cur[i] += cur[i-bpp]
		}
	case 2: // Up
		for i, p := range prev {
			cur[i] += p
		}
	case 3: // Average
		for i := range bpp {
			cur[i] += prev[i] / 2
		}
		for i := bpp; i < len(cur); i++ {
			cur[i] += uint8((int(cur[i-bpp]) + int(prev[i])) / 2)
		}
	case 4: // Paeth
		unfilterPaeth(cur, prev, bpp)
	default:
		return fmt.Errorf("bad filter type %d", filter)
	}
	return nil
}

// unfilterAvgRGBToGray reverses the Average filter on an RGB row and
// writes its luma in the same pass, keeping the left pixel in registers.
func unfilterAvgRGBToGray(out, cur, prev []byte) {
	cur, prev = cur[:3*len(out)], prev[:3*len(out)]
	var r, g, b uint8 // the pixel to the left; zero before the first
	for x := range out {
		c := cur[3*x : 3*x+3 : 3*x+3]
		p := prev[3*x : 3*x+3 : 3*x+3]
		r = c[0] + uint8((uint(r)+uint(p[0]))>>1)
		g = c[1] + uint8((uint(g)+uint(p[1]))>>1)
		b = c[2] + uint8((uint(b)+uint(p[2]))>>1)
		c[0], c[1], c[2] = r, g, b
		out[x] = Luma(r, g, b)
	}
}

// unfilterSubRGBToGray is unfilterAvgRGBToGray for the Sub filter.
func unfilterSubRGBToGray(out, cur []byte) {
	cur = cur[:3*len(out)]
	var r, g, b uint8
	for x := range out {
		c := cur[3*x : 3*x+3 : 3*x+3]
		r += c[0]
		g += c[1]
		b += c[2]
		c[0], c[1], c[2] = r, g, b
		out[x] = Luma(r, g, b)
	}
}

// unfilterPaethRGBToGray is unfilterAvgRGBToGray for the Paeth filter.
func unfilterPaethRGBToGray(out, cur, prev []byte) {
	cur, prev = cur[:3*len(out)], prev[:3*len(out)]
	var a, c [3]int // left and upper-left pixels
	for x := range out {
		cb := cur[3*x : 3*x+3 : 3*x+3]
		pb := prev[3*x : 3*x+3 : 3*x+3]
		for k := range 3 {
			b := int(pb[k])
			a[k] = (paeth(a[k], b, c[k]) + int(cb[k])) & 0xff
			cb[k] = uint8(a[k])
			c[k] = b
		}
		out[x] = Luma(cb[0], cb[1], cb[2])
	}
}

// paeth is the PNG Paeth predictor of a (left), b (up), c (upper left).
func paeth(a, b, c int) int {
	pa, pb := b-c, a-c // |p-a|, |p-b| before abs, with p = a+b-c
	pc := absInt(pa + pb)
	pa, pb = absInt(pa), absInt(pb)
	switch {
	case pa <= pb && pa <= pc:
		return a
	case pb <= pc:
		return b
	}
	return c
}

// unfilterPaeth walks each byte lane separately so that the left (a) and
// upper-left (c) neighbours stay in registers.
func unfilterPaeth(cur, prev []byte, bpp int) {
	for lane := range bpp {
		a, c := 0, 0
		for i := lane; i < len(cur); i += bpp {
			b := int(prev[i])
			pa, pb := b-c, a-c // |p-a|, |p-b| before abs, with p = a+b-c
			pc := absInt(pa + pb)
			pa, pb = absInt(pa), absInt(pb)
			switch {
			case pa <= pb && pa <= pc:
			case pb <= pc:
				a = b
			default:
				a = c
			}
			a = (a + int(cur[i])) & 0xff
			cur[i] = uint8(a)
			c = b
		}
	}
}

func absInt(x int) int {
	m := x >> (64 - 1)
	return (x ^ m) - m
}

// grayRow converts one unfiltered row as Luma converts what image/png
// gives: *image.Gray for gray, *image.RGBA for RGB and *image.NRGBA (alpha
// composited over white) for gray+alpha and RGBA.
func grayRow(out, row []byte, colorType byte) {
	switch colorType {
	case pngGray:
		copy(out, row)
	case pngRGB:
		row = row[:3*len(out)]
		for x := range out {
			p := row[3*x : 3*x+3 : 3*x+3]
			out[x] = Luma(p[0], p[1], p[2])
		}
	case pngGrayAlpha:
		row = row[:2*len(out)]
		for x := range out {
			v, a := uint32(row[2*x]), uint32(row[2*x+1])
			l := uint32(Luma(uint8(v), uint8(v), uint8(v)))
			out[x] = uint8((l*a + 255*(255-a) + 127) / 255)
		}
	case pngRGBA:
		row = row[:4*len(out)]
		for x := range out {
			p := row[4*x : 4*x+4 : 4*x+4]
			l := uint32(Luma(p[0], p[1], p[2]))
			a := uint32(p[3])
			out[x] = uint8((l*a + 255*(255-a) + 127) / 255)
		}
	}
}

// Luma is the gray value of an RGB pixel, with the weights and rounding of
// image/color's GrayModel (ITU-R BT.601).
func Luma(r, g, b uint8) uint8 {
	return uint8((19595*uint32(r) + 38470*uint32(g) + 7471*uint32(b) + 1<<15) >> 16)
}
