package lines

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"sort"
)

// Params tunes the line extractor. Sizes marked "coarse" are in pixels of
// the downscaled image.
type Params struct {
	// Equalize enables histogram equalization before the coarse stages.
	Equalize bool
	// MedianSize is the median filter's window (odd; 1 disables).
	MedianSize int
	// DownScale is the integer reduction factor for the coarse stages.
	DownScale int
	// Flatten (coarse), if positive, divides out the background: the
	// image is replaced by 255 - (closing(image, Flatten×Flatten) - image),
	// the inverted black-hat, so gradients and blotches wider than the
	// kernel vanish while strokes thinner than it stay dark.
	Flatten int
	// OpenW×OpenH (coarse) is the opening kernel: wide, so the light gaps
	// between the characters of a line fill up and the line becomes a blob.
	OpenW, OpenH int
	// CloseW×CloseH (coarse) is the closing kernel: it removes dark specks
	// and thin lines that the kernel does not fit in.
	CloseW, CloseH int
	// ThresholdMode picks how the coarse image is binarized; pixels at or
	// below the threshold are text.
	ThresholdMode ThresholdMode
	// Threshold is the ThresholdFixed value.
	Threshold int
	// MinContrast is ThresholdBackground's smallest distance below the
	// background level.
	MinContrast int
	// BandGap and BandInk (coarse; BandGap 0 disables) cut a blob at
	// every run of at least BandGap rows holding fewer than BandInk of its
	// pixels (or an eighth of its widest row's): a blotch streak or steep
	// noise line that touches a line, or joins two, is narrow where it is
	// alone.
	BandGap, BandInk int
	// MinArea and MinHeight (coarse) drop blobs that are too small to be a
	// line.
	MinArea, MinHeight int
	// MinAspect drops blobs narrower than MinAspect times their height:
	// the shortest line, "不=5", is about three characters wide.
	MinAspect float64
	// MaxLines keeps at most this many blobs, the largest.
	MaxLines int
	// Pad is how far around a coarse blob (as a fraction of its height) the
	// local re-threshold looks for the line's components.
	Pad float64
	// LocalOpen is the side of the square opening applied to the local
	// mask (full resolution; ≤ 1 disables): it cuts noise lines thinner
	// than the strokes away from the characters they cross.
	LocalOpen int
	// NoiseLineLength and NoiseLineThickness (fractions of the line
	// height) drop local components longer than NoiseLineLength whose
	// mean thickness is below NoiseLineThickness: noise lines that would
	// stretch the box. NoiseLineLength 0 disables.
	NoiseLineLength, NoiseLineThickness float64
	// TrimShortEnds drops the short components (shorter than 0.3 line
	// heights, not stacked over or under a taller one) before the first
	// and after the last glyph-tall one: a line starts with a digit, a
	// variable or "(" and ends with a digit, a variable or ")", all tall,
	// so short pieces at its ends are noise (dashes of a broken noise
	// line, a stub), while a "-" inside it stays.
	TrimShortEnds bool
	// TrimInk and TrimRun (fractions of the line height; TrimRun 0
	// disables) cut a run of at least TrimRun columns holding fewer than
	// TrimInk mask pixels (at least 5) from each end of the box: a noise
	// line stuck to the first or last glyph.
	TrimInk, TrimRun float64
	// ThinLine (fraction of the line height, 0 disables) is the side of
	// the opening that tells thin strokes from thick ones in the local
	// mask: thin pieces that leave the rows of the coarse box (or run
	// further than GrowX beyond its ends) are noise lines, and erasing them
	// cuts a noise line away from the glyph it touches. ThinLineMin is the
	// smallest side in pixels.
	ThinLine    float64
	ThinLineMin int
	// StraightLine (fraction of the line height, 0 disables) is the
	// shortest straight noise line that eraseStraightLines follows through
	// a line's neighbourhood and erases; StraightRun (fraction of the
	// height, at least StraightRunMin pixels) is the longest run across
	// such a line, StraightGap (fraction) the longest break along it and
	// StraightVotes (fraction, at least 5) how many seeds must lie on it.
	StraightLine, StraightRun, StraightGap, StraightVotes float64
	StraightRunMin                                        int
	// ReachY (fraction of the coarse box's height, 0 disables) is how far
	// above or below the coarse box's rows a taken glyph-tall component
	// that ends there still extends the line's box: the coarse opening
	// wears away glyph parts narrower than its kernel (上's stroke, a thin
	// 7's bar), so the coarse box can be a third shorter than the line.
	// The neighbourhood is that much taller; where no line is found in it,
	// refine looks again without.
	ReachY float64
	// RefineShorter (0 disables): where the line's box is shorter than
	// RefineShorter times the coarse box, refine runs once more on the
	// box's rows and keeps what it finds there: noise that stretched the
	// coarse box (a blotch, noise lines joined to the blob) made every
	// size refine derives from its height too large (padding, the
	// glyph-tall and speck tests), and cost glyphs (a line's end crossed
	// by a noise line, a first glyph taken for a speck).
	RefineShorter float64
	// TipReach (fraction of the line height, 0 disables) is how far
	// beyond the box found on the median-filtered image the final box may
	// still grow to take the thin strokes and stroke tips that the 5×5
	// median wore away (a 2-px bar vanishes under it), as found on a 3×3
	// median of the gray image connected to the taken glyphs; TipReachY is
	// the vertical reach.
	TipReach, TipReachY float64
	// GrowX (fraction of the line height) is how far beyond the box's
	// ends glyphs within the line's rows are still taken, step by step
	// ("-" then "上"), up to GrowMax beyond the coarse box's ends (0 means
	// GrowX).
	GrowX, GrowMax float64
	// NoiseLineMinPx is a floor in pixels for NoiseLineThickness: noise
	// lines are drawn up to 4 px thick whatever the text's size, so on a
	// blob of noise lines, whose height is small, 0.08 h would be too thin.
	NoiseLineMinPx float64
	// MinComponent drops local components smaller than this fraction of
	// the line height, squared (specks of noise).
	MinComponent float64
	// StripHeight, StripMaxWidth, StripGap and StripMargin shape the joined
	// strip: crops scaled to StripHeight-2*StripMargin, joined left to right
	// with StripGap pixels between them, shrunk as a whole if wider than
	// StripMaxWidth. PadToWidth pads the strip to StripMaxWidth.
	StripHeight, StripMaxWidth, StripGap, StripMargin int
	PadToWidth                                        bool
}

