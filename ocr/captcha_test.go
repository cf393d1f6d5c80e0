package ocr

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dl4img/dl4img/ocr/expr"
)

func mustGenerator(t testing.TB, cfg CaptchaConfig) *Generator {
	t.Helper()
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func pngBytes(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// quiet is a config with every random decoration off, so tests can look at
// the glyphs alone.
func quiet(cfg CaptchaConfig) CaptchaConfig {
	cfg.NoiseDots, cfg.NoiseCurves, cfg.Smooth, cfg.SpaceProb = 0, 0, false, 0
	return cfg
}

func TestSampleDeterministic(t *testing.T) {
	for _, cfg := range []CaptchaConfig{BookConfig(), ArithConfig()} {
		t.Run(cfg.Mode, func(t *testing.T) {
			g1 := mustGenerator(t, cfg)
			g2 := mustGenerator(t, cfg) // fresh glyph cache
			other := cfg
			other.Seed = cfg.Seed + 1
			g3 := mustGenerator(t, other)

			const n = 16
			seq := make([][]byte, n)
			differ := 0
			for i := range n {
				img, text := g1.Sample(int64(i))
				if img.Bounds() != image.Rect(0, 0, cfg.Width, cfg.Height) {
					t.Fatalf("sample %d bounds %v", i, img.Bounds())
				}
				if got := g1.Label(int64(i)); got != text {
					t.Fatalf("Label(%d) = %q, Sample text %q", i, got, text)
				}
				seq[i] = pngBytes(t, img)
				img2, text2 := g2.Sample(int64(i))
				if text2 != text || !bytes.Equal(pngBytes(t, img2), seq[i]) {
					t.Fatalf("sample %d differs between generators with the same seed", i)
				}
				img3, _ := g3.Sample(int64(i))
				if !bytes.Equal(pngBytes(t, img3), seq[i]) {
					differ++
				}
			}
			if differ != n {
				t.Errorf("seed+1 reproduced %d of %d images", n-differ, n)
			}

			// Parallel, in reverse order and on more workers than cores.
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
			imgs, labels := make([]*image.RGBA, n), make([]string, n)
			if err := g2.SampleBatch(context.Background(), 0, imgs, labels); err != nil {
				t.Fatal(err)
			}
			for i := n - 1; i >= 0; i-- {
				if !bytes.Equal(pngBytes(t, imgs[i]), seq[i]) || labels[i] != g1.Label(int64(i)) {
					t.Fatalf("parallel sample %d differs from the sequential one", i)
				}
			}
		})
	}
}

// inkPixels counts pixels that differ from the top-left (background) pixel.
func inkPixels(img *image.RGBA) int {
	bg := img.RGBAAt(0, 0)
	n := 0
	for y := range img.Bounds().Dy() {
		for x := range img.Bounds().Dx() {
			if img.RGBAAt(x, y) != bg {
				n++
			}
		}
	}
	return n
}

// TestConfigOptions changes one option at a time and checks that it has
// the effect it documents.
func TestConfigOptions(t *testing.T) {
	base := BookConfig()
	base.Seed = 7
	const n = 6
	render := func(t *testing.T, cfg CaptchaConfig) ([]*image.RGBA, []string) {
		g := mustGenerator(t, cfg)
		var imgs []*image.RGBA
		var texts []string
		for i := range n {
			img, s := g.Sample(int64(i))
			if img.Bounds() != image.Rect(0, 0, cfg.Width, cfg.Height) {
				t.Fatalf("bounds %v, want %dx%d", img.Bounds(), cfg.Width, cfg.Height)
			}
			imgs, texts = append(imgs, img), append(texts, s)
		}
		return imgs, texts
	}
	baseImgs, _ := render(t, base)
	sameAsBase := func(imgs []*image.RGBA) bool {
		for i := range imgs {
			if !bytes.Equal(imgs[i].Pix, baseImgs[i].Pix) {
				return false
			}
		}
		return true
	}

	tests := []struct {
		name  string
		edit  func(c *CaptchaConfig)
		check func(t *testing.T, imgs []*image.RGBA, texts []string)
	}{
		{"size", func(c *CaptchaConfig) { c.Width, c.Height = 100, 40 }, nil},
		{"font_sizes", func(c *CaptchaConfig) { c.FontSizes = []int{20} }, nil},
		{"fonts_go_all", func(c *CaptchaConfig) { c.Fonts = []string{"go:all"} }, nil},
		{"font_per_image", func(c *CaptchaConfig) { c.FontPerImage = true }, nil},
		{"charset_len", func(c *CaptchaConfig) { c.Charset, c.MinLen, c.MaxLen = "AB", 2, 6 }, func(t *testing.T, _ []*image.RGBA, texts []string) {
			lens := map[int]bool{}
			for _, s := range texts {
				lens[len(s)] = true
				if len(s) < 2 || len(s) > 6 || strings.Trim(s, "AB") != "" {
					t.Errorf("label %q outside charset AB, length 2..6", s)
				}
			}
			if len(lens) < 2 {
				t.Errorf("lengths %v: want variety", lens)
			}
		}},
		{"max_rotate", func(c *CaptchaConfig) { c.MaxRotate = 0 }, nil},
		{"warp", func(c *CaptchaConfig) { c.WarpX, c.WarpY = [2]float64{0, 0}, [2]float64{0, 0} }, nil},
		{"space_prob", func(c *CaptchaConfig) { c.SpaceProb = 1 }, nil},
		{"overlap", func(c *CaptchaConfig) { c.Overlap = 0 }, nil},
		{"noise_dots", func(c *CaptchaConfig) { c.NoiseDots = 200 }, nil},
		{"dot_width", func(c *CaptchaConfig) { c.DotWidth = 6 }, nil},
		{"noise_curves", func(c *CaptchaConfig) { c.NoiseCurves = 5 }, nil},
		{"color_per_char", func(c *CaptchaConfig) { c.ColorPerChar = true }, nil},
		{"opaque_text", func(c *CaptchaConfig) { c.OpaqueText = true }, nil},
		{"no_smooth", func(c *CaptchaConfig) { c.Smooth = false }, nil},
		{"seed", func(c *CaptchaConfig) { c.Seed = 8 }, nil},
		{"plain_chars", func(c *CaptchaConfig) { c.PlainChars = CaptchaCharset }, nil},
		{"arith", func(c *CaptchaConfig) { *c = ArithConfig() }, func(t *testing.T, _ []*image.RGBA, texts []string) {
			for _, s := range texts {
				if _, err := expr.Prelim.Eval(s); err != nil || utf8.RuneCountInString(s) > ArithMaxTextLen {
					t.Errorf("arith label %q: %v", s, err)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			imgs, texts := render(t, cfg)
			if sameAsBase(imgs) {
				t.Errorf("option had no effect on the images")
			}
			if tc.check != nil {
				tc.check(t, imgs, texts)
			}
		})
	}

	// Noise off: an empty text leaves a flat background.
	t.Run("noise_off", func(t *testing.T) {
		g := mustGenerator(t, quiet(base))
		img := g.Render(rand.New(rand.NewPCG(1, 2)), "")
		if n := inkPixels(img); n != 0 {
			t.Errorf("%d non-background pixels without text and noise", n)
		}
		cfg := quiet(base)
		cfg.NoiseDots = 30
		img = mustGenerator(t, cfg).Render(rand.New(rand.NewPCG(1, 2)), "")
		if n := inkPixels(img); n < 30 || n > 30*12 {
			t.Errorf("30 dots drew %d pixels", n)
		}
	})
}

func TestPlainMinusStaysThin(t *testing.T) {
	cfg := quiet(ArithConfig())
	cfg.OpaqueText = true
	cfg.Fonts = []string{"go:regular"}
	cfg.FontSizes = []int{50}
	measure := func(plain string) (ink, height int) {
		c := cfg
		c.PlainChars = plain
		img := mustGenerator(t, c).Render(rand.New(rand.NewPCG(3, 4)), "-")
		bg := img.RGBAAt(0, 0)
		top, bottom := cfg.Height, -1
		for y := range cfg.Height {
			for x := range cfg.Width {
				if img.RGBAAt(x, y) != bg {
					ink++
					top, bottom = min(top, y), max(bottom, y)
				}
			}
		}
		return ink, bottom - top + 1
	}
	plainInk, plainH := measure("-")
	warpInk, warpH := measure("")
	t.Logf("plain '-': %d px, %d rows; warped: %d px, %d rows", plainInk, plainH, warpInk, warpH)
	if plainInk == 0 || plainH > 8 {
		t.Errorf("plain minus is %d rows high (%d px), want a thin bar", plainH, plainInk)
	}
	if warpH < 3*plainH {
		t.Errorf("warped minus %d rows vs plain %d: warp should stretch the bar", warpH, plainH)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *CaptchaConfig)
		want string
	}{
		{"size", func(c *CaptchaConfig) { c.Width = 0 }, "size"},
		{"no_sizes", func(c *CaptchaConfig) { c.FontSizes = nil }, "font_sizes"},
		{"tiny_size", func(c *CaptchaConfig) { c.FontSizes = []int{1} }, "font size"},
		{"rotate", func(c *CaptchaConfig) { c.MaxRotate = -1 }, "max_rotate"},
		{"warp", func(c *CaptchaConfig) { c.WarpX = [2]float64{0.3, 0.1} }, "warp"},
		{"space", func(c *CaptchaConfig) { c.SpaceProb = 2 }, "space_prob"},
		{"overlap", func(c *CaptchaConfig) { c.Overlap = -0.1 }, "overlap"},
		{"dots", func(c *CaptchaConfig) { c.NoiseDots = -1 }, "noise"},
		{"charset", func(c *CaptchaConfig) { c.Charset = "" }, "charset"},
		{"charset_space", func(c *CaptchaConfig) { c.Charset = "A B" }, "white space"},
		{"len", func(c *CaptchaConfig) { c.MinLen, c.MaxLen = 3, 2 }, "length"},
		{"mode", func(c *CaptchaConfig) { c.Mode = "x" }, "mode"},
		{"ops", func(c *CaptchaConfig) { c.Mode, c.ArithOps = ModeArith, "+x" }, "arith_ops"},
		{"bracket", func(c *CaptchaConfig) { c.Mode, c.ArithOps, c.BracketProb = ModeArith, "+", 3 }, "bracket_prob"},
		{"font_missing", func(c *CaptchaConfig) { c.Fonts = []string{"/nonexistent/x.ttf"} }, "no such file"},
		{"go_font", func(c *CaptchaConfig) { c.Fonts = []string{"go:nope"} }, "unknown Go font"},
		{"glyph_missing", func(c *CaptchaConfig) { c.Fonts, c.Charset = []string{"go:regular"}, "A中" }, "no font has a glyph"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := BookConfig()
			tc.edit(&cfg)
			_, err := NewGenerator(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewGenerator error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestLoadFonts(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.ttf", "a.ttf"} {
		if err := os.WriteFile(filepath.Join(dir, name), goFonts["mono"], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "readme.txt"), []byte("x"), 0o644)
	fs, err := LoadFonts([]string{"go:regular", dir})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fs {
		names = append(names, filepath.Base(f.Name))
	}
	if got := strings.Join(names, ","); got != "go:regular,a.ttf,b.ttf" {
		t.Errorf("fonts %s", got)
	}
	all, err := LoadFonts([]string{"go:all"})
	if err != nil || len(all) != len(goFonts) {
		t.Errorf("go:all: %d fonts, %v", len(all), err)
	}
	if _, err := LoadFonts([]string{filepath.Join(dir, "a.ttf#1")}); err == nil {
		t.Error("face index 1 of a single-font file accepted")
	}
	bad := filepath.Join(dir, "bad.ttf")
	os.WriteFile(bad, []byte("not a font"), 0o644)
	if _, err := LoadFonts([]string{bad}); err == nil {
		t.Error("garbage font accepted")
	}
}

// TestCJKFonts draws Chinese characters with the WenQuanYi collection, the
// font the later rounds need.
func TestCJKFonts(t *testing.T) {
	if _, err := os.Stat(WQYZenHei); err != nil {
		t.Skipf("fonts-wqy-zenhei not installed: %v", err)
	}
	fs, err := LoadFonts([]string{WQYZenHei + "#0"})
	if err != nil || len(fs) != 1 {
		t.Fatalf("%d faces, %v", len(fs), err)
	}
	cfg := quiet(BookConfig())
	cfg.Fonts = []string{"go:regular", WQYZenHei}
	cfg.Charset = "加减乘除等于0123456789"
	g := mustGenerator(t, cfg)
	img := g.Render(rand.New(rand.NewPCG(1, 1)), "加减乘除")
	if inkPixels(img) < 200 {
		t.Errorf("CJK text drew only %d pixels", inkPixels(img))
	}
}

func TestRandomExpression(t *testing.T) {
	re := regexp.MustCompile(`^(\d[-+*]\d[-+*]\d|\(\d[-+*]\d\)[-+*]\d|\d[-+*]\(\d[-+*]\d\))$`)
	rng := rand.New(rand.NewPCG(5, 6))
	kinds := map[string]int{}
	for range 2000 {
		e := RandomExpression(rng, "+-*", 0.5)
		if !re.MatchString(e) {
			t.Fatalf("expression %q", e)
		}
		switch {
		case e[0] == '(':
			kinds["left"]++
		case strings.Contains(e, "("):
			kinds["right"]++
		default:
			kinds["none"]++
		}
	}
	// 2000 draws: expect ~1000 / 500 / 500.
	if kinds["none"] < 850 || kinds["left"] < 400 || kinds["right"] < 400 {
		t.Errorf("bracket placement %v", kinds)
	}
	for range 100 {
		if e := RandomExpression(rng, "+", 0); strings.ContainsAny(e, "()-*") {
			t.Fatalf("ops '+' without brackets gave %q", e)
		}
	}
}

// TestWriteSamples saves sample images for a person to look at:
// OCR_SAMPLES_DIR=/tmp/ocr-samples go test -run TestWriteSamples ./ocr
func TestWriteSamples(t *testing.T) {
	dir := os.Getenv("OCR_SAMPLES_DIR")
	if dir == "" {
		t.Skip("set OCR_SAMPLES_DIR to write samples")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]CaptchaConfig{"book": BookConfig(), "arith": ArithConfig()} {
		g := mustGenerator(t, cfg)
		var imgs []*image.RGBA
		for i := range 8 {
			img, text := g.Sample(int64(i))
			imgs = append(imgs, img)
			if i < 3 {
				os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s_%d.png", name, i)), pngBytes(t, img), 0o644)
			}
			t.Logf("%s %d: %s", name, i, text)
		}
		os.WriteFile(filepath.Join(dir, "montage_"+name+".png"), pngBytes(t, montage(imgs, 3, 2)), 0o644)
	}
}

func montage(imgs []*image.RGBA, scale, cols int) *image.RGBA {
	w, h := imgs[0].Bounds().Dx()*scale, imgs[0].Bounds().Dy()*scale
	rows := (len(imgs) + cols - 1) / cols
	out := image.NewRGBA(image.Rect(0, 0, cols*(w+4), rows*(h+4)))
	draw.Draw(out, out.Bounds(), image.Black, image.Point{}, draw.Src)
	for i, im := range imgs {
		ox, oy := (i%cols)*(w+4), (i/cols)*(h+4)
		for y := range h {
			for x := range w {
				out.Set(ox+x, oy+y, im.At(x/scale, y/scale))
			}
		}
	}
	return out
}

// TestUnalignedCollection builds a collection whose tables sit at odd
// offsets, like wqy-zenhei.ttc, and checks that the face still loads.
func TestUnalignedCollection(t *testing.T) {
	src := goFonts["regular"]
	be := func(b []byte) int { return int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3]) }
	put := func(b []byte, v int) { b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v) }
	numTables := int(src[4])<<8 | int(src[5])
	dir := append([]byte(nil), src[:12+16*numTables]...)
	ttc := []byte("ttcf\x00\x01\x00\x00\x00\x00\x00\x01\x00\x00\x00\x10")
	ttc = append(ttc, dir...)
	for i := range numTables {
		rec := ttc[16+12+16*i:]
		o, n := be(rec[8:]), be(rec[12:])
		ttc = append(ttc, 0) // misalign every table by one byte
		put(rec[8:], len(ttc))
		ttc = append(ttc, src[o:o+n]...)
	}
	path := filepath.Join(t.TempDir(), "odd.ttc")
	if err := os.WriteFile(path, ttc, 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := LoadFonts([]string{path})
	if err != nil || len(fs) != 1 {
		t.Fatalf("%d faces, %v", len(fs), err)
	}
	if !hasGlyph(fs[0].Font, 'A') {
		t.Error("no glyph for A in the realigned face")
	}
}
