package imagefile

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/zlib"

	"github.com/dl4img/dl4img/internal/fuzzguard"
)

// wantGray is what the extractor got before the fast path: image/png,
// then the gray conversion.
func wantGray(t *testing.T, data []byte) *image.Gray {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("image/png: %v", err)
	}
	return lumaGray(img)
}

// lumaGray converts img to gray with Luma, alpha composited over white
// and rounded: the conversion the fast path reproduces.
func lumaGray(img image.Image) *image.Gray {
	b := img.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		for x := range b.Dx() {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			l, a := uint32(Luma(c.R, c.G, c.B)), uint32(c.A)
			g.Pix[y*g.Stride+x] = uint8((l*a + 255*(255-a) + 127) / 255)
		}
	}
	return g
}

func checkSameGray(t *testing.T, name string, data []byte) {
	t.Helper()
	want := wantGray(t, data)
	g, err := decodePNGGray(data)
	if err != nil {
		t.Fatalf("%s: fast path: %v", name, err)
	}
	if g.Rect != want.Rect || !bytes.Equal(g.Pix, want.Pix) {
		t.Fatalf("%s: fast path gray differs from image/png + lumaGray", name)
	}
}

// noisyImage gives rows that make image/png's encoder pick every filter
// type (it chooses per row the filter with the smallest sum).
func noisyImage(model color.Model, w, h int) image.Image {
	rng := rand.New(rand.NewPCG(1, 2))
	r := image.Rect(0, 0, w, h)
	var img interface {
		image.Image
		Set(x, y int, c color.Color)
	}
	switch model {
	case color.GrayModel:
		img = image.NewGray(r)
	case color.RGBAModel:
		img = image.NewRGBA(r)
	case color.NRGBAModel:
		img = image.NewNRGBA(r)
	}
	for y := range h {
		for x := range w {
			var v [4]uint8
			switch y % 5 {
			case 0: // flat with noise: None/Up
				v = [4]uint8{200, 200, 200, 255}
			case 1: // horizontal ramp: Sub
				v = [4]uint8{uint8(3 * x), uint8(5 * x), uint8(7 * x), uint8(255 - x)}
			case 2: // vertical+horizontal gradient: Average/Paeth
				v = [4]uint8{uint8(x + y), uint8(2*x + y), uint8(x + 3*y), uint8(128 + x)}
			case 3:
				v = [4]uint8{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256))}
			case 4:
				v = [4]uint8{uint8(x * y), uint8(x ^ y), uint8(x * 2), uint8(y * 9)}
			}
			if rng.IntN(8) == 0 {
				v[0] += uint8(rng.IntN(5))
			}
			img.Set(x, y, color.NRGBA{v[0], v[1], v[2], v[3]})
		}
	}
	return img
}

// pngFilters lists the row filter types of an 8-bit non-interlaced PNG.
func pngFilters(t *testing.T, data []byte, rowLen int) map[byte]bool {
	t.Helper()
	var idat []byte
	for rest := data[8:]; len(rest) >= 12; {
		n := binary.BigEndian.Uint32(rest)
		if string(rest[4:8]) == "IDAT" {
			idat = append(idat, rest[8:8+n]...)
		}
		rest = rest[12+n:]
	}
	raw, err := decompressZlib(idat)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[byte]bool{}
	for i := 0; i < len(raw); i += 1 + rowLen {
		seen[raw[i]] = true
	}
	return seen
}

func TestDecodePNGGrayFilters(t *testing.T) {
	const w, h = 61, 40
	models := []struct {
		name  string
		model color.Model
		bpp   int
	}{
		{"gray", color.GrayModel, 1},
		{"rgb", color.RGBAModel, 3},   // opaque RGBA encodes as color type 2
		{"rgba", color.NRGBAModel, 4}, // real alpha: color type 6
	}
	levels := []png.CompressionLevel{png.DefaultCompression, png.NoCompression, png.BestSpeed, png.BestCompression}
	for _, m := range models {
		img := noisyImage(m.model, w, h)
		if m.model == color.RGBAModel {
			// Make it opaque so image/png writes RGB.
			rgba := img.(*image.RGBA)
			for i := 3; i < len(rgba.Pix); i += 4 {
				rgba.Pix[i] = 255
			}
		}
		filters := map[byte]bool{}
		for _, lvl := range levels {
			var buf bytes.Buffer
			if err := (&png.Encoder{CompressionLevel: lvl}).Encode(&buf, img); err != nil {
				t.Fatal(err)
			}
			data := buf.Bytes()
			if ct := data[25]; m.bpp == 3 && ct != pngRGB || m.bpp == 4 && ct != pngRGBA || m.bpp == 1 && ct != pngGray {
				t.Fatalf("%s: encoded color type %d", m.name, ct)
			}
			for f := range pngFilters(t, data, w*m.bpp) {
				filters[f] = true
			}
			checkSameGray(t, m.name, data)
		}
		if len(filters) != 5 {
			t.Errorf("%s: test images use filters %v, want all 5", m.name, filters)
		}
	}
}