// DefaultParams are tuned on the generator's images.
func DefaultParams() Params {
	return Params{
		Equalize:           false,
		Flatten:            15,
		MedianSize:         5,
		DownScale:          4,
		OpenW:              15,
		OpenH:              3,
		CloseW:             3,
		CloseH:             3,
		ThresholdMode:      ThresholdBackground,
		Threshold:          215,
		MinContrast:        24,
		BandGap:            12,
		BandInk:            10,
		MinArea:            40,
		MinHeight:          4,
		MinAspect:          1.5,
		MaxLines:           3,
		Pad:                0.3,
		MinComponent:       0.12,
		NoiseLineLength:    1.5,
		NoiseLineThickness: 0.08,
		TrimInk:            0.15,
		TrimRun:            0.6,
		TrimShortEnds:      true,
		ThinLine:           0.06,
		ThinLineMin:        3,
		GrowX:              0.5,
		TipReach:           0.5,
		TipReachY:          0.12,
		ReachY:             0.3,
		RefineShorter:      0.9,
		GrowMax:            1.5,
		NoiseLineMinPx:     5,
		StraightLine:       1.2,
		StraightRun:        0.12,
		StraightRunMin:     8,
		StraightGap:        0.5,
		StraightVotes:      0.1,
		LocalOpen:          1,
		StripHeight:        81,
		StripMaxWidth:      900,
		StripGap:           12,
		StripMargin:        4,
	}
}

func (p Params) validate() error {
	switch {
	case p.MedianSize < 1 || p.MedianSize%2 == 0:
		return fmt.Errorf("median size %d: must be odd and positive", p.MedianSize)
	case p.DownScale < 1:
		return fmt.Errorf("downscale %d: must be ≥ 1", p.DownScale)
	case p.OpenW < 1 || p.OpenH < 1 || p.CloseW < 1 || p.CloseH < 1:
		return fmt.Errorf("kernels %dx%d, %dx%d: must be ≥ 1", p.OpenW, p.OpenH, p.CloseW, p.CloseH)
	case p.ThresholdMode == ThresholdFixed && (p.Threshold < 0 || p.Threshold > 255):
		return fmt.Errorf("threshold %d: must be in 0..255", p.Threshold)
	case p.ThresholdMode < ThresholdBackground || p.ThresholdMode > ThresholdFixed:
		return fmt.Errorf("threshold mode %d: unknown", p.ThresholdMode)
	case p.MaxLines < 1:
		return fmt.Errorf("max lines %d: must be ≥ 1", p.MaxLines)
	case p.StripHeight < 2*p.StripMargin+4 || p.StripMaxWidth < p.StripHeight:
		return fmt.Errorf("strip %dx%d with margin %d: too small", p.StripMaxWidth, p.StripHeight, p.StripMargin)
	}
	return nil
}

// ThresholdMode selects the coarse binarization.
type ThresholdMode int

const (
	// ThresholdBackground puts the threshold below the background level
	// by the larger of MinContrast and four times the background's
	// spread. It suits the flattened image, where the background is one
	// narrow peak and lines of different contrast must all pass; Otsu
	// there tends to split the darker lines from the fainter ones.
	ThresholdBackground ThresholdMode = iota
	// ThresholdOtsu uses Otsu's threshold.
	ThresholdOtsu
	// ThresholdFixed uses Params.Threshold.
	ThresholdFixed
)

// ErrNoLines is returned (wrapped) when an image has no line-sized blob.
var ErrNoLines = errors.New("no text lines found")

// Extractor finds the 2–3 text lines of a final-round image and joins them
// into one strip. It holds no state besides Params and is safe for
// concurrent use.
type Extractor struct {
	Params
}

// NewExtractor returns an extractor with DefaultParams.
func NewExtractor() *Extractor { return &Extractor{Params: DefaultParams()} }

// Debug receives intermediate images; stage names start with a two-digit
// step number so that files named after them sort in pipeline order.
type Debug func(stage string, img image.Image)

// Extract finds the lines of img (top to bottom), crops each tightly from
// the grayscale original and joins them into one strip. boxes are in img's
// coordinates. debug, if not nil, receives each stage's output.
func (e *Extractor) Extract(img image.Image, debug Debug) (strip *image.Gray, boxes []image.Rectangle, err error) {
	crops, boxes, err := e.ExtractLines(img, debug)
	if err != nil {
		return nil, nil, err
	}
	strip = JoinStrip(crops, e.Params)
	if debug != nil {
		debug("12-strip", strip)
	}
	return strip, boxes, nil
}

// ExtractLines is Extract without the joining: the grayscale crops of the
// lines, top to bottom, and their boxes in img's coordinates.
//
// The steps: gray and median-filtered images at full resolution; a coarse
// mask of text-like blobs at 1/DownScale; the blobs that look like lines;
// each one's box refined on the full-resolution images.
func (e *Extractor) ExtractLines(img image.Image, debug Debug) (crops []*image.Gray, boxes []image.Rectangle, err error) {
	if err := e.validate(); err != nil {
		return nil, nil, fmt.Errorf("extract: %w", err)
	}
	b := img.Bounds()
	if b.Dx() < 8 || b.Dy() < 8 {
		return nil, nil, fmt.Errorf("extract: image %dx%d too small", b.Dx(), b.Dy())
	}
	gray := toGrayInto(img, getPix())
	defer putPix(gray.Pix)
	if debug != nil {
		debug("01-gray", gray)
	}
	lut := e.equalizeLUT(gray, debug)
	med, release, err := e.median(gray, lut, debug)
	if err != nil {
		return nil, nil, fmt.Errorf("extract: %w", err)
	}
	defer release()
	mask := e.coarseMask(med, lut, gray.Rect.Size(), debug)
	blobs := e.lineBlobs(mask, gray, debug)
	boxes = e.lineBoxes(blobs, mask, gray, med, debug)
	if len(boxes) == 0 {
		return nil, nil, fmt.Errorf("extract: %w", ErrNoLines)
	}
	if debug != nil {
		debug("11-lines", drawBoxes(gray, nil, boxes))
	}
	crops = make([]*image.Gray, len(boxes))
	for i, bx := range boxes {
		crops[i] = crop(gray, bx)
		boxes[i] = bx.Add(b.Min)
	}
	return crops, boxes, nil
}

// equalizeLUT is the histogram equalization's lookup table, nil when
// Equalize is off. Equalization is a monotone map, so it commutes with the
// median: the median runs on the raw gray, which refine reuses, and the
// table is folded into the downscale pass.
func (e *Extractor) equalizeLUT(gray *image.Gray, debug Debug) *[256]uint8 {
	if !e.Equalize {
		return nil
	}
	lut := EqualizeLUT(Histogram(gray))
	if debug != nil {
		debug("02-equalized", ApplyLUT(gray, &lut))
	}
	return &lut
}

