package ocr

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// Character sets.
const (
	Digits          = "0123456789"
	UpperLetters    = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	CaptchaCharset  = Digits + UpperLetters // the book's 36 classes
	ArithCharset    = Digits + "+-*()"      // the preliminary round's 15 classes
	ArithMaxTextLen = 7                     // "(1+2)*3"
)

// Generation modes.
const (
	ModeText  = "text"  // MinLen..MaxLen characters drawn uniformly from Charset
	ModeArith = "arith" // 3 digits, 2 operators from ArithOps, 0 or 1 bracket pair
)

// CaptchaConfig describes a captcha generator. It mirrors the parameters of
// the Python `captcha` library's ImageCaptcha (lepture/captcha, image.py),
// which the book uses; numbers in comments are that library's values.
//
// Zero values are meaningful (NoiseDots 0 means no dots), so start from
// BookConfig or ArithConfig and override fields rather than from a zero value.
type CaptchaConfig struct {
	Width  int `json:"width"`
	Height int `json:"height"`

	// Fonts lists font files, directories, collections or embedded Go fonts
	// (see LoadFonts). Empty means DefaultFonts().
	Fonts []string `json:"fonts,omitempty"`
	// FontSizes in pixels per em; one is drawn uniformly for each font pick (42, 50, 56).
	FontSizes []int `json:"font_sizes"`
	// FontPerImage picks one (font, size) per image; the library picks one per
	// character, which is the default (false).
	FontPerImage bool `json:"font_per_image,omitempty"`

	Mode string `json:"mode"`
	// Charset: characters to draw from in text mode; in arith mode the
	// alphabet labels are validated against (ArithCharset).
	Charset string `json:"charset"`
	MinLen  int    `json:"min_len"`
	MaxLen  int    `json:"max_len"`
	// ArithOps: operators drawn in arith mode ("+-*").
	ArithOps string `json:"arith_ops,omitempty"`
	// BracketProb: probability that an arith expression has a bracket pair,
	// placed around the first or the second operation with equal chance.
	BracketProb float64 `json:"bracket_prob,omitempty"`

	// PlainChars are drawn as the font draws them: no crop, rotation, warp or
	// resize. The competition's minus sign is a thin bar; warping stretches
	// the bar's ink box to the whole cell, turning it into a block.
	PlainChars string `json:"plain_chars,omitempty"`

	MaxRotate float64    `json:"max_rotate"` // degrees, uniform in ±MaxRotate (30)
	WarpX     [2]float64 `json:"warp_x"`     // horizontal warp range as a fraction of the cell width (0.1, 0.3)
	WarpY     [2]float64 `json:"warp_y"`     // vertical warp range as a fraction of the cell height (0.2, 0.3)
	// SpaceProb: chance that a blank cell (a space drawn the same way) is
	// inserted before a character (0.5).
	SpaceProb float64 `json:"space_prob"`
	// Overlap: each cell starts up to Overlap × (average cell width) left of
	// the previous cell's end (0.25).
	Overlap float64 `json:"overlap"`

	NoiseDots   int     `json:"noise_dots"`   // 30
	DotWidth    float64 `json:"dot_width"`    // 3
	NoiseCurves int     `json:"noise_curves"` // 1

	// ColorPerChar draws every character in its own colour; the library uses
	// one colour per image for text, dots and arc.
	ColorPerChar bool `json:"color_per_char,omitempty"`
	// OpaqueText blends glyphs by their coverage only. The library instead
	// masks each glyph by 1.97 × its luminance, so dark colours come out
	// faint; that is the default (false).
	OpaqueText bool `json:"opaque_text,omitempty"`
	// Smooth applies PIL's ImageFilter.SMOOTH at the end (true).
	Smooth bool `json:"smooth"`

	Seed int64 `json:"seed"`
}

// BookConfig is the book's captcha: 170×80, 4 characters from digits and
// uppercase letters, library defaults otherwise.
func BookConfig() CaptchaConfig {
	return CaptchaConfig{
		Width: 170, Height: 80,
		FontSizes: []int{42, 50, 56},
		Mode:      ModeText, Charset: CaptchaCharset, MinLen: 4, MaxLen: 4,
		MaxRotate: 30, WarpX: [2]float64{0.1, 0.3}, WarpY: [2]float64{0.2, 0.3},
		SpaceProb: 0.5, Overlap: 0.25,
		NoiseDots: 30, DotWidth: 3, NoiseCurves: 1,
		Smooth: true,
	}
}

