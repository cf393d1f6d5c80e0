package synth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dl4img/dl4img/internal/atomicfile"
	"github.com/dl4img/dl4img/internal/imagefile"
	"github.com/dl4img/dl4img/ocr/expr"
	"github.com/dl4img/dl4img/ocr/formula/boxes"
)

// Config sets up a Generator. The zero value is usable: it draws the sizes
// of the competition's final round with the Debian font locations.
type Config struct {
	Seed uint64
	// Image size ranges (inclusive); zero means the competition's
	// 400–1000 × 800–4000.
	MinHeight, MaxHeight, MinWidth, MaxWidth int
	// Font size range in pixels per em; zero means 36–96.
	MinFontSize, MaxFontSize float64
	// CJKFont is a TrueType collection or font with the variable characters;
	// empty means DefaultCJKFont.
	CJKFont string
	// DigitFontDir holds DejaVu faces for digits; empty means
	// DefaultDigitFontDir, "-" means only the Go fonts.
	DigitFontDir string
	// Workers for GenerateDataset; zero means GOMAXPROCS.
	Workers int
	// FastPNG writes the dataset's PNGs at png.BestSpeed: PNG encoding is
	// ~80% of generating an image at the default level. The files differ
	// (larger), the pixels do not.
	FastPNG bool
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MinHeight, 400)
	def(&c.MaxHeight, 1000)
	def(&c.MinWidth, 800)
	def(&c.MaxWidth, 4000)
	if c.MinFontSize == 0 {
		c.MinFontSize = 36
	}
	if c.MaxFontSize == 0 {
		c.MaxFontSize = 96
	}
	if c.CJKFont == "" {
		c.CJKFont = DefaultCJKFont
	}
	switch c.DigitFontDir {
	case "":
		c.DigitFontDir = DefaultDigitFontDir
	case "-":
		c.DigitFontDir = ""
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.MinHeight < 100 || c.MaxHeight < c.MinHeight:
		return fmt.Errorf("height range %d..%d: need 100 ≤ min ≤ max", c.MinHeight, c.MaxHeight)
	case c.MinWidth < 200 || c.MaxWidth < c.MinWidth:
		return fmt.Errorf("width range %d..%d: need 200 ≤ min ≤ max", c.MinWidth, c.MaxWidth)
	case c.MinFontSize < 8 || c.MaxFontSize < c.MinFontSize:
		return fmt.Errorf("font size range %g..%g: need 8 ≤ min ≤ max", c.MinFontSize, c.MaxFontSize)
	}
	return nil
}

// Generator draws final-round formula images. It is safe for concurrent use.
type Generator struct {
	cfg   Config
	fonts *fontSet
}

// NewGenerator loads the fonts; it fails when the CJK font is missing.
func NewGenerator(cfg Config) (*Generator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("formula generator: %w", err)
	}
	fs, err := loadFonts(cfg.CJKFont, cfg.DigitFontDir)
	if err != nil {
		return nil, fmt.Errorf("formula generator: %w", err)
	}
	return &Generator{cfg: cfg, fonts: fs}, nil
}

// Sample is one generated image with its ground truth.
type Sample struct {
	Index int
	Image *image.RGBA
	// Lines in top-to-bottom order: the assignments, then the expression.
	Lines []string
	Value *big.Rat
	// Boxes are the lines' ink bounding boxes (coverage ≥ 50%), in Lines order.
	Boxes []image.Rectangle
}

// CleanLine is line index of a stream (seed) of single assignment lines
// ("流=42072") drawn in the generator's fonts at 28–40 px without
// rotation, noise or background: black ink on white, cropped to the ink.
// A reader learns to read such lines in minutes, which tests use to check
// that training works.
func (g *Generator) CleanLine(seed uint64, index int) (text string, crop *image.Gray, err error) {
	rng := rand.New(rand.NewPCG(seed, uint64(index)))
	text = randFormulaLines(rng)[0]
	m, err := renderLine(rng, text, g.fonts.cjk[0], g.fonts.digits[rng.IntN(len(g.fonts.digits))], 28+rng.Float64()*12, 0)
	if err != nil {
		return "", nil, err
	}
	ink := inkBounds(m)
	crop = image.NewGray(image.Rect(0, 0, ink.Dx(), ink.Dy()))
	for y := range ink.Dy() {
		for x := range ink.Dx() {
			crop.Pix[y*crop.Stride+x] = 255 - m.AlphaAt(ink.Min.X+x, ink.Min.Y+y).A
		}
	}
	return text, crop, nil
}