// median is the MedianSize median of gray (gray itself when it is 1) and
// the function that returns its pooled buffer.
func (e *Extractor) median(gray *image.Gray, lut *[256]uint8, debug Debug) (*image.Gray, func(), error) {
	med, release := gray, func() {}
	if e.MedianSize == 1 {
		return med, release, nil
	}
	if e.MedianSize == 5 {
		buf := getPix()
		var ok bool
		if med, ok = median5SIMDInto(gray, buf); ok {
			release = func() { putPix(med.Pix) }
		} else {
			putPix(buf)
			med = gray
		}
	}
	if med == gray {
		var err error
		if med, err = Median(gray, e.MedianSize); err != nil {
			return nil, nil, err
		}
	}
	if debug != nil {
		if lut != nil {
			debug("03-median", ApplyLUT(med, lut))
		} else {
			debug("03-median", med)
		}
	}
	return med, release, nil
}

// coarseMask is the text mask at 1/DownScale of the image (size): the
// median downscaled (and equalized), its background flattened, opened
// wide so that each line becomes one blob, closed against specks, and
// thresholded.
func (e *Extractor) coarseMask(med *image.Gray, lut *[256]uint8, size image.Point, debug Debug) *image.Gray {
	small := Downscale(med, e.DownScale, lut)
	if debug != nil {
		debug("04-downscaled", small)
	}
	if e.Flatten > 0 {
		small = FlattenBackground(small, e.Flatten)
		if debug != nil {
			debug("05-flattened", small)
		}
	}
	opened := Open(small, e.OpenW, e.OpenH)
	if debug != nil {
		debug("06-opened", opened)
	}
	closed := Close(opened, e.CloseW, e.CloseH)
	if debug != nil {
		debug("07-closed", closed)
	}
	var t uint8
	switch e.ThresholdMode {
	case ThresholdFixed:
		t = uint8(e.Threshold)
	case ThresholdOtsu:
		t = Otsu(Histogram(closed))
	default:
		t = BackgroundThreshold(Histogram(closed), e.MinContrast)
	}
	mask := ThresholdInv(closed, t)
	if debug != nil {
		debug("08-binary", mask)
		debug("09-upscaled", UpscaleNearest(mask, e.DownScale, size.X, size.Y))
	}
	return mask
}

// lineBlobs are the coarse mask's components that may be lines, largest
// first: cut where a thin band joins two (splitThinRows), pieces of one
// row merged, then filtered by area, height and aspect. Components of the
// upscaled mask are those of the small one scaled by DownScale
// (nearest-neighbour upscaling by an integer factor), so the small one is
// labelled.
func (e *Extractor) lineBlobs(mask, gray *image.Gray, debug Debug) []Component {
	labels, comps := labelComponents(mask, true)
	comps = splitThinRows(labels, mask.Rect.Dx(), comps, e.BandInk, e.BandGap)
	// Pieces of a line that the opening could not join (a wide gap, a
	// light character) are merged before the size filter judges them.
	var pieces []Component
	for _, c := range comps {
		if 8*c.Area >= e.MinArea {
			pieces = append(pieces, c)
		}
	}
	var blobs []Component
	for _, c := range mergeRows(pieces, e.MinAspect) {
		if c.Area >= e.MinArea && c.Box.Dy() >= e.MinHeight && float64(c.Box.Dx()) >= e.MinAspect*float64(c.Box.Dy()) {
			blobs = append(blobs, c)
		}
	}
	sort.SliceStable(blobs, func(i, j int) bool { return blobs[i].Area > blobs[j].Area })
	if debug != nil {
		debug("10-components", drawBoxes(gray, scaleBoxes(comps, e.DownScale), scaleBoxes(blobs, e.DownScale)))
	}
	return blobs
}

// lineBoxes refines the blobs, largest first, into at most MaxLines line
// boxes, top to bottom. A blob is kept when refine finds a line in its
// neighbourhood (at least three components: the shortest line, "不=5", has
// four, the '=' counting two; fewer is noise, such as two crossing lines).
func (e *Extractor) lineBoxes(blobs []Component, mask, gray, med *image.Gray, debug Debug) []image.Rectangle {
	f := e.DownScale
	var boxes []image.Rectangle
	fine := gray
	if med == gray {
		fine = nil
	}
	for bi, bl := range blobs {
		if len(boxes) == e.MaxLines {
			break
		}
		core := image.Rect(bl.Box.Min.X*f, bl.Box.Min.Y*f, bl.Box.Max.X*f, bl.Box.Max.Y*f).Intersect(gray.Rect)
		var ld func(image.Image)
		if debug != nil {
			name := fmt.Sprintf("10-line%d", bi+1)
			ld = func(img image.Image) { debug(name, img) }
		}
		box, n := e.refine(med, fine, core, ld)
		if n == 0 {
			// A noise line joined to the blob made it too tall, so the
			// glyphs looked short next to it: try again on the blob's
			// dense rows.
			if rows := denseRows(mask, bl.Box); rows.Dy() < bl.Box.Dy() && rows.Dy() >= 2*e.MinHeight {
				core = image.Rect(bl.Box.Min.X*f, rows.Min.Y*f, bl.Box.Max.X*f, rows.Max.Y*f).Intersect(gray.Rect)
				box, n = e.refine(med, fine, core, ld)
			}
		}
		if n > 0 {
			boxes = append(boxes, box)
		}
	}
	sort.Slice(boxes, func(i, j int) bool { return boxes[i].Min.Y < boxes[j].Min.Y })
	return boxes
}

// refine re-thresholds the padded neighbourhood of a coarse line box with
// Otsu and returns the tight box of the components that touch the coarse
// box, clipped to its rows plus the coarse stage's quantization (and
// ReachY for glyph-tall components), and how many components it holds (0:
// no line). Where a pass finds no line, or one much shorter than the
// coarse box, it looks again.
//
// debug, if not nil, receives the neighbourhood with every mask pixel
// coloured by what became of it (see refineDebugImage).
//
// fine, if not nil, is the unfiltered gray image g was median-filtered
// from: the final box takes in the strokes that the filter wore away (see
// extendTips).
func (e *Extractor) refine(g, fine *image.Gray, core image.Rectangle, debug func(image.Image)) (image.Rectangle, int) {
	box, n, dense := e.refineReach(g, fine, core, debug)
	if n == 0 && dense.Dy() < core.Dy() && dense.Dy() >= 2*e.MinHeight*e.DownScale {
		// A blotch or noise lines joined to the blob made it much taller
		// than its text, whose glyphs looked like specks next to it: look
		// again at the rows where the cleaned mask is dense.
		box, n, _ = e.refineReach(g, fine, image.Rect(core.Min.X, dense.Min.Y, core.Max.X, dense.Max.Y), debug)
	}
	if n > 0 && float64(box.Dy()) < e.RefineShorter*float64(core.Dy()) {
		if b, m, _ := e.refineReach(g, fine, image.Rect(core.Min.X, box.Min.Y, core.Max.X, box.Max.Y), debug); m > 0 {
			box, n = b, m
		}
	}
	return box, n
}