// ArithConfig is the preliminary round's look: 180×60 arithmetic
// expressions, font sizes 35–55, thin unwarped minus signs.
func ArithConfig() CaptchaConfig {
	c := BookConfig()
	c.Width, c.Height = 180, 60
	c.FontSizes = SizeRange(35, 55)
	c.Mode, c.Charset = ModeArith, ArithCharset
	c.MinLen, c.MaxLen = 5, ArithMaxTextLen
	c.ArithOps = "+-*"
	c.BracketProb = 0.5
	c.PlainChars = "-"
	return c
}

// SizeRange returns lo, lo+1, ..., hi.
func SizeRange(lo, hi int) []int {
	var s []int
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}

// Validate reports the first invalid field.
func (c *CaptchaConfig) Validate() error {
	switch {
	case c.Width <= 0 || c.Height <= 0:
		return fmt.Errorf("captcha size %dx%d must be positive", c.Width, c.Height)
	case c.Width > 10000 || c.Height > 10000:
		return fmt.Errorf("captcha size %dx%d too large", c.Width, c.Height)
	case len(c.FontSizes) == 0:
		return errors.New("font_sizes is empty")
	case c.MaxRotate < 0 || c.MaxRotate > 180:
		return fmt.Errorf("max_rotate %g outside [0, 180]", c.MaxRotate)
	case c.WarpX[0] < 0 || c.WarpX[1] < c.WarpX[0] || c.WarpY[0] < 0 || c.WarpY[1] < c.WarpY[0]:
		return fmt.Errorf("warp ranges %v, %v must be 0 <= lo <= hi", c.WarpX, c.WarpY)
	case c.SpaceProb < 0 || c.SpaceProb > 1:
		return fmt.Errorf("space_prob %g outside [0, 1]", c.SpaceProb)
	case c.Overlap < 0 || c.Overlap > 1:
		return fmt.Errorf("overlap %g outside [0, 1]", c.Overlap)
	case c.NoiseDots < 0 || c.NoiseCurves < 0 || c.DotWidth < 0:
		return errors.New("noise_dots, noise_curves and dot_width must be >= 0")
	}
	for _, s := range c.FontSizes {
		if s < 4 || s > 1000 {
			return fmt.Errorf("font size %d outside [4, 1000]", s)
		}
	}
	switch c.Mode {
	case ModeText:
		if c.Charset == "" {
			return errors.New("charset is empty")
		}
		if !utf8.ValidString(c.Charset) {
			return errors.New("charset is not valid UTF-8")
		}
		if strings.ContainsAny(c.Charset, " \t\r\n") {
			return errors.New("charset must not contain white space (labels.txt separates fields with it)")
		}
		if c.MinLen < 1 || c.MaxLen < c.MinLen {
			return fmt.Errorf("length range [%d, %d] invalid", c.MinLen, c.MaxLen)
		}
	case ModeArith:
		if c.ArithOps == "" || strings.Trim(c.ArithOps, "+-*/") != "" {
			return fmt.Errorf("arith_ops %q must be a non-empty subset of +-*/", c.ArithOps)
		}
		if c.BracketProb < 0 || c.BracketProb > 1 {
			return fmt.Errorf("bracket_prob %g outside [0, 1]", c.BracketProb)
		}
	default:
		return fmt.Errorf("mode %q: want %q or %q", c.Mode, ModeText, ModeArith)
	}
	return nil
}

// Alphabet is the set of characters labels may contain.
func (c *CaptchaConfig) Alphabet() string {
	if c.Mode == ModeArith {
		return Digits + c.ArithOps + "()"
	}
	return c.Charset
}

// Generator draws captchas. Sample is deterministic in (Seed, index), so an
// infinite on-the-fly stream and a pre-generated cache of the same indices
// hold the same images. A Generator is safe for concurrent use.
type Generator struct {
	cfg     CaptchaConfig
	fonts   []Font
	runes   []rune         // text-mode charset
	choices map[rune][]int // fonts that have a glyph for the rune
	plain   map[rune]bool

	mu    sync.Mutex
	cache map[glyphKey]*glyph
}

