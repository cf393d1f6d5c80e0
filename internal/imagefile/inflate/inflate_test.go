package inflate

import (
	"bytes"
	"compress/flate"
	stdzlib "compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/adler32"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"testing"

	kpflate "github.com/klauspost/compress/flate"
	kpzlib "github.com/klauspost/compress/zlib"

	"github.com/dl4img/dl4img/internal/fuzzguard"
)

// stdInflate is the reference: compress/zlib's whole output, or its error.
func stdInflate(z []byte) ([]byte, error) {
	r, err := stdzlib.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// zlibWriter is compress/zlib's or klauspost's NewWriterLevel: two
// encoders that split blocks and pick codes differently.
type zlibWriter[W io.WriteCloser] func(io.Writer, int) (W, error)

func deflateWith[W io.WriteCloser](t testing.TB, newWriter zlibWriter[W], raw []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := newWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func stdDeflate(t testing.TB, raw []byte, level int) []byte {
	return deflateWith(t, stdzlib.NewWriterLevel, raw, level)
}

func kpDeflate(t testing.TB, raw []byte, level int) []byte {
	return deflateWith(t, kpzlib.NewWriterLevel, raw, level)
}

// checkSame asserts that Zlib produces exactly compress/zlib's output when
// that succeeds (with dst exactly sized and with room to spare) and fails
// when it fails.
func checkSame(t *testing.T, name string, z []byte) {
	t.Helper()
	want, werr := stdInflate(z)
	dst := make([]byte, len(want))
	n, err := Zlib(dst, z)
	if werr != nil {
		if err == nil && n == len(want) {
			t.Fatalf("%s: accepted a stream compress/zlib rejects (%v)", name, werr)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v (compress/zlib decodes %d bytes)", name, err, len(want))
	}
	if n != len(want) || !bytes.Equal(dst, want) {
		t.Fatalf("%s: output differs from compress/zlib (%d vs %d bytes)", name, n, len(want))
	}
	big := make([]byte, len(want)+300)
	if n, err := Zlib(big, z); err != nil || n != len(want) || !bytes.Equal(big[:n], want) {
		t.Fatalf("%s: with a larger dst: n %d of %d, err %v", name, n, len(want), err)
	}
	if len(want) > 0 {
		_, err := Zlib(dst[:len(want)-1], z)
		if !errors.Is(err, ErrTooMuchData) {
			t.Fatalf("%s: dst one byte short: err %v, want ErrTooMuchData", name, err)
		}
	}
}

// testData gives inputs of different character.
func testData() map[string][]byte {
	rng := rand.New(rand.NewPCG(5, 6))
	random := make([]byte, 200_000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog; "), 3000)
	skewed := make([]byte, 300_000) // like filtered noisy image rows
	for i := range skewed {
		v := int(rng.NormFloat64() * 6)
		skewed[i] = byte(v)
		if rng.IntN(50) == 0 {
			copy(skewed[i:], skewed[max(0, i-3*rng.IntN(40)-3):i])
		}
	}
	runs := make([]byte, 100_000)
	for i := range runs {
		runs[i] = byte(i / 1000)
	}
	return map[string][]byte{
		"empty":  nil,
		"one":    {42},
		"random": random,
		"text":   text,
		"skewed": skewed,
		"runs":   runs,
		"zeros":  make([]byte, 70_000),
	}
}

func TestZlibRoundTrip(t *testing.T) {
	levels := []int{stdzlib.HuffmanOnly, stdzlib.NoCompression, stdzlib.BestSpeed, 2, 3, 4, 5, stdzlib.DefaultCompression, 7, 8, stdzlib.BestCompression}
	for name, raw := range testData() {
		for _, lvl := range levels {
			checkSame(t, name+"/std", stdDeflate(t, raw, lvl))
			checkSame(t, name+"/klauspost", kpDeflate(t, raw, lvl))
		}
	}
}

// TestZlibPNG decodes the IDAT streams of image/png's encodings of a noisy
// RGB image, the kind of stream the formula extractor reads.
func TestZlibPNG(t *testing.T) {
	img := noisyRGB(300, 120, 1)
	for _, lvl := range []png.CompressionLevel{png.DefaultCompression, png.BestSpeed, png.BestCompression, png.NoCompression} {
		var b bytes.Buffer
		if err := (&png.Encoder{CompressionLevel: lvl}).Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		checkSame(t, "png", idatStream(t, b.Bytes()))
	}
}

// noisyRGB is an opaque image like the generator's: a light background
// with gaussian noise and a few dark strokes.
func noisyRGB(w, h int, seed uint64) *image.RGBA {
	rng := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			v := 220 + rng.NormFloat64()*12
			if (x/7+y/5)%11 == 0 {
				v = 40 + rng.NormFloat64()*10
			}
			c := uint8(max(0, min(255, v)))
			img.SetRGBA(x, y, color.RGBA{c, c + uint8(rng.IntN(3)), c, 255})
		}
	}
	return img
}

// idatStream returns a PNG's concatenated IDAT data.
func idatStream(t testing.TB, data []byte) []byte {
	t.Helper()
	var z []byte
	for rest := data[8:]; len(rest) >= 12; {
		n := binary.BigEndian.Uint32(rest)
		if int(n)+12 > len(rest) {
			t.Fatal("bad PNG chunk")
		}
		if string(rest[4:8]) == "IDAT" {
			z = append(z, rest[8:8+n]...)
		}
		rest = rest[12+n:]
	}
	return z
}

// bitWriter builds deflate streams by hand, LSB first.
type bitWriter struct {
	buf  []byte
	bits uint64
	nb   uint
}

func (w *bitWriter) put(v uint64, n uint) {
	w.bits |= v << w.nb
	w.nb += n
	for w.nb >= 8 {
		w.buf = append(w.buf, byte(w.bits))
		w.bits >>= 8
		w.nb -= 8
	}
}

// putCode writes a Huffman code MSB first.
func (w *bitWriter) putCode(code uint64, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.put(code>>uint(i)&1, 1)
	}
}

func (w *bitWriter) align() {
	if w.nb > 0 {
		w.put(0, 8-w.nb)
	}
}

// fixedLitCode writes literal/length symbol s with the fixed code.
func (w *bitWriter) fixedLit(s int) {
	switch {
	case s < 144:
		w.putCode(uint64(0x30+s), 8)
	case s < 256:
		w.putCode(uint64(0x190+s-144), 9)
	case s < 280:
		w.putCode(uint64(s-256), 7)
	default:
		w.putCode(uint64(0xc0+s-280), 8)
	}
}

// zlibWrap adds the zlib header and the Adler-32 of raw.
func zlibWrap(deflate, raw []byte) []byte {
	z := append([]byte{0x78, 0x9c}, deflate...)
	return binary.BigEndian.AppendUint32(z, adler32.Checksum(raw))
}

// fixedMatch writes a length/distance pair with the fixed code.
func (w *bitWriter) fixedMatch(length, dist int) {
	// Length symbol and extra bits.
	lbase := []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lextra := []uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	s := len(lbase) - 1
	for lbase[s] > length {
		s--
	}
	w.fixedLit(257 + s)
	w.put(uint64(length-lbase[s]), lextra[s])
	dbase := []int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	ds := len(dbase) - 1
	for dbase[ds] > dist {
		ds--
	}
	w.putCode(uint64(ds), 5)
	extra := uint(0)
	if ds >= 4 {
		extra = uint(ds-2) / 2
	}
	w.put(uint64(dist-dbase[ds]), extra)
}

// TestZlibHandMade covers block kinds and edge cases the encoders rarely
// produce: stored, empty and fixed blocks, distance-1 runs, the maximum
// distance and length, and invalid symbols.
func TestZlibHandMade(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	big := make([]byte, 70_000)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	type stream struct {
		name    string
		deflate func(w *bitWriter) []byte // returns the raw data it encodes
		bad     bool                      // compress/zlib must reject it
	}
	stored := func(w *bitWriter, final bool, data []byte) {
		f := uint64(0)
		if final {
			f = 1
		}
		w.put(f, 1)
		w.put(0, 2)
		w.align()
		w.put(uint64(len(data)), 16)
		w.put(uint64(len(data))^0xffff, 16)
		for _, b := range data {
			w.put(uint64(b), 8)
		}
	}
	fixedHdr := func(w *bitWriter, final bool) {
		f := uint64(0)
		if final {
			f = 1
		}
		w.put(f, 1)
		w.put(1, 2)
	}
	cases := []stream{
		{name: "empty stored", deflate: func(w *bitWriter) []byte { stored(w, true, nil); return nil }},
		{name: "stored blocks", deflate: func(w *bitWriter) []byte {
			stored(w, false, big[:1000])
			stored(w, false, nil)
			stored(w, true, big[1000:66535])
			return big[:66535]
		}},
		{name: "empty fixed", deflate: func(w *bitWriter) []byte { fixedHdr(w, true); w.fixedLit(256); return nil }},
		{name: "fixed literals and runs", deflate: func(w *bitWriter) []byte {
			fixedHdr(w, false)
			raw := []byte{}
			for _, b := range big[:300] {
				w.fixedLit(int(b))
				raw = append(raw, b)
			}
			w.fixedMatch(258, 1) // distance-1 run
			for range 258 {
				raw = append(raw, raw[len(raw)-1])
			}
			w.fixedMatch(3, 2)
			raw = append(raw, raw[len(raw)-2:]...)
			raw = append(raw, raw[len(raw)-2])
			w.fixedMatch(100, 7) // overlapping, short distance
			for range 100 {
				raw = append(raw, raw[len(raw)-7])
			}
			w.fixedLit(256)
			fixedHdr(w, true) // an empty final block
			w.fixedLit(256)
			return raw
		}},
		{name: "max distance", deflate: func(w *bitWriter) []byte {
			stored(w, false, big[:32768])
			fixedHdr(w, true)
			w.fixedMatch(258, 32768)
			w.fixedMatch(258, 32768)
			w.fixedMatch(31, 1)
			w.fixedLit(256)
			raw := append([]byte(nil), big[:32768]...)
			raw = append(raw, big[:258*2]...)
			for range 31 {
				raw = append(raw, raw[len(raw)-1])
			}
			return raw
		}},
	}
	// Invalid symbols, each early in a long stream (the fast loop) and at
	// its end (the careful one).
	pad := func(w *bitWriter, n int) {
		for i := range n {
			w.fixedLit(int(big[i]))
		}
	}
	for _, tail := range []int{0, 400} {
		sfx := fmt.Sprintf(" (%d literals after)", tail)
		cases = append(cases,
			stream{name: "distance beyond output" + sfx, bad: true, deflate: func(w *bitWriter) []byte {
				fixedHdr(w, true)
				w.fixedLit('a')
				w.fixedMatch(3, 2)
				pad(w, tail)
				w.fixedLit(256)
				return nil
			}},
			stream{name: "literal/length symbol 286" + sfx, bad: true, deflate: func(w *bitWriter) []byte {
				fixedHdr(w, true)
				w.fixedLit('a')
				w.fixedLit(286)
				pad(w, tail)
				w.fixedLit(256)
				return nil
			}},
			stream{name: "distance symbol 30" + sfx, bad: true, deflate: func(w *bitWriter) []byte {
				fixedHdr(w, true)
				w.fixedLit('a')
				w.fixedLit(257)
				w.putCode(30, 5)
				pad(w, tail)
				w.fixedLit(256)
				return nil
			}},
		)
	}
	cases = append(cases, []stream{
		{name: "block type 3", bad: true, deflate: func(w *bitWriter) []byte {
			w.put(1, 1)
			w.put(3, 2)
			w.put(0, 16)
			return nil
		}},
		{name: "stored length complement", bad: true, deflate: func(w *bitWriter) []byte {
			w.put(1, 3)
			w.align()
			w.put(5, 16)
			w.put(5, 16)
			w.put(0, 40)
			return nil
		}},
	}...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w bitWriter
			raw := c.deflate(&w)
			w.align()
			z := zlibWrap(w.buf, raw)
			want, err := stdInflate(z)
			if c.bad != (err != nil) {
				t.Fatalf("test stream: compress/zlib err %v, want bad=%v", err, c.bad)
			}
			if err == nil && !bytes.Equal(want, raw) {
				t.Fatalf("test stream: compress/zlib decodes %d bytes, want %d", len(want), len(raw))
			}
			checkSame(t, c.name, z)
			if c.bad {
				_, err := Zlib(make([]byte, 1000), z)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("err %v, want ErrCorrupt", err)
				}
			}
		})
	}
}