// refineReach is refineAt with ReachY, then without where that finds no
// line. It returns the line's box and component count (0 if none was
// found) and, where the neighbourhood held fewer than two glyph-tall
// components, the dense rows of its cleaned mask.
func (e *Extractor) refineReach(g, fine *image.Gray, core image.Rectangle, debug func(image.Image)) (image.Rectangle, int, image.Rectangle) {
	if e.ReachY > 0 {
		if box, n, _ := e.refineAt(g, fine, core, e.ReachY, debug); n > 0 {
			return box, n, image.Rectangle{}
		}
	}
	return e.refineAt(g, fine, core, 0, debug)
}

// refineAt is one pass of refine with the given ReachY. Where it finds
// fewer than two glyph-tall components, it returns the dense rows of its
// cleaned mask with n = 0.
func (e *Extractor) refineAt(g, fine *image.Gray, core image.Rectangle, reach float64, debug func(image.Image)) (image.Rectangle, int, image.Rectangle) {
	tips := fine != nil && e.TipReach > 0
	hd := e.neighbourhood(g, core, reach, debug != nil)
	ps := e.classify(hd, debug != nil || tips)
	var final image.Rectangle
	if debug != nil {
		defer func() { debug(refineDebugImage(hd.sub, hd.raw, hd.mask, ps.labels, ps.fate, hd.local, final)) }()
	}
	// A line has at least two glyph-tall components ("不=5": 不 and 5);
	// the crossing of two noise lines has one, plus specks.
	if ps.tall < 2 {
		return image.Rectangle{}, 0, denseRows(hd.mask, hd.local).Add(hd.region.Min)
	}
	// What the coarse stage saw tells a line from noise; what growing
	// adds does not count.
	n := ps.n
	ps.grow(hd)
	final = e.finalBox(hd, ps, fine, reach, tips)
	if final.Empty() || n < 3 {
		return image.Rectangle{}, 0, image.Rectangle{}
	}
	return final.Add(hd.region.Min), n, image.Rectangle{}
}

// hood is the neighbourhood of a coarse line box that refineAt works in.
type hood struct {
	h      int             // the coarse box's height
	slack  int             // the coarse stage's quantization
	step   int             // how far growth reaches beyond the box's ends at each step
	t      uint8           // Otsu's threshold of the padded coarse box
	region image.Rectangle // the neighbourhood, in the image
	sub    *image.Gray     // the image there
	mask   *image.Gray     // its ink, noise lines erased
	raw    *image.Gray     // its ink before the erasure (nil unless kept)
	local  image.Rectangle // the coarse box, in the neighbourhood's coordinates
	inner  image.Rectangle // where the line's text can be, likewise
}

// neighbourhood thresholds the coarse box padded by Pad, widened by
// GrowMax at both ends and by reach above and below, and erases the noise
// lines in it. keepRaw keeps the ink before the erasure.
func (e *Extractor) neighbourhood(g *image.Gray, core image.Rectangle, reach float64, keepRaw bool) *hood {
	h := core.Dy()
	hd := &hood{h: h, slack: 2 * e.DownScale}
	pad := max(int(e.Pad*float64(h)), 2*e.DownScale)
	// Glyphs at the ends of a line that the coarse stage lost (a thin
	// "-上") are looked for up to grow = GrowX·h beyond the coarse box, so
	// the neighbourhood is that much wider; the threshold still comes from
	// the usual padded box, so the extra background does not move it.
	hd.step = int(e.GrowX * float64(h))
	grow := max(hd.step, int(e.GrowMax*float64(h)))
	hd.region = core.Inset(-pad).Intersect(g.Rect)
	hd.t = Otsu(Histogram(crop(g, hd.region)))
	// The extra rows for reach go 2 px further, so that a component
	// running on past the reach is seen to.
	vr := 0
	if reach > 0 {
		vr = int(reach*float64(h)+0.5) + 2
	}
	if grow > 0 || vr > 0 {
		hd.region = image.Rect(core.Min.X-pad-grow, core.Min.Y-pad-vr, core.Max.X+pad+grow, core.Max.Y+pad+vr).Intersect(g.Rect)
	}
	hd.sub = crop(g, hd.region)
	hd.mask = ThresholdInv(hd.sub, hd.t)
	hd.local = core.Sub(hd.region.Min)
	if e.LocalOpen > 1 {
		// On the mask text is white: opening removes white structures the
		// kernel does not fit in, i.e. noise lines thinner than strokes.
		hd.mask = Dilate(Erode(hd.mask, e.LocalOpen, e.LocalOpen), e.LocalOpen, e.LocalOpen)
	}
	if keepRaw || e.StraightLine > 0 {
		hd.raw = crop(hd.mask, hd.mask.Rect)
	}
	// Text lies within the coarse box's rows (plus the coarse stage's
	// quantization) and at most grow beyond its ends.
	l := hd.local
	hd.inner = image.Rect(l.Min.X-hd.slack-grow, l.Min.Y-hd.slack, l.Max.X+hd.slack+grow, l.Max.Y+hd.slack)
	if e.ThinLine > 0 {
		eraseThinLines(hd.mask, max(e.ThinLineMin, int(e.ThinLine*float64(h)+0.5)), hd.inner)
	}
	if e.StraightLine > 0 {
		fh := float64(h)
		eraseStraightLines(hd.raw, hd.mask, hd.inner, max(e.StraightRunMin, int(e.StraightRun*fh+0.5)),
			int(e.StraightGap*fh+0.5), e.StraightLine*fh, max(5, int(e.StraightVotes*fh+0.5)))
	}
	return hd
}

// parts are a neighbourhood's components and what refine made of each.
type parts struct {
	labels []int32 // each pixel's component + 1 (nil unless kept)
	comps  []Component
	fate   []uint8
	box    image.Rectangle // of the taken components
	n      int             // taken components
	tall   int             // glyph-tall taken components
	h      int             // the coarse box's height
}

