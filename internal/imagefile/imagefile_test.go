package imagefile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"

	"golang.org/x/image/bmp"

	"github.com/dl4img/dl4img/internal/fuzzguard"
)

func sample() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 9, 5))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 37)
	}
	return img
}

// encoded is the sample in every format Decode reads.
func encoded(tb testing.TB) map[string][]byte {
	out := map[string][]byte{}
	for name, enc := range map[string]func(*bytes.Buffer) error{
		"png":  func(b *bytes.Buffer) error { return png.Encode(b, sample()) },
		"jpeg": func(b *bytes.Buffer) error { return jpeg.Encode(b, sample(), nil) },
		"gif":  func(b *bytes.Buffer) error { return gif.Encode(b, sample(), nil) },
		"bmp":  func(b *bytes.Buffer) error { return bmp.Encode(b, sample()) },
	} {
		var b bytes.Buffer
		if err := enc(&b); err != nil {
			tb.Fatal(err)
		}
		out[name] = b.Bytes()
	}
	return out
}

// pngChunk is one PNG chunk with its CRC.
func pngChunk(typ string, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	b = append(append(b, typ...), body...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(append([]byte(typ), body...)))
}

// bombs are tiny files that declare huge images.
func bombs(tb testing.TB) map[string][]byte {
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 100000), 100000)
	ihdr = append(ihdr, 8, 6, 0, 0, 0)
	p := append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr)...)
	p = append(p, pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	p = append(p, pngChunk("IEND", nil)...)
	out := map[string][]byte{"png": p}
	// The sample's headers with the size patched.
	enc := encoded(tb)
	j := bytes.Clone(enc["jpeg"])
	sof := bytes.Index(j, []byte{0xff, 0xc0})
	binary.BigEndian.PutUint16(j[sof+5:], 60000)
	binary.BigEndian.PutUint16(j[sof+7:], 60000)
	out["jpeg"] = j
	g := bytes.Clone(enc["gif"])
	binary.LittleEndian.PutUint16(g[6:], 65535)
	binary.LittleEndian.PutUint16(g[8:], 65535)
	out["gif"] = g
	b := bytes.Clone(enc["bmp"])
	binary.LittleEndian.PutUint32(b[18:], 70000)
	binary.LittleEndian.PutUint32(b[22:], 70000)
	out["bmp"] = b
	return out
}

func TestDecode(t *testing.T) {
	for name, data := range encoded(t) {
		img, format, err := Decode(bytes.NewReader(data))
		if err != nil || format != name || img.Bounds().Dx() != 9 || img.Bounds().Dy() != 5 {
			t.Errorf("%s: %v %s %v", name, img, format, err)
		}
	}
}

func TestDecodeRefusesHugeDeclaredSizes(t *testing.T) {
	for name, data := range bombs(t) {
		_, _, err := Decode(bytes.NewReader(data))
		if !errors.Is(err, ErrTooLarge) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "decompression bomb") {
			t.Errorf("%s bomb (%d bytes): %v", name, len(data), err)
		}
	}
	for _, c := range [][2]int{{8192, 8192}, {1, MaxPixels}} {
		if err := CheckSize(c[0], c[1]); err != nil {
			t.Errorf("%v: %v", c, err)
		}
	}
	for _, c := range [][2]int{{8193, 8192}, {0, 5}, {-1, -1}, {1 << 40, 1 << 40}} {
		if err := CheckSize(c[0], c[1]); err == nil {
			t.Errorf("%v accepted", c)
		}
	}
}

// FuzzDecode: no input panics, and what decodes is the size it declared,
// within MaxPixels.
func FuzzDecode(f *testing.F) {
	for _, m := range []map[string][]byte{encoded(f), bombs(f)} {
		for _, data := range m {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzguard.Deadline()()
		img, _, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		b := img.Bounds()
		if int64(b.Dx())*int64(b.Dy()) > MaxPixels {
			t.Fatalf("decoded %v, over MaxPixels", b)
		}
		_ = color.RGBAModel.Convert(img.At(b.Min.X, b.Min.Y))
	})
}