// Text is the lines joined with ';'.
func (s *Sample) Text() string { return strings.Join(s.Lines, ";") }

// Label is the labels.txt form: text, a space, the value to 2 decimals.
func (s *Sample) Label() string { return s.Text() + " " + expr.Final.Format(s.Value) }

// Sample draws image index. The result depends only on the seed and index.
func (g *Generator) Sample(index int) (*Sample, error) {
	rng := rand.New(rand.NewPCG(g.cfg.Seed, uint64(index)))
	var lines []string
	var value *big.Rat
	for {
		lines = randFormulaLines(rng)
		v, err := expr.Final.Eval(strings.Join(lines, ";"))
		if err == nil {
			value = v
			break
		}
		if !errors.Is(err, expr.ErrDivisionByZero) {
			return nil, fmt.Errorf("sample %d: generated an unparsable formula: %w", index, err)
		}
	}
	c := g.cfg
	w := c.MinWidth + rng.IntN(c.MaxWidth-c.MinWidth+1)
	h := c.MinHeight + rng.IntN(c.MaxHeight-c.MinHeight+1)
	const margin = 10

	// Per line style, fixed before fitting so refits only change the size.
	type lineStyle struct {
		cjk, digits int
		size, angle float64
		color       rgb
	}
	styles := make([]lineStyle, len(lines))
	for i := range styles {
		dark := rng.Float64() * 50
		styles[i] = lineStyle{
			cjk:    rng.IntN(len(g.fonts.cjk)),
			digits: rng.IntN(len(g.fonts.digits)),
			size:   c.MinFontSize + rng.Float64()*(c.MaxFontSize-c.MinFontSize),
			angle:  (rng.Float64()*2 - 1) * 2.5 * math.Pi / 180,
			color:  rgb{dark + rng.Float64()*25, dark + rng.Float64()*25, dark + rng.Float64()*25},
		}
	}
	masks := make([]*image.Alpha, len(lines))
	inks := make([]image.Rectangle, len(lines))
	render := func(i int) error {
		// A separate stream per render keeps the spacing draw independent of
		// how many refits happened.
		lrng := rand.New(rand.NewPCG(g.cfg.Seed^0x9e3779b97f4a7c15, uint64(index)<<2|uint64(i)))
		m, err := renderLine(lrng, lines[i], g.fonts.cjk[styles[i].cjk], g.fonts.digits[styles[i].digits], styles[i].size, styles[i].angle)
		if err != nil {
			return fmt.Errorf("sample %d line %d: %w", index, i, err)
		}
		masks[i], inks[i] = m, inkBounds(m)
		return nil
	}
	for i := range lines {
		if err := render(i); err != nil {
			return nil, err
		}
		// Too wide: shrink to fit, then re-measure (rotation makes the fit
		// approximate, so loop).
		for inks[i].Dx() > w-2*margin {
			styles[i].size *= 0.97 * float64(w-2*margin) / float64(inks[i].Dx())
			if err := render(i); err != nil {
				return nil, err
			}
		}
	}
	// Vertical layout: lines stacked with gaps of at least 60% of the taller
	// neighbour, so the extractor can tell them apart; shrink all if needed.
	var gaps []int
	for {
		total := 2 * margin
		gaps = gaps[:0]
		for i := range lines {
			total += inks[i].Dy()
			if i > 0 {
				gaps = append(gaps, int(0.6*float64(max(inks[i].Dy(), inks[i-1].Dy()))))
				total += gaps[i-1]
			}
		}
		if total <= h {
			free := h - total
			// Split the free space randomly over the top, the gaps and the bottom.
			wts := make([]float64, len(lines)+1)
			sum := 0.0
			for i := range wts {
				wts[i] = rng.Float64()
				sum += wts[i]
			}
			y := margin + int(float64(free)*wts[0]/sum)
			boxes := make([]image.Rectangle, len(lines))
			offs := make([]image.Point, len(lines))
			for i := range lines {
				if i > 0 {
					y += gaps[i-1] + int(float64(free)*wts[i]/sum)
				}
				x := margin + rng.IntN(w-2*margin-inks[i].Dx()+1)
				offs[i] = image.Pt(x, y).Sub(inks[i].Min)
				boxes[i] = inks[i].Add(offs[i])
				y += inks[i].Dy()
			}
			colors := make([]rgb, len(lines))
			for i := range colors {
				colors[i] = styles[i].color
			}
			img := g.paint(rng, w, h, masks, offs, colors)
			return &Sample{Index: index, Image: img, Lines: lines, Value: value, Boxes: boxes}, nil
		}
		scale := float64(h-2*margin) / float64(total-2*margin) * 0.97
		for i := range lines {
			styles[i].size *= scale
			if err := render(i); err != nil {
				return nil, err
			}
		}
	}
}