// classify labels the neighbourhood's components and sorts out specks,
// noise lines and those the coarse box holds, which it takes.
func (e *Extractor) classify(hd *hood, keepLabels bool) *parts {
	ps := &parts{h: hd.h}
	ps.labels, ps.comps = labelComponents(hd.mask, keepLabels)
	ps.fate = make([]uint8, len(ps.comps))
	minArea := int(e.MinComponent * float64(hd.h) * e.MinComponent * float64(hd.h))
	for i, c := range ps.comps {
		switch {
		case c.Area < minArea:
			ps.fate[i] = fateSpeck
		case e.isNoiseLine(c, hd.h):
			ps.fate[i] = fateNoise
		case c.Box.Overlaps(hd.local):
			ps.take(i, fateCore)
		}
	}
	return ps
}

func (ps *parts) glyphTall(c Component) bool { return 10*c.Box.Dy() >= 3*ps.h }

func (ps *parts) take(i int, how uint8) {
	c := ps.comps[i]
	ps.fate[i] = how
	ps.box = ps.box.Union(c.Box)
	ps.n++
	if ps.glyphTall(c) {
		ps.tall++
	}
}

// taken tells whether component i is part of the line.
func (ps *parts) taken(i int) bool { return ps.fate[i] == fateCore || ps.fate[i] == fateGrown }

// grow takes, step by step, the components within the line's rows and at
// most hd.step from its ends, then the specks just left of its first
// glyph: the dots of a small 氵 (海, 河, 池, 流, 深 start assignment
// lines), which taken stack into a glyph-tall group, while a lone speck
// is trimmed as a short end.
func (ps *parts) grow(hd *hood) {
	for grown := hd.step > 0; grown; {
		grown = false
		for i, c := range ps.comps {
			b := ps.box
			if ps.fate[i] != fateNone || c.Box.Min.Y < b.Min.Y-hd.slack || c.Box.Max.Y > b.Max.Y+hd.slack ||
				c.Box.Min.X > b.Max.X+hd.step || c.Box.Max.X < b.Min.X-hd.step {
				continue
			}
			ps.take(i, fateGrown)
			grown = true
		}
	}
	for i, c := range ps.comps {
		b := ps.box
		if ps.fate[i] == fateSpeck && c.Box.In(image.Rect(b.Min.X-ps.h/3, b.Min.Y, b.Min.X+ps.h/4, b.Max.Y)) {
			ps.take(i, fateGrown)
		}
	}
}

// finalBox is the line's box from the taken components: short ends
// trimmed, clipped to where its text can be, extended by glyphs reaching
// beyond those rows, thin ends cut, then stroke tips taken back.
func (e *Extractor) finalBox(hd *hood, ps *parts, fine *image.Gray, reach float64, tips bool) image.Rectangle {
	box := ps.box
	if e.TrimShortEnds {
		box = trimShortEnds(ps.comps, ps.fate)
	}
	box = box.Intersect(hd.inner)
	if reach > 0 && !box.Empty() {
		box = ps.reachRows(box, hd.inner, int(reach*float64(hd.h)+0.5))
	}
	if e.TrimRun > 0 && !box.Empty() {
		box = trimThinEnds(hd.mask, box, max(5, int(e.TrimInk*float64(hd.h)+0.5)), int(e.TrimRun*float64(hd.h)+0.5))
	}
	if tips && !box.Empty() {
		box = extendTips(fine, hd, ps, box, int(e.TipReach*float64(hd.h)+0.5), int(e.TipReachY*float64(hd.h)+0.5))
	}
	return box
}

// reachRows extends box's top and bottom to the glyph-tall taken
// components within its columns that end within r of inner's rows: a
// noise line stuck to a glyph runs on further and is still clipped, and
// the short pieces that trimShortEnds dropped stay out.
func (ps *parts) reachRows(box, inner image.Rectangle, r int) image.Rectangle {
	top, bottom := box.Min.Y, box.Max.Y
	for i, c := range ps.comps {
		if ps.taken(i) && ps.glyphTall(c) && c.Box.Min.X >= box.Min.X && c.Box.Max.X <= box.Max.X {
			if c.Box.Min.Y < top && c.Box.Min.Y >= inner.Min.Y-r {
				top = c.Box.Min.Y
			}
			if c.Box.Max.Y > bottom && c.Box.Max.Y <= inner.Max.Y+r {
				bottom = c.Box.Max.Y
			}
		}
	}
	box.Min.Y, box.Max.Y = top, bottom
	return box
}

// extendTips grows box (in the neighbourhood's coordinates) by the pieces
// of a finer mask that the 5×5 median wore away: the finer mask is the 3×3
// median of fine thresholded at hd.t, computed only where needed. It is
// flood-filled, within box widened by rx and ry, from the taken glyphs'
// pixels near box's edges, outside box's interior and avoiding pixels
// erased as noise lines (set in hd.raw, clear in hd.mask). Each piece so
// reached outside box extends it unless it runs into the widened box's
// edge (it continues beyond the reach: a noise line that the coarse filter
// had hidden) or is lighter on average than halfway between the glyphs'
// ink and hd.t (a faint noise line, which the threshold breaks into dashes
// that stop short of the reach).
func extendTips(fine *image.Gray, hd *hood, ps *parts, box image.Rectangle, rx, ry int) image.Rectangle {
	const band = 3 // seeds and flood within this many pixels inside box's edges
	r := image.Rect(box.Min.X-rx, box.Min.Y-ry, box.Max.X+rx, box.Max.Y+ry).Intersect(hd.mask.Rect)
	if r.Dx() < 3 || r.Dy() < 3 {
		return box
	}
	tf := &tipFlood{fine: fine, fo: hd.region.Min.Sub(fine.Rect.Min), r: r, box: box, core: box.Inset(band), hd: hd,
		state: make([]uint8, r.Dx()*r.Dy())}
	seeds, ink := tf.seeds(ps)
	if len(seeds) == 0 {
		return box
	}
	outside := tf.flood(seeds)
	return tf.pieces(outside, ink+(int(hd.t)-ink)/2)
}

// tipFlood is extendTips' flood over the reach r (in the neighbourhood's
// coordinates). state per pixel of r: 0 unknown, 1 not in the fine mask
// (or forbidden), 2 reached, 3 reached outside box, 4 in a piece.
type tipFlood struct {
	fine      *image.Gray
	fo        image.Point // the neighbourhood's origin in fine
	r         image.Rectangle
	box, core image.Rectangle // the line's box and its interior, which the flood avoids
	hd        *hood
	state     []uint8
}

type tipPixel struct{ x, y int }