// TestZlibCorrupt checks every truncation and many bit flips of small
// streams, and the header and trailer checks.
func TestZlibCorrupt(t *testing.T) {
	data := testData()
	streams := map[string][]byte{
		"text":   stdDeflate(t, data["text"][:3000], stdzlib.DefaultCompression),
		"skewed": stdDeflate(t, data["skewed"][:2000], stdzlib.BestSpeed),
		"stored": stdDeflate(t, data["random"][:500], stdzlib.NoCompression),
		"huff":   kpDeflate(t, data["skewed"][:1000], stdzlib.HuffmanOnly),
	}
	for name, z := range streams {
		for i := range len(z) {
			checkSame(t, name+"/truncated", z[:i])
			_, err := Zlib(make([]byte, 5000), z[:i])
			if err == nil {
				t.Fatalf("%s truncated to %d bytes: no error", name, i)
			}
		}
		rng := rand.New(rand.NewPCG(1, uint64(len(z))))
		for range 3000 {
			b := append([]byte(nil), z...)
			for range 1 + rng.IntN(3) {
				b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
			}
			checkSame(t, name+"/flipped", b)
		}
	}
	raw := data["text"][:3000]
	z := streams["text"]
	mut := func(f func(b []byte)) []byte { b := append([]byte(nil), z...); f(b); return b }
	cases := []struct {
		name string
		z    []byte
		want error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"one byte", z[:1], io.ErrUnexpectedEOF},
		{"bad method", mut(func(b []byte) { b[0] = 0x79 }), ErrHeader},
		{"bad header check", mut(func(b []byte) { b[1]++ }), ErrHeader},
		{"dictionary", mut(func(b []byte) { b[1] = 0xbb }), ErrHeader}, // 0x78bb % 31 == 0, FDICT set
		{"bad Adler-32", mut(func(b []byte) { b[len(b)-1] ^= 1 }), ErrChecksum},
		{"no trailer", z[:len(z)-4], io.ErrUnexpectedEOF},
		{"short trailer", z[:len(z)-1], io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		if _, err := stdInflate(c.z); err == nil {
			t.Fatalf("%s: compress/zlib accepts it", c.name)
		}
		_, err := Zlib(make([]byte, len(raw)), c.z)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	// Trailing bytes after the trailer are ignored, as compress/zlib does.
	checkSame(t, "trailing", append(append([]byte(nil), z...), 1, 2, 3))
}

func TestZlibStreams(t *testing.T) {
	for _, v := range streamVectors {
		deflate, err := hex.DecodeString(v.stream)
		if err != nil {
			t.Fatal(err)
		}
		want, err := hex.DecodeString(v.want)
		if v.want == "fail" {
			want = nil
		} else if err != nil {
			t.Fatal(err)
		}
		// Some streams have bytes after their final block, which
		// compress/zlib would read as the trailer: cut them.
		r := bytes.NewReader(deflate)
		if _, err := io.ReadAll(flate.NewReader(r)); err == nil {
			deflate = deflate[:len(deflate)-r.Len()]
		}
		z := zlibWrap(deflate, want)
		got, err := stdInflate(z)
		if (err != nil) != (v.want == "fail") || err == nil && !bytes.Equal(got, want) {
			t.Fatalf("%s: compress/zlib: %x, %v", v.desc, got, err)
		}
		checkSame(t, v.desc, z)
	}
}

// streamVectors are compress/flate's TestStreams cases (raw deflate, hex;
// want "fail" for streams it rejects): degenerate, empty and incomplete
// Huffman codes, reserved symbols, repeat codes spanning the two code
// length lists.
var streamVectors = []struct {
	desc, stream, want string
}{{
	"degenerate HCLenTree",
	"05e0010000000000100000000000000000000000000000000000000000000000" +
		"00000000000000000004",
	"fail",
}, {
	"complete HCLenTree, empty HLitTree, empty HDistTree",
	"05e0010400000000000000000000000000000000000000000000000000000000" +
		"00000000000000000010",
	"fail",
}, {
	"empty HCLenTree",
	"05e0010000000000000000000000000000000000000000000000000000000000" +
		"00000000000000000010",
	"fail",
}, {
	"complete HCLenTree, complete HLitTree, empty HDistTree, use missing HDist symbol",
	"000100feff000de0010400000000100000000000000000000000000000000000" +
		"0000000000000000000000000000002c",
	"fail",
}, {
	"complete HCLenTree, complete HLitTree, degenerate HDistTree, use missing HDist symbol",
	"000100feff000de0010000000000000000000000000000000000000000000000" +
		"00000000000000000610000000004070",
	"fail",
}, {
	"complete HCLenTree, empty HLitTree, empty HDistTree",
	"05e0010400000000100400000000000000000000000000000000000000000000" +
		"0000000000000000000000000008",
	"fail",
}, {
	"complete HCLenTree, empty HLitTree, degenerate HDistTree",
	"05e0010400000000100400000000000000000000000000000000000000000000" +
		"0000000000000000000800000008",
	"fail",
}, {
	"complete HCLenTree, degenerate HLitTree, degenerate HDistTree, use missing HLit symbol",
	"05e0010400000000100000000000000000000000000000000000000000000000" +
		"0000000000000000001c",
	"fail",
}, {
	"complete HCLenTree, complete HLitTree, too large HDistTree",
	"edff870500000000200400000000000000000000000000000000000000000000" +
		"000000000000000000080000000000000004",
	"fail",
}, {
	"complete HCLenTree, complete HLitTree, empty HDistTree, excessive repeater code",
	"edfd870500000000200400000000000000000000000000000000000000000000" +
		"000000000000000000e8b100",
	"fail",
}, {
	"complete HCLenTree, complete HLitTree, empty HDistTree of normal length 30",
	"05fd01240000000000f8ffffffffffffffffffffffffffffffffffffffffffff" +
		"ffffffffffffffffff07000000fe01",
	"",
}, {
	"complete HCLenTree, complete HLitTree, empty HDistTree of excessive length 31",
	"05fe01240000000000f8ffffffffffffffffffffffffffffffffffffffffffff" +
		"ffffffffffffffffff07000000fc03",
	"fail",
}, {
	"complete HCLenTree, over-subscribed HLitTree, empty HDistTree",
	"05e001240000000000fcffffffffffffffffffffffffffffffffffffffffffff" +
		"ffffffffffffffffff07f00f",
	"fail",
}, {
	"complete HCLenTree, under-subscribed HLitTree, empty HDistTree",
	"05e001240000000000fcffffffffffffffffffffffffffffffffffffffffffff" +
		"fffffffffcffffffff07f00f",
	"fail",
}, {
	"complete HCLenTree, complete HLitTree with single code, empty HDistTree",
	"05e001240000000000f8ffffffffffffffffffffffffffffffffffffffffffff" +
		"ffffffffffffffffff07f00f",
	"01",
}, {
	"complete HCLenTree, complete HLitTree with multiple codes, empty HDistTree",
	"05e301240000000000f8ffffffffffffffffffffffffffffffffffffffffffff" +
		"ffffffffffffffffff07807f",
	"01",
}, {
	"complete HCLenTree, complete HLitTree, degenerate HDistTree, use valid HDist symbol",
	"000100feff000de0010400000000100000000000000000000000000000000000" +
		"0000000000000000000000000000003c",
	"00000000",
}, {
	"complete HCLenTree, degenerate HLitTree, degenerate HDistTree",
	"05e0010400000000100000000000000000000000000000000000000000000000" +
		"0000000000000000000c",
	"",
}, {
	"complete HCLenTree, degenerate HLitTree, empty HDistTree",
	"05e0010400000000100000000000000000000000000000000000000000000000" +
		"00000000000000000004",
	"",
}, {
	"complete HCLenTree, complete HLitTree, empty HDistTree, spanning repeater code",
	"edfd870500000000200400000000000000000000000000000000000000000000" +
		"000000000000000000e8b000",
	"",
}, {
	"complete HCLenTree with length codes, complete HLitTree, empty HDistTree",
	"ede0010400000000100000000000000000000000000000000000000000000000" +
		"0000000000000000000400004000",
	"",
}, {
	"complete HCLenTree, complete HLitTree, degenerate HDistTree, use valid HLit symbol 284 with count 31",
	"000100feff00ede0010400000000100000000000000000000000000000000000" +
		"000000000000000000000000000000040000407f00",
	"0000000000000000000000000000000000000000000000000000000000000000" +
		"0000000000000000000000000000000000000000000000000000000000000000" +
		"0000000000000000000000000000000000000000000000000000000000000000" +
		"0000000000000000000000000000000000000000000000000000000000000000" +
		"0000000000000000000000000000000000000000000000000000000000000000" +
		"0000000000000000000000000000000000000000000000000000000000000000" +
		"0000000000000000000000000000000000000000000000000000000000000000" +
		"0000000000000000000000000000000000000000000000000000000000000000" +
		"000000",
}, {
	"complete HCLenTree, complete HLitTree, degenerate HDistTree, use valid HLit and HDist symbols",
	"0cc2010d00000082b0ac4aff0eb07d27060000ffff",
	"616263616263",
}, {
	"fixed block, use reserved symbol 287",
	"33180700",
	"fail",
}, {
	"raw block",
	"010100feff11",
	"11",
}, {
	"issue 10426 - over-subscribed HCLenTree causes a hang",
	"344c4a4e494d4b070000ff2e2eff2e2e2e2e2eff",
	"fail",
}, {
	"issue 11030 - empty HDistTree unexpectedly leads to error",
	"05c0070600000080400fff37a0ca",
	"",
}, {
	"issue 11033 - empty HDistTree unexpectedly leads to error",
	"050fb109c020cca5d017dcbca044881ee1034ec149c8980bbc413c2ab35be9dc" +
		"b1473449922449922411202306ee97b0383a521b4ffdcf3217f9f7d3adb701",
	"3130303634342068652e706870005d05355f7ed957ff084a90925d19e3ebc6d0" +
		"c6d7",
},
}

func TestAdler32(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 5552, 1<<20 - 1, 1 << 20, 1<<20 + 33, 3<<20 + 5} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		for _, fill := range []bool{false, true} {
			if fill {
				for i := range b {
					b[i] = 0xff // the overflow worst case
				}
			}
			if got, want := adler32sum(b), adler32.Checksum(b); got != want {
				t.Fatalf("n %d: adler32sum %08x, want %08x", n, got, want)
			}
		}
	}
}