// glyphCacheLimit bounds memory for large (CJK) charsets; glyphs beyond it
// are rendered every time.
const glyphCacheLimit = 50000

type glyphKey struct {
	font, size int
	r          rune
}

// NewGenerator validates cfg and loads its fonts. Every character the
// generator can draw must exist in at least one font; characters are only
// drawn with fonts that have them.
func NewGenerator(cfg CaptchaConfig) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("captcha config: %w", err)
	}
	entries := cfg.Fonts
	if len(entries) == 0 {
		entries = DefaultFonts()
	}
	fonts, err := LoadFonts(entries)
	if err != nil {
		return nil, fmt.Errorf("captcha fonts: %w", err)
	}
	cfg.Fonts = append([]string(nil), entries...)
	cfg.FontSizes = append([]int(nil), cfg.FontSizes...)
	g := &Generator{
		cfg:     cfg,
		fonts:   fonts,
		choices: map[rune][]int{},
		plain:   map[rune]bool{},
		cache:   map[glyphKey]*glyph{},
	}
	if cfg.Mode == ModeText {
		g.runes = []rune(cfg.Charset)
	}
	for _, r := range cfg.PlainChars {
		g.plain[r] = true
	}
	for _, r := range []rune(" " + cfg.Alphabet()) {
		if _, done := g.choices[r]; done {
			continue
		}
		var idx []int
		for i, f := range fonts {
			if hasGlyph(f.Font, r) {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 && r != ' ' {
			return nil, fmt.Errorf("captcha fonts: no font has a glyph for %q", r)
		}
		g.choices[r] = idx
	}
	return g, nil
}

// Config returns the generator's configuration with defaults resolved.
func (g *Generator) Config() CaptchaConfig { return g.cfg }

// Fonts returns the loaded faces.
func (g *Generator) Fonts() []Font { return g.fonts }

// sampleRNG derives independent streams per (seed, index, stream); stream 0
// draws the text, stream 1 the image, so Label does not need to render.
func sampleRNG(seed, index int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(splitmix64(uint64(seed)), splitmix64(uint64(index)<<1|stream)))
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Label returns the text of sample index without drawing it.
func (g *Generator) Label(index int64) string {
	return g.RandomText(sampleRNG(g.cfg.Seed, index, 0))
}

// Sample draws sample index: the same (Seed, index) always gives the same
// pixels, whatever goroutine or order it is called in.
func (g *Generator) Sample(index int64) (*image.RGBA, string) {
	text := g.Label(index)
	return g.Render(sampleRNG(g.cfg.Seed, index, 1), text), text
}

// RandomText draws a label: MinLen..MaxLen characters of Charset in text
// mode, an expression in arith mode.
func (g *Generator) RandomText(rng *rand.Rand) string {
	if g.cfg.Mode == ModeArith {
		return RandomExpression(rng, g.cfg.ArithOps, g.cfg.BracketProb)
	}
	n := g.cfg.MinLen + rng.IntN(g.cfg.MaxLen-g.cfg.MinLen+1)
	b := make([]rune, n)
	for i := range b {
		b[i] = g.runes[rng.IntN(len(g.runes))]
	}
	return string(b)
}

// RandomExpression draws "a?b?c" with single digits and operators from ops;
// with probability bracketProb one operation is bracketed: "(a?b)?c" or "a?(b?c)".
func RandomExpression(rng *rand.Rand, ops string, bracketProb float64) string {
	d := func() byte { return '0' + byte(rng.IntN(10)) }
	o := func() byte { return ops[rng.IntN(len(ops))] }
	a, o1, b, o2, c := d(), o(), d(), o(), d()
	if rng.Float64() < bracketProb {
		if rng.IntN(2) == 0 {
			return string([]byte{'(', a, o1, b, ')', o2, c})
		}
		return string([]byte{a, o1, '(', b, o2, c, ')'})
	}
	return string([]byte{a, o1, b, o2, c})
}

// SampleBatch draws samples start..start+len(imgs)-1 into imgs and labels on
// all cores; the on-the-fly training feed.
func (g *Generator) SampleBatch(ctx context.Context, start int64, imgs []*image.RGBA, labels []string) error {
	if len(labels) != len(imgs) {
		return fmt.Errorf("sample batch: %d images but %d labels", len(imgs), len(labels))
	}
	return parallelFor(ctx, len(imgs), func(i int) error {
		imgs[i], labels[i] = g.Sample(start + int64(i))
		return nil
	})
}

// parallelFor runs fn(0..n-1) on GOMAXPROCS workers and stops at the first
// error or when ctx is done.
func parallelFor(ctx context.Context, n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// glyph is one character rendered by one face: its cell size, as the
// library measures it (advance × ink bottom below the ascender line), and
// the ink coverage cropped to its bounding box.
type glyph struct {
	tw, th int
	cov    []float32 // cw×ch, row-major, 0..1
	cw, ch int
	ox, oy int // top-left of the ink inside the cell, for plain drawing
}

func (g *Generator) glyph(fontIdx, sizeIdx int, r rune) (*glyph, error) {
	key := glyphKey{fontIdx, sizeIdx, r}
	g.mu.Lock()
	gl, ok := g.cache[key]
	g.mu.Unlock()
	if ok {
		return gl, nil
	}
	// opentype.Face is not safe for concurrent use; a fresh one per miss is
	// cheap next to rasterizing.
	face, err := opentype.NewFace(g.fonts[fontIdx].Font, &opentype.FaceOptions{
		Size: float64(g.cfg.FontSizes[sizeIdx]), DPI: 72, Hinting: font.HintingNone,
	})
	if err != nil {
		return nil, fmt.Errorf("font %s: %w", g.fonts[fontIdx].Name, err)
	}
	ascent := face.Metrics().Ascent.Ceil()
	dr, mask, maskp, adv, ok := face.Glyph(fixed.P(0, ascent), r)
	gl = &glyph{tw: max(1, adv.Round()), th: max(1, ascent)}
	if ok && !dr.Empty() {
		minX, minY, maxX, maxY := math.MaxInt, math.MaxInt, math.MinInt, math.MinInt
		for y := dr.Min.Y; y < dr.Max.Y; y++ {
			for x := dr.Min.X; x < dr.Max.X; x++ {
				if _, _, _, a := mask.At(maskp.X+x-dr.Min.X, maskp.Y+y-dr.Min.Y).RGBA(); a != 0 {
					minX, minY = min(minX, x), min(minY, y)
					maxX, maxY = max(maxX, x+1), max(maxY, y+1)
				}
			}
		}
		if maxX > minX {
			gl.cw, gl.ch, gl.ox, gl.oy = maxX-minX, maxY-minY, minX, minY
			gl.cov = make([]float32, gl.cw*gl.ch)
			for y := minY; y < maxY; y++ {
				for x := minX; x < maxX; x++ {
					_, _, _, a := mask.At(maskp.X+x-dr.Min.X, maskp.Y+y-dr.Min.Y).RGBA()
					gl.cov[(y-minY)*gl.cw+x-minX] = float32(a) / 0xffff
				}
			}
			gl.th = max(gl.th, maxY)
		}
	}
	g.mu.Lock()
	if len(g.cache) < glyphCacheLimit {
		g.cache[key] = gl
	}
	g.mu.Unlock()
	return gl, nil
}

// cell is one drawn character: a coverage map and its colour.
type cell struct {
	w, h int
	cov  []float32
	col  [3]float64
}

func randInt(rng *rand.Rand, lo, hi int) int         { return lo + rng.IntN(hi-lo+1) } // inclusive, like random.randint
func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

func randomColor(rng *rand.Rand, lo, hi int) [3]float64 {
	return [3]float64{float64(randInt(rng, lo, hi)), float64(randInt(rng, lo, hi)), float64(randInt(rng, lo, hi))}
}

// Render draws text with this generator's style using rng for every random
// choice. Characters no font has are drawn as blank cells.
func (g *Generator) Render(rng *rand.Rand, text string) *image.RGBA {
	cfg := &g.cfg
	W, H := cfg.Width, cfg.Height
	bg := randomColor(rng, 238, 255)
	col := randomColor(rng, 10, 200)
	imgFont, imgSize := -1, rng.IntN(len(cfg.FontSizes))
	if cfg.FontPerImage {
		imgFont = rng.IntN(len(g.fonts))
	}
	pick := func(r rune) (int, int, bool) {
		choices, ok := g.choices[r]
		if !ok {
			choices = nil
			for i, f := range g.fonts {
				if hasGlyph(f.Font, r) {
					choices = append(choices, i)
				}
			}
		}
		if len(choices) == 0 {
			return 0, 0, false
		}
		if imgFont >= 0 {
			for _, c := range choices {
				if c == imgFont {
					return imgFont, imgSize, true
				}
			}
			return choices[rng.IntN(len(choices))], imgSize, true
		}
		return choices[rng.IntN(len(choices))], rng.IntN(len(cfg.FontSizes)), true
	}

	var cells []cell
	nChars := 0
	for _, r := range text {
		nChars++
		c := col
		if cfg.ColorPerChar {
			c = randomColor(rng, 10, 200)
		}
		if rng.Float64() < cfg.SpaceProb {
			cells = append(cells, g.drawChar(rng, ' ', pick, c))
		}
		cells = append(cells, g.drawChar(rng, r, pick, c))
	}

	textWidth := 0
	for _, c := range cells {
		textWidth += c.w
	}
	width := max(textWidth, W)
	cv := newCanvas(width, H, bg)
	if nChars > 0 {
		average := textWidth / nChars
		spread := int(cfg.Overlap * float64(average))
		offset := int(float64(average) * 0.1)
		for _, c := range cells {
			cv.paste(&c, offset, (H-c.h)/2, !cfg.OpaqueText)
			offset += c.w - rng.IntN(spread+1)
		}
	}
	if width > W {
		cv = cv.resizeWidth(W)
	}
	for range cfg.NoiseDots {
		x, y := randInt(rng, 0, W), randInt(rng, 0, H)
		cv.dot(float64(x), float64(y), cfg.DotWidth, col)
	}
	for range cfg.NoiseCurves {
		x1 := randInt(rng, 0, W/5)
		x2 := randInt(rng, W-W/5, W)
		y1 := randInt(rng, H/5, H-H/5)
		y2 := randInt(rng, y1, H-H/5)
		end := randInt(rng, 160, 200)
		start := randInt(rng, 0, 20)
		cv.arc(x1, y1, x2, y2, float64(start), float64(end), col)
	}
	if cfg.Smooth {
		cv.smooth()
	}
	return cv.rgba()
}

type pickFunc func(r rune) (font, size int, ok bool)

// drawChar follows ImageCaptcha._draw_character: crop the ink, rotate it
// (expanding the box), stretch it to the cell grown by the warp offsets and
// map that quadrilateral back onto a cell of the original size. The three
// resamplings are composed into one bilinear lookup per output pixel. The
// library's random (dx, dy) draw offset is omitted: the crop removes it.
func (g *Generator) drawChar(rng *rand.Rand, r rune, pick pickFunc, col [3]float64) cell {
	fi, si, ok := pick(r)
	if !ok {
		return cell{w: 1, h: 1, cov: []float32{0}, col: col}
	}
	gl, err := g.glyph(fi, si, r)
	if err != nil { // parsing errors surface at NewGenerator; treat as blank
		return cell{w: 1, h: 1, cov: []float32{0}, col: col}
	}
	tw, th := gl.tw, gl.th
	out := cell{w: tw, h: th, cov: make([]float32, tw*th), col: col}
	if gl.cov == nil {
		return out
	}
	if g.plain[r] {
		for y := range gl.ch {
			ty := y + gl.oy
			if ty < 0 || ty >= th {
				continue
			}
			for x := range gl.cw {
				tx := x + gl.ox
				if tx >= 0 && tx < tw {
					out.cov[ty*tw+tx] = gl.cov[y*gl.cw+x]
				}
			}
		}
		return out
	}

	angle := uniform(rng, -g.cfg.MaxRotate, g.cfg.MaxRotate) * math.Pi / 180
	sin, cos := math.Sincos(angle)
	cw, ch := float64(gl.cw), float64(gl.ch)
	rw := math.Ceil(cw*math.Abs(cos) + ch*math.Abs(sin))
	rh := math.Ceil(cw*math.Abs(sin) + ch*math.Abs(cos))

	dx := float64(tw) * uniform(rng, g.cfg.WarpX[0], g.cfg.WarpX[1])
	dy := float64(th) * uniform(rng, g.cfg.WarpY[0], g.cfg.WarpY[1])
	x1 := float64(int(uniform(rng, -dx, dx)))
	y1 := float64(int(uniform(rng, -dy, dy)))
	x2 := float64(int(uniform(rng, -dx, dx)))
	y2 := float64(int(uniform(rng, -dy, dy)))
	w2 := float64(tw) + math.Abs(x1) + math.Abs(x2)
	h2 := float64(th) + math.Abs(y1) + math.Abs(y2)
	// PIL QUAD corners: upper left, lower left, lower right, upper right.
	ulx, uly := x1, y1
	llx, lly := -x1, h2-y2
	lrx, lry := w2+x2, h2+y2
	urx, ury := w2-x2, -y1
	sx, sy := rw/w2, rh/h2

	for y := range th {
		v := (float64(y) + 0.5) / float64(th)
		for x := range tw {
			u := (float64(x) + 0.5) / float64(tw)
			a, b, c, d := (1-u)*(1-v), u*(1-v), (1-u)*v, u*v
			qx := ulx*a + urx*b + llx*c + lrx*d
			qy := uly*a + ury*b + lly*c + lry*d
			// stretched cell → rotated box, centred
			px := qx*sx - rw/2
			py := qy*sy - rh/2
			// undo PIL's counter-clockwise rotation (y points down)
			gx := cos*px - sin*py + cw/2
			gy := sin*px + cos*py + ch/2
			out.cov[y*tw+x] = bilinear(gl.cov, gl.cw, gl.ch, gx-0.5, gy-0.5)
		}
	}
	return out
}

// bilinear samples a row-major w×h map at continuous pixel coordinates
// (pixel centres on integers); outside is 0.
func bilinear(m []float32, w, h int, x, y float64) float32 {
	if x <= -1 || y <= -1 || x >= float64(w) || y >= float64(h) {
		return 0
	}
	x0, y0 := int(math.Floor(x)), int(math.Floor(y))
	fx, fy := float32(x-float64(x0)), float32(y-float64(y0))
	at := func(i, j int) float32 {
		if i < 0 || j < 0 || i >= w || j >= h {
			return 0
		}
		return m[j*w+i]
	}
	top := at(x0, y0)*(1-fx) + at(x0+1, y0)*fx
	bot := at(x0, y0+1)*(1-fx) + at(x0+1, y0+1)*fx
	return top*(1-fy) + bot*fy
}

// canvas holds an RGB image as float planes so rounding happens once.
type canvas struct {
	w, h int
	p    [3][]float32
}

func newCanvas(w, h int, bg [3]float64) *canvas {
	c := &canvas{w: w, h: h}
	for k := range 3 {
		c.p[k] = make([]float32, w*h)
		for i := range c.p[k] {
			c.p[k][i] = float32(bg[k])
		}
	}
	return c
}

// lumaGain is the library's `table = [int(i * 1.97) for i in range(256)]`,
// applied to the glyph's luminance to make its paste mask.
const lumaGain = 1.97

func (cv *canvas) paste(c *cell, ox, oy int, lumaMask bool) {
	// PIL's RGB→L weights.
	luma := (299*c.col[0] + 587*c.col[1] + 114*c.col[2]) / 1000
	for y := range c.h {
		ty := oy + y
		if ty < 0 || ty >= cv.h {
			continue
		}
		for x := range c.w {
			tx := ox + x
			a := float64(c.cov[y*c.w+x])
			if tx < 0 || tx >= cv.w || a == 0 {
				continue
			}
			i := ty*cv.w + tx
			if lumaMask {
				// The glyph was drawn on transparent black, so its RGB is
				// colour × coverage, and the mask derives from that RGB.
				m := float64(min(255, int(lumaGain*float64(int(luma*a+0.5))))) / 255
				for k := range 3 {
					cv.p[k][i] = float32(c.col[k]*a*m + float64(cv.p[k][i])*(1-m))
				}
			} else {
				for k := range 3 {
					cv.p[k][i] = float32(c.col[k]*a + float64(cv.p[k][i])*(1-a))
				}
			}
		}
	}
}

// resizeWidth squeezes the canvas horizontally with a triangle filter whose
// support widens with the scale (Pillow's bilinear resize), so downscaling
// averages instead of skipping columns.
func (cv *canvas) resizeWidth(nw int) *canvas {
	out := &canvas{w: nw, h: cv.h}
	scale := float64(cv.w) / float64(nw)
	support := math.Max(scale, 1)
	type tap struct {
		lo      int
		weights []float32
	}
	taps := make([]tap, nw)
	for x := range nw {
		center := (float64(x) + 0.5) * scale
		lo := max(0, int(math.Floor(center-support)))
		hi := min(cv.w, int(math.Ceil(center+support)))
		var ws []float32
		var sum float64
		for i := lo; i < hi; i++ {
			w := math.Max(0, 1-math.Abs((float64(i)+0.5-center)/support))
			ws = append(ws, float32(w))
			sum += w
		}
		for i := range ws {
			ws[i] = float32(float64(ws[i]) / sum)
		}
		taps[x] = tap{lo, ws}
	}
	for k := range 3 {
		out.p[k] = make([]float32, nw*cv.h)
		for y := range cv.h {
			row := cv.p[k][y*cv.w : (y+1)*cv.w]
			for x, t := range taps {
				var s float32
				for j, w := range t.weights {
					s += row[t.lo+j] * w
				}
				out.p[k][y*nw+x] = s
			}
		}
	}
	return out
}

func (cv *canvas) set(x, y int, col [3]float64) {
	if x < 0 || y < 0 || x >= cv.w || y >= cv.h {
		return
	}
	i := y*cv.w + x
	for k := range 3 {
		cv.p[k][i] = float32(col[k])
	}
}

// dot draws the library's noise dot: a line from (x, y) to (x-1, y-1) of
// the given width, i.e. pixels within width/2 of that diagonal segment.
func (cv *canvas) dot(x, y, width float64, col [3]float64) {
	r := width / 2
	ax, ay := x-1, y-1
	for py := int(math.Floor(ay - r)); py <= int(math.Ceil(y+r)); py++ {
		for px := int(math.Floor(ax - r)); px <= int(math.Ceil(x+r)); px++ {
			rx, ry := float64(px)-ax, float64(py)-ay
			t := (rx + ry) / 2 // projection onto (1,1), segment length² = 2
			perp := math.Abs(rx-ry) / math.Sqrt2
			if t >= 0 && t <= 1 && perp <= r {
				cv.set(px, py, col)
			}
		}
	}
}

// arc draws a 1-pixel arc of the ellipse inscribed in the box, angles in
// degrees clockwise from 3 o'clock as in PIL's ImageDraw.arc.
func (cv *canvas) arc(x1, y1, x2, y2 int, start, end float64, col [3]float64) {
	cx, cy := float64(x1+x2)/2, float64(y1+y2)/2
	rx, ry := float64(x2-x1)/2, float64(y2-y1)/2
	steps := int(math.Ceil((end-start)/180*math.Pi*math.Max(rx, ry)*2)) + 1
	for i := 0; i <= steps; i++ {
		t := (start + (end-start)*float64(i)/float64(steps)) * math.Pi / 180
		cv.set(int(math.Round(cx+rx*math.Cos(t))), int(math.Round(cy+ry*math.Sin(t))), col)
	}
}

// smooth is PIL's ImageFilter.SMOOTH: 3×3 kernel 1 1 1 / 1 5 1 / 1 1 1
// divided by 13; PIL copies the border pixels unfiltered.
func (cv *canvas) smooth() {
	w, h := cv.w, cv.h
	if w < 3 || h < 3 {
		return
	}
	for k := range 3 {
		src := cv.p[k]
		dst := make([]float32, len(src))
		copy(dst, src)
		for y := 1; y < h-1; y++ {
			for x := 1; x < w-1; x++ {
				i := y*w + x
				s := src[i-w-1] + src[i-w] + src[i-w+1] +
					src[i-1] + 5*src[i] + src[i+1] +
					src[i+w-1] + src[i+w] + src[i+w+1]
				dst[i] = s / 13
			}
		}
		cv.p[k] = dst
	}
}

func (cv *canvas) rgba() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, cv.w, cv.h))
	q := func(v float32) uint8 {
		switch {
		case v <= 0:
			return 0
		case v >= 255:
			return 255
		}
		return uint8(v + 0.5)
	}
	for i := range cv.w * cv.h {
		img.Pix[4*i] = q(cv.p[0][i])
		img.Pix[4*i+1] = q(cv.p[1][i])
		img.Pix[4*i+2] = q(cv.p[2][i])
		img.Pix[4*i+3] = 255
	}
	return img
}