// med9 is the 3×3 median of fine around pixel (x, y), borders replicated
// at r's edges like a median of the crop.
func (tf *tipFlood) med9(x, y int) uint8 {
	var v [9]uint8
	k := 0
	for dy := -1; dy <= 1; dy++ {
		yy := min(max(y+dy, tf.r.Min.Y), tf.r.Max.Y-1) + tf.fo.Y
		for dx := -1; dx <= 1; dx++ {
			xx := min(max(x+dx, tf.r.Min.X), tf.r.Max.X-1) + tf.fo.X
			v[k] = tf.fine.Pix[yy*tf.fine.Stride+xx]
			k++
		}
	}
	lo0, mi0, hi0 := sort3(v[0], v[1], v[2])
	lo1, mi1, hi1 := sort3(v[3], v[4], v[5])
	lo2, mi2, hi2 := sort3(v[6], v[7], v[8])
	return med3(max(lo0, lo1, lo2), med3(mi0, mi1, mi2), min(hi0, hi1, hi2))
}

func (tf *tipFlood) allowed(x, y int) bool { return !image.Pt(x, y).In(tf.core) }

// at is pixel (x, y)'s index in state.
func (tf *tipFlood) at(x, y int) int { return (y-tf.r.Min.Y)*tf.r.Dx() + x - tf.r.Min.X }

// seeds are the taken glyphs' pixels in box outside its interior, and ink
// their mean gray on the fine median.
func (tf *tipFlood) seeds(ps *parts) (seeds []tipPixel, ink int) {
	mw := tf.hd.mask.Rect.Dx()
	inkSum := 0
	for y := tf.box.Min.Y; y < tf.box.Max.Y; y++ {
		for x := tf.box.Min.X; x < tf.box.Max.X; x++ {
			if !tf.allowed(x, y) {
				x = tf.core.Max.X - 1
				continue
			}
			if l := ps.labels[y*mw+x]; l > 0 && ps.taken(int(l-1)) {
				inkSum += int(tf.med9(x, y))
				tf.state[tf.at(x, y)] = 2
				seeds = append(seeds, tipPixel{x, y})
			}
		}
	}
	if len(seeds) == 0 {
		return nil, 0
	}
	return seeds, inkSum / len(seeds)
}

// flood fills the fine mask from all seeds at once and returns the pixels
// it reached outside box.
func (tf *tipFlood) flood(queue []tipPixel) (outside []tipPixel) {
	mw, t := tf.hd.mask.Rect.Dx(), tf.hd.t
	raw, mask := tf.hd.raw, tf.hd.mask
	for len(queue) > 0 {
		p := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				x, y := p.x+dx, p.y+dy
				if !image.Pt(x, y).In(tf.r) || !tf.allowed(x, y) {
					continue
				}
				i := tf.at(x, y)
				if tf.state[i] != 0 {
					continue
				}
				tf.state[i] = 1
				j := y*mw + x
				if raw != nil && raw.Pix[j] != 0 && mask.Pix[j] == 0 {
					continue
				}
				if tf.med9(x, y) > t {
					continue
				}
				tf.state[i] = 2
				queue = append(queue, tipPixel{x, y})
				if !image.Pt(x, y).In(tf.box) {
					tf.state[i] = 3
					outside = append(outside, tipPixel{x, y})
				}
			}
		}
	}
	return outside
}

// pieces splits the pixels reached outside box into pieces connected
// outside it, so that a tip and a noise line touching the same glyph are
// judged apart, and returns box grown by those that are tips.
func (tf *tipFlood) pieces(outside []tipPixel, maxMean int) image.Rectangle {
	out := tf.box
	var queue []tipPixel
	for _, s := range outside {
		if tf.state[tf.at(s.x, s.y)] != 3 {
			continue
		}
		tf.state[tf.at(s.x, s.y)] = 4
		queue = append(queue[:0], s)
		pb, sum, n, edge := image.Rectangle{}, 0, 0, false
		for len(queue) > 0 {
			p := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			pb = pb.Union(image.Rect(p.x, p.y, p.x+1, p.y+1))
			sum += int(tf.med9(p.x, p.y))
			n++
			if p.x == tf.r.Min.X || p.y == tf.r.Min.Y || p.x == tf.r.Max.X-1 || p.y == tf.r.Max.Y-1 {
				edge = true
			}
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					x, y := p.x+dx, p.y+dy
					if !image.Pt(x, y).In(tf.r) {
						continue
					}
					if i := tf.at(x, y); tf.state[i] == 3 {
						tf.state[i] = 4
						queue = append(queue, tipPixel{x, y})
					}
				}
			}
		}
		if edge || sum > maxMean*n {
			continue
		}
		out = out.Union(tipShape(pb, tf.box))
	}
	return out
}

// tipShape is the part of piece pb that may move box: a stroke's tip or a
// bar's end continues the stroke, so a piece far wider than tall (a
// slanted noise line running along the glyphs' foot) does not move the
// box's top or bottom, one far taller than wide does not move its ends.
func tipShape(pb, box image.Rectangle) image.Rectangle {
	if pb.Dx() > 2*pb.Dy()+2 {
		pb.Min.Y, pb.Max.Y = max(pb.Min.Y, box.Min.Y), min(pb.Max.Y, box.Max.Y)
	}
	if pb.Dy() > 2*pb.Dx()+2 {
		pb.Min.X, pb.Max.X = max(pb.Min.X, box.Min.X), min(pb.Max.X, box.Max.X)
	}
	return pb // Union ignores it when empty
}

// trimShortEnds returns the box of the taken components (fate core or
// grown) from the first to the last glyph-tall group, left to right. A
// group is a set of taken components whose column ranges overlap (the
// pieces of a broken glyph, a "=" bar's two strokes); it is tall when its
// box is at least 0.3 times as high as the median group: h, the coarse box's
// height, is too large where noise lines joined the coarse blob.
//
// A short component (below that height) wholly below the tall ones is left
// out too: no character has a separate piece under its baseline, while the
// dashes of a broken noise line passing just under the text do. (Above,
// separate short pieces are a glyph's top: 冖 of 深, the dot of 之.)
func trimShortEnds(comps []Component, fate []uint8) image.Rectangle {
	groups := columnGroups(comps, fate)
	minTall := tallGroupHeight(groups)
	first, last := -1, -1
	for i, g := range groups {
		if g.box.Dy() >= minTall {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	var box image.Rectangle
	if first < 0 {
		return box
	}
	bottom := 0
	for _, g := range groups[first : last+1] {
		for _, i := range g.members {
			if comps[i].Box.Dy() >= minTall {
				bottom = max(bottom, comps[i].Box.Max.Y)
			}
		}
	}
	for _, g := range groups[first : last+1] {
		for _, i := range g.members {
			if b := comps[i].Box; b.Dy() >= minTall || b.Min.Y < bottom {
				box = box.Union(b)
			}
		}
	}
	return box
}

// columnGroup is a set of taken components whose column ranges overlap.
type columnGroup struct {
	box     image.Rectangle
	core    bool // holds a component of the coarse box
	members []int
}

// columnGroups groups the taken components (fate core or grown) by
// overlapping columns, left to right.
func columnGroups(comps []Component, fate []uint8) []columnGroup {
	var groups []columnGroup
	for i, c := range comps {
		if fate[i] != fateCore && fate[i] != fateGrown {
			continue
		}
		groups = append(groups, columnGroup{c.Box, fate[i] == fateCore, []int{i}})
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].box.Min.X < groups[j].box.Min.X })
	merged := groups[:0]
	for _, g := range groups {
		if n := len(merged); n > 0 && g.box.Min.X < merged[n-1].box.Max.X {
			merged[n-1].box = merged[n-1].box.Union(g.box)
			merged[n-1].core = merged[n-1].core || g.core
			merged[n-1].members = append(merged[n-1].members, g.members...)
			continue
		}
		merged = append(merged, g)
	}
	return merged
}