// TestDecodePNGGrayAlpha covers color type 4, which image/png cannot write:
// the test builds it by hand from raw rows with all five filters.
func TestDecodePNGGrayAlpha(t *testing.T) {
	const w, h = 9, 10
	rng := rand.New(rand.NewPCG(3, 4))
	var raw []byte
	for y := range h {
		raw = append(raw, byte(y%5))
		for range 2 * w {
			raw = append(raw, byte(rng.IntN(256)))
		}
	}
	data := buildPNG(t, w, h, 8, pngGrayAlpha, 0, raw)
	checkSameGray(t, "gray+alpha", data)
}

func buildPNG(t *testing.T, w, h int, depth, colorType, interlace byte, raw []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	out.Write(pngSignature)
	chunk := func(typ string, body []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(body)))
		out.Write(n[:])
		c := append([]byte(typ), body...)
		out.Write(c)
		binary.BigEndian.PutUint32(n[:], crc32.ChecksumIEEE(c))
		out.Write(n[:])
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9], ihdr[12] = depth, colorType, interlace
	chunk("IHDR", ihdr)
	z, err := compressZlib(raw)
	if err != nil {
		t.Fatal(err)
	}
	// Two IDAT chunks exercise the concatenation.
	chunk("IDAT", z[:len(z)/2])
	chunk("IDAT", z[len(z)/2:])
	chunk("IEND", nil)
	return out.Bytes()
}

func TestDecodePNGGrayFallback(t *testing.T) {
	// Paletted: image/png writes color type 3 for *image.Paletted.
	pal := image.NewPaletted(image.Rect(0, 0, 7, 5), color.Palette{color.Black, color.RGBA{200, 10, 30, 255}, color.White})
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 3)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, pal); err != nil {
		t.Fatal(err)
	}
	// Interlaced (Adam7) RGB, built by hand: 1x1 passes make the raw
	// stream one filter byte + one pixel per non-empty pass.
	interlaced := buildPNG(t, 1, 1, 8, pngRGB, 1, []byte{0, 10, 120, 250})
	cases := []struct {
		name string
		data []byte
	}{
		{"paletted", buf.Bytes()},
		{"interlaced", interlaced},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := decodePNGGray(c.data); err != errPNGFallback {
				t.Fatalf("fast path: err %v, want errPNGFallback", err)
			}
			img, err := DecodeGray(c.data)
			if err != nil {
				t.Fatal(err)
			}
			got, want := lumaGray(img), wantGray(t, c.data)
			if !bytes.Equal(got.Pix, want.Pix) {
				t.Fatal("fallback gray differs from image/png + lumaGray")
			}
		})
	}
}

func TestDecodePNGGrayCorrupt(t *testing.T) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, noisyImage(color.RGBAModel, 30, 20)); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	idat := bytes.Index(good, []byte("IDAT"))
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	// recrc fixes the IDAT chunk's CRC after its data was altered, so the
	// zlib layer has to notice.
	recrc := func(b []byte) []byte {
		n := binary.BigEndian.Uint32(b[idat-4:])
		end := idat + 4 + int(n)
		binary.BigEndian.PutUint32(b[end:], crc32.ChecksumIEEE(b[idat:end]))
		return b
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated in IDAT", good[:idat+100], "chunk length"},
		{"no IEND", good[:len(good)-12], "missing IEND"},
		{"header only", good[:20], "chunk length"},
		{"cut in chunk header", good[:14], "truncated chunk header"},
		{"bad CRC", mutate(func(b []byte) []byte { b[idat+50] ^= 0xff; return b }), "checksum mismatch"},
		{"bad zlib data", mutate(func(b []byte) []byte { b[idat+50] ^= 0xff; return recrc(b) }), "png:"},
		{"bad IHDR length", mutate(func(b []byte) []byte { b[11] = 12; return b }), "png:"},
		{"renamed IHDR", mutate(func(b []byte) []byte { copy(b[12:16], "IDAT"); return b }), "checksum"},
		// 60000x60000 declared over a few bytes of IDAT: refused before
		// a 3.6 GB image is allocated.
		{"decompression bomb", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[16:], 60000)
			binary.BigEndian.PutUint32(b[20:], 60000)
			binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
			return b
		}), "decompression bomb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := decodePNGGray(c.data)
			if err == nil || err == errPNGFallback {
				t.Fatalf("got %v, err %v; want an error", g != nil, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
			if _, err := DecodeGray(c.data); err == nil {
				t.Error("DecodeGray accepted corrupt data")
			}
		})
	}
}

// FuzzDecodePNGGray checks the fast path never panics and agrees with
// image/png whenever it accepts a file.
func FuzzDecodePNGGray(f *testing.F) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, noisyImage(color.RGBAModel, 12, 7)); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzguard.Deadline()()
		// The whole decoder (fast path, or image/png through imagefile)
		// never panics and never goes over MaxPixels.
		if img, err := DecodeGray(data); err == nil {
			if b := img.Bounds(); int64(b.Dx())*int64(b.Dy()) > MaxPixels {
				t.Fatalf("decoded %v", b)
			}
		}
		g, err := decodePNGGray(data)
		if err != nil {
			return
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("fast path accepted what image/png rejects: %v", err)
		}
		if want := lumaGray(img); !bytes.Equal(g.Pix, want.Pix) {
			t.Fatal("gray differs from image/png + lumaGray")
		}
	})
}

func compressZlib(raw []byte) ([]byte, error) {
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func decompressZlib(z []byte) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