// FuzzZlib compares Zlib with compress/zlib on arbitrary streams.
func FuzzZlib(f *testing.F) {
	data := testData()
	f.Add(stdDeflate(f, data["text"][:2000], stdzlib.DefaultCompression))
	f.Add(stdDeflate(f, data["skewed"][:3000], stdzlib.BestSpeed))
	f.Add(stdDeflate(f, data["random"][:100], stdzlib.NoCompression))
	f.Add(kpDeflate(f, data["skewed"][:1000], stdzlib.HuffmanOnly))
	f.Add(kpDeflate(f, data["runs"][:5000], kpflate.BestCompression))
	f.Fuzz(func(t *testing.T, z []byte) {
		defer fuzzguard.Deadline()()
		want, werr := stdInflate(z)
		if len(want) > 1<<20 {
			return
		}
		dst := make([]byte, len(want)+5)
		n, err := Zlib(dst, z)
		if werr != nil {
			if err == nil && n == len(want) {
				t.Fatalf("accepted what compress/zlib rejects: %v", werr)
			}
			return
		}
		if err != nil {
			t.Fatalf("rejected what compress/zlib accepts: %v", err)
		}
		if n != len(want) || !bytes.Equal(dst[:n], want) {
			t.Fatalf("output differs from compress/zlib: %d vs %d bytes", n, len(want))
		}
	})
}