// tallGroupHeight is 0.3 times the median height of the groups that hold
// a component of the coarse box (of all groups if none does): a dashed
// noise line along the text adds many short grown groups, which would pull
// the median of all groups down to a dash's height and keep every dash.
func tallGroupHeight(groups []columnGroup) int {
	var hs []int
	for _, g := range groups {
		if g.core {
			hs = append(hs, g.box.Dy())
		}
	}
	if len(hs) == 0 {
		for _, g := range groups {
			hs = append(hs, g.box.Dy())
		}
	}
	sort.Ints(hs)
	return (3*hs[len(hs)/2] + 5) / 10
}

// What refine made of a local component.
const (
	fateNone  uint8 = iota // left out: outside the coarse box and not grown into
	fateSpeck              // too small
	fateNoise              // a noise line
	fateCore               // taken: overlaps the coarse box
	fateGrown              // taken: grown into along the line
)

// refineDebugImage shows refine's neighbourhood: the gray image faded, mask
// pixels coloured by their component's fate (core green, grown cyan, noise
// line red, speck purple, left out orange), pixels erased as thin noise
// strokes blue, the coarse box yellow and the final box magenta.
func refineDebugImage(sub, raw, mask *image.Gray, labels []int32, fate []uint8, local, final image.Rectangle) *image.RGBA {
	out := image.NewRGBA(sub.Rect)
	colors := [...]color.RGBA{
		fateNone:  {255, 140, 0, 255},
		fateSpeck: {160, 0, 200, 255},
		fateNoise: {230, 0, 0, 255},
		fateCore:  {0, 180, 0, 255},
		fateGrown: {0, 200, 220, 255},
	}
	for i, v := range sub.Pix {
		c := color.RGBA{128 + v/2, 128 + v/2, 128 + v/2, 255}
		switch {
		case mask.Pix[i] != 0:
			c = colors[fate[labels[i]-1]]
		case raw.Pix[i] != 0:
			c = color.RGBA{0, 0, 255, 255}
		}
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = c.R, c.G, c.B, c.A
	}
	outline := func(r image.Rectangle, c color.RGBA) {
		if r.Empty() {
			return
		}
		for x := r.Min.X; x < r.Max.X; x++ {
			out.SetRGBA(x, r.Min.Y, c)
			out.SetRGBA(x, r.Max.Y-1, c)
		}
		for y := r.Min.Y; y < r.Max.Y; y++ {
			out.SetRGBA(r.Min.X, y, c)
			out.SetRGBA(r.Max.X-1, y, c)
		}
	}
	outline(local, color.RGBA{230, 200, 0, 255})
	outline(final, color.RGBA{220, 0, 220, 255})
	return out
}

// eraseThinLines erases, in place, the thin parts of mask (those that no
// k×k square inside the mask covers) whose 8-connected pieces reach
// outside inner or the mask's border. The mask is a line's padded
// neighbourhood and inner where its text can be, so such a thin piece is a
// noise line; erasing only the thin part keeps the strokes it crosses
// whole (a k×k square fits in them) while cutting it off the glyphs it
// touches, so it no longer stretches their box.
func eraseThinLines(mask *image.Gray, k int, inner image.Rectangle) {
	w, h := mask.Rect.Dx(), mask.Rect.Dy()
	if w <= 2*k || h <= 2*k {
		return
	}
	thin := Open(mask, k, k)
	for i, v := range mask.Pix {
		thin.Pix[i] = v &^ thin.Pix[i]
	}
	labels, comps := labelComponents(thin, true)
	erase := make([]bool, len(comps)+1)
	any := false
	for i, c := range comps {
		if !c.Box.In(inner) || c.Box.Min.X == 0 || c.Box.Min.Y == 0 || c.Box.Max.X == w || c.Box.Max.Y == h {
			erase[i+1] = true
			any = true
		}
	}
	if !any {
		return
	}
	for i, l := range labels {
		if erase[l] {
			mask.Pix[i] = 0
		}
	}
}

// trimThinEnds cuts from each end of box a run of at least minRun columns
// that each hold fewer than minInk mask pixels, unless most of its ink
// lies in the bottom quarter of the box: a noise line stuck to the first or
// last glyph adds a few pixels per column for a long way, while a glyph's
// own thin ends are shorter (the bar of a "7") or lie on the baseline (the
// foot of "上", the sweep of "之").
func trimThinEnds(mask *image.Gray, box image.Rectangle, minInk, minRun int) image.Rectangle {
	w := mask.Stride
	base := box.Max.Y - box.Dy()/4
	// run walks from column x by dx while the columns are thin and says
	// where it stopped and whether most of the ink it saw lies above the
	// baseline band.
	run := func(x, dx int) (int, bool) {
		ink, high := 0, 0
		for ; x >= box.Min.X && x < box.Max.X; x += dx {
			n := 0
			for y := box.Min.Y; y < box.Max.Y && n < minInk; y++ {
				if mask.Pix[y*w+x] != 0 {
					n++
					if y < base {
						high++
					}
				}
			}
			if n >= minInk {
				break
			}
			ink += n
		}
		return x, 2*high > ink
	}
	if x, high := run(box.Min.X, 1); high && x-box.Min.X >= minRun {
		box.Min.X = x
	}
	if x, high := run(box.Max.X-1, -1); high && box.Max.X-1-x >= minRun {
		box.Max.X = x + 1
	}
	return box
}