// paint composes background, text and noise.
func (g *Generator) paint(rng *rand.Rand, w, h int, masks []*image.Alpha, offs []image.Point, colors []rgb) *image.RGBA {
	cv := newCanvas(w, h)
	cv.background(rng)
	// Faint lines under the text, darker thin lines and dots over it.
	randColor := func(lo, hi float64) rgb {
		l := lo + rng.Float64()*(hi-lo)
		return rgb{l + (rng.Float64()-0.5)*60, l + (rng.Float64()-0.5)*60, l + (rng.Float64()-0.5)*60}
	}
	fw, fh := float64(w), float64(h)
	for range rng.IntN(6) {
		cv.line(rng.Float64()*fw, rng.Float64()*fh, rng.Float64()*fw, rng.Float64()*fh, 1+rng.Float64()*3, randColor(90, 200))
	}
	for i, m := range masks {
		cv.drawMask(m, offs[i], colors[i])
	}
	for range rng.IntN(8) {
		cv.line(rng.Float64()*fw, rng.Float64()*fh, rng.Float64()*fw, rng.Float64()*fh, 0.8+rng.Float64()*1.2, randColor(40, 180))
	}
	nd := rng.IntN(int(fw * fh / 2000))
	for range nd {
		cv.dot(rng.Float64()*fw, rng.Float64()*fh, 0.4+rng.Float64()*1.4, randColor(0, 160))
	}
	return cv.toRGBA(rng, rng.Float64()*24)
}

// GenerateDataset writes n samples to dir as 0.png … (n-1).png, labels.txt
// (line i labels i.png: "text value") and boxes.csv
// (filename,line,x,y,w,h; line counts from 0 in label order). Images are
// generated in parallel; the bytes do not depend on the worker count.
// progress, if not nil, is called after each image (from several goroutines,
// but never concurrently).
func GenerateDataset(ctx context.Context, cfg Config, dir string, n int, progress func(done, total int)) error {
	if n < 0 {
		return fmt.Errorf("generate formula dataset: negative count %d", n)
	}
	g, err := NewGenerator(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("generate formula dataset: %w", err)
	}
	labels := make([]string, n)
	lineBoxes := make([][]image.Rectangle, n)
	var next atomic.Int64
	var done int
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range g.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				err := g.writeSample(i, dir, labels, lineBoxes)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				done++
				if progress != nil && err == nil {
					progress(done, n)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("generate formula dataset: %w", firstErr)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("generate formula dataset: %w", err)
	}
	var lb bytes.Buffer
	for _, l := range labels {
		lb.WriteString(l)
		lb.WriteByte('\n')
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, "labels.txt"), lb.Bytes()); err != nil {
		return fmt.Errorf("generate formula dataset: %w", err)
	}
	rows := make([]boxes.Row, 0, 3*n)
	for i, bs := range lineBoxes {
		for l, b := range bs {
			rows = append(rows, boxes.Row{File: fmt.Sprintf("%d.png", i), Line: l, Box: b})
		}
	}
	if err := boxes.Write(filepath.Join(dir, "boxes.csv"), rows); err != nil {
		return fmt.Errorf("generate formula dataset: %w", err)
	}
	return nil
}

func (g *Generator) writeSample(i int, dir string, labels []string, lineBoxes [][]image.Rectangle) error {
	s, err := g.Sample(i)
	if err != nil {
		return err
	}
	if err := imagefile.WritePNG(filepath.Join(dir, fmt.Sprintf("%d.png", i)), s.Image, g.cfg.FastPNG); err != nil {
		return err
	}
	labels[i] = s.Label()
	lineBoxes[i] = s.Boxes
	return nil
}