// isNoiseLine tells a thin stroke longer than any glyph (a noise line
// crossing or passing the text line, whose height is h) from a character:
// its mean thickness, area over bounding-box diagonal, is a small fraction
// of h, while a glyph that long (a CJK character) has many strokes.
func (e *Extractor) isNoiseLine(c Component, h int) bool {
	if e.NoiseLineLength <= 0 {
		return false
	}
	dx, dy := float64(c.Box.Dx()), float64(c.Box.Dy())
	diag := math.Sqrt(dx*dx + dy*dy)
	return diag > e.NoiseLineLength*float64(h) && float64(c.Area)/diag < max(e.NoiseLineThickness*float64(h), e.NoiseLineMinPx)
}

// denseRows narrows box (of the coarse mask) to the rows holding at least a
// third of its fullest row's pixels, widened by a quarter of their span
// each way: a text line's rows, without a steep noise line hanging from it.
func denseRows(mask *image.Gray, box image.Rectangle) image.Rectangle {
	count := make([]int, box.Dy())
	for y := box.Min.Y; y < box.Max.Y; y++ {
		row := mask.Pix[y*mask.Stride+box.Min.X : y*mask.Stride+box.Max.X]
		for _, v := range row {
			if v != 0 {
				count[y-box.Min.Y]++
			}
		}
	}
	full := 0
	for _, n := range count {
		full = max(full, n)
	}
	first, last := -1, -1
	for i, n := range count {
		if 3*n >= full {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	span := last - first + 1
	r := box
	r.Min.Y = max(box.Min.Y, box.Min.Y+first-span/4)
	r.Max.Y = min(box.Max.Y, box.Min.Y+last+1+span/4)
	return r
}

// mergeRows joins blobs that share most of the rows of the smaller one and
// are at most twice the taller one's height apart: pieces of one line that
// the opening kernel could not bridge (lines never share rows).
func mergeRows(blobs []Component, minAspect float64) []Component {
	for merged := true; merged; {
		merged = false
		for i := 0; i < len(blobs) && !merged; i++ {
			for j := i + 1; j < len(blobs); j++ {
				a, b := blobs[i].Box, blobs[j].Box
				ov := min(a.Max.Y, b.Max.Y) - max(a.Min.Y, b.Min.Y)
				gap := max(a.Min.X, b.Min.X) - min(a.Max.X, b.Max.X)
				tall := a
				if b.Dy() > a.Dy() {
					tall = b
				}
				lineLike := tall.Dy() <= 3*min(a.Dy(), b.Dy()) || float64(tall.Dx()) >= minAspect*float64(tall.Dy())
				if 2*ov >= min(a.Dy(), b.Dy()) && gap <= 2*tall.Dy() && lineLike {
					blobs[i] = Component{Box: a.Union(b), Area: blobs[i].Area + blobs[j].Area}
					blobs = append(blobs[:j], blobs[j+1:]...)
					merged = true
					break
				}
			}
		}
	}
	return blobs
}

func scaleBoxes(cs []Component, f int) []image.Rectangle {
	out := make([]image.Rectangle, len(cs))
	for i, c := range cs {
		out[i] = image.Rect(c.Box.Min.X*f, c.Box.Min.Y*f, c.Box.Max.X*f, c.Box.Max.Y*f)
	}
	return out
}

// crop copies r out of a compact gray image.
func crop(g *image.Gray, r image.Rectangle) *image.Gray {
	r = r.Intersect(g.Rect)
	out := newGray(r.Dx(), r.Dy())
	for y := range r.Dy() {
		copy(out.Pix[y*r.Dx():(y+1)*r.Dx()], g.Pix[(r.Min.Y+y)*g.Stride+r.Min.X:])
	}
	return out
}

// drawBoxes renders g in colour with thin boxes in blue and thick ones in red.
func drawBoxes(g *image.Gray, thin, thick []image.Rectangle) *image.RGBA {
	out := image.NewRGBA(g.Rect)
	draw.Draw(out, out.Rect, g, image.Point{}, draw.Src)
	rect := func(r image.Rectangle, c color.RGBA, t int) {
		for k := range t {
			r := r.Inset(-k)
			for x := r.Min.X; x < r.Max.X; x++ {
				out.SetRGBA(x, r.Min.Y, c)
				out.SetRGBA(x, r.Max.Y-1, c)
			}
			for y := r.Min.Y; y < r.Max.Y; y++ {
				out.SetRGBA(r.Min.X, y, c)
				out.SetRGBA(r.Max.X-1, y, c)
			}
		}
	}
	for _, r := range thin {
		rect(r, color.RGBA{0, 0, 255, 255}, 1)
	}
	for _, r := range thick {
		rect(r, color.RGBA{255, 0, 0, 255}, 3)
	}
	return out
}

// JoinStrip scales each crop to the strip's inner height, joins them left
// to right with gaps on a white canvas, and shrinks the result to fit
// StripMaxWidth when needed (centred vertically).
func JoinStrip(crops []*image.Gray, p Params) *image.Gray {
	inner := p.StripHeight - 2*p.StripMargin
	scaled := make([]*image.Gray, 0, len(crops))
	width := 0
	for _, c := range crops {
		if c.Rect.Empty() {
			continue
		}
		w := max(1, int(float64(c.Rect.Dx())*float64(inner)/float64(c.Rect.Dy())+0.5))
		s := Resize(c, w, inner)
		if len(scaled) > 0 {
			width += p.StripGap
		}
		width += w
		scaled = append(scaled, s)
	}
	joined := newGray(max(width, 1), inner)
	for i := range joined.Pix {
		joined.Pix[i] = 255
	}
	x := 0
	for _, s := range scaled {
		blit(joined, s, x, 0)
		x += s.Rect.Dx() + p.StripGap
	}
	maxInner := p.StripMaxWidth - 2*p.StripMargin
	if joined.Rect.Dx() > maxInner {
		h := max(1, int(float64(inner)*float64(maxInner)/float64(joined.Rect.Dx())+0.5))
		joined = Resize(joined, maxInner, h)
	}
	w := joined.Rect.Dx() + 2*p.StripMargin
	if p.PadToWidth {
		w = p.StripMaxWidth
	}
	strip := newGray(w, p.StripHeight)
	for i := range strip.Pix {
		strip.Pix[i] = 255
	}
	oy := (p.StripHeight - joined.Rect.Dy()) / 2
	blit(strip, joined, p.StripMargin, oy)
	return strip
}

// blit copies compact src into compact dst at (x, y), row by row: draw.Draw
// has no fast path for gray images and goes through colour conversion per
// pixel.
func blit(dst, src *image.Gray, x, y int) {
	w := src.Rect.Dx()
	for r := range src.Rect.Dy() {
		copy(dst.Pix[(y+r)*dst.Stride+x:][:w], src.Pix[r*src.Stride:][:w])
	}
}
