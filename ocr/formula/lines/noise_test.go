package lines

import (
	"image"
	"testing"
)

func TestIsNoiseLine(t *testing.T) {
	e := NewExtractor()
	for _, c := range []struct {
		name string
		c    Component
		want bool
	}{
		{"thin long line", Component{Box: image.Rect(0, 0, 200, 10), Area: 400}, true},
		{"CJK glyph", Component{Box: image.Rect(0, 0, 40, 40), Area: 500}, false},
		{"thin short stroke ('1')", Component{Box: image.Rect(0, 0, 5, 40), Area: 200}, false},
		{"text run", Component{Box: image.Rect(0, 0, 300, 40), Area: 5000}, false},
	} {
		if got := e.isNoiseLine(c.c, 40); got != c.want {
			t.Errorf("%s: isNoiseLine %v, want %v", c.name, got, c.want)
		}
	}
	// A blob of noise lines is low, so 0.08 h is below the lines'
	// thickness; the pixel floor still catches them.
	if !e.isNoiseLine(Component{Box: image.Rect(0, 0, 200, 10), Area: 900}, 20) {
		t.Error("4.5-px line in a 20-px blob: not a noise line")
	}
	e.NoiseLineMinPx = 0
	if e.isNoiseLine(Component{Box: image.Rect(0, 0, 200, 10), Area: 900}, 20) {
		t.Error("NoiseLineMinPx 0: 4.5-px line in a 20-px blob taken for a noise line")
	}
	e.NoiseLineLength = 0
	if e.isNoiseLine(Component{Box: image.Rect(0, 0, 200, 10), Area: 400}, 40) {
		t.Error("NoiseLineLength 0 does not disable the filter")
	}
}

func TestTrimThinEnds(t *testing.T) {
	text := image.Rect(30, 10, 70, 30) // glyphs, 20 px tall
	box := image.Rect(5, 10, 95, 30)   // what the noise stretched it to
	for _, tc := range []struct {
		name  string
		parts []image.Rectangle
		want  image.Rectangle
	}{
		{"noise lines at both ends", []image.Rectangle{image.Rect(5, 18, 30, 21), image.Rect(70, 14, 95, 16)}, text},
		// The bar of a "7", 10 px: shorter than the run.
		{"short bar", []image.Rectangle{image.Rect(20, 10, 30, 13)}, image.Rect(20, 10, 70, 30)},
		// The foot of "上" reaching 25 px left of its stem, on the baseline.
		{"foot on the baseline", []image.Rectangle{image.Rect(5, 27, 30, 30)}, image.Rect(5, 10, 70, 30)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newGray(100, 40)
			paint(m, 255, text)
			paint(m, 255, tc.parts...)
			if got := trimThinEnds(m, box.Intersect(boundsOf(m)), 5, 12); got != tc.want {
				t.Errorf("trimmed to %v, want %v", got, tc.want)
			}
		})
	}
}

// boundsOf is the bounding box of m's ink.
func boundsOf(m *image.Gray) image.Rectangle {
	var r image.Rectangle
	for y := range m.Rect.Dy() {
		for x := range m.Rect.Dx() {
			if m.Pix[y*m.Stride+x] != 0 {
				r = r.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return r
}

// TestRefineRejectsNoiseCrossing: two crossing noise lines and specks make
// a blob the coarse stage may take for a line; refine must drop it, and
// must keep a short line of two glyphs and an '='.
func TestRefineRejectsNoiseCrossing(t *testing.T) {
	e := NewExtractor()
	g := newGray(400, 200)
	for i := range g.Pix {
		g.Pix[i] = 220
	}
	dark := func(x, y int) {
		if x >= 0 && y >= 0 && x < 400 && y < 200 {
			g.Pix[y*400+x] = 40
		}
	}
	for x := 100; x < 300; x++ {
		for d := range 2 {
			dark(x, 60+(x-100)/5+d)  // shallow line
			dark(x, 100-(x-100)/5+d) // crossing it
		}
	}
	for _, p := range [][2]int{{150, 75}, {180, 85}, {250, 70}} { // specks
		for d := range 4 {
			dark(p[0]+d%2, p[1]+d/2)
		}
	}
	if box, _ := e.refine(g, nil, image.Rect(120, 60, 280, 100), nil); !box.Empty() {
		t.Errorf("noise crossing kept as a line: %v", box)
	}
	// "不=5": two glyph-tall blocks and two bars.
	for _, r := range []image.Rectangle{image.Rect(20, 140, 50, 180), image.Rect(60, 152, 80, 156), image.Rect(60, 164, 80, 168), image.Rect(90, 140, 112, 180)} {
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				dark(x, y)
			}
		}
	}
	box, n := e.refine(g, nil, image.Rect(16, 136, 116, 184), nil)
	if want := image.Rect(20, 140, 112, 180); box != want || n != 4 {
		t.Errorf("short line: box %v with %d components, want %v with 4", box, n, want)
	}
}

// TestRefineNoiseLineAndLostGlyph: a thin noise line that touches the last
// glyph and runs out of the line's rows must not stretch the box (it is
// erased as a thin piece leaving the coarse box's rows), and a glyph just
// beyond the coarse box's end, in the line's rows, must be taken.
func TestRefineNoiseLineAndLostGlyph(t *testing.T) {
	g := newGray(500, 200)
	for i := range g.Pix {
		g.Pix[i] = 220
	}
	fill := func(r image.Rectangle) { paint(g, 40, r) }
	// Three glyph blocks 40 px tall with 8-px strokes, as boxes of ink.
	for _, x := range []int{100, 150, 200} {
		fill(image.Rect(x, 80, x+8, 120))
		fill(image.Rect(x, 80, x+30, 88))
		fill(image.Rect(x, 112, x+30, 120))
	}
	// A 2-px noise line from the top of the image down to the third glyph.
	for y := 0; y < 82; y++ {
		x := 300 - y
		fill(image.Rect(x, y, x+2, y+1))
	}
	// A glyph the coarse stage lost, 12 px past the coarse box's end.
	fill(image.Rect(242, 80, 250, 120))
	for _, c := range []struct {
		name  string
		grow  float64
		want  image.Rectangle
		thinL float64
	}{
		{"default", 0.5, image.Rect(100, 80, 250, 120), 0.06},
		{"no growth", 0, image.Rect(100, 80, 230, 120), 0.06},
	} {
		e := NewExtractor()
		e.GrowX, e.ThinLine = c.grow, c.thinL
		if box, _ := e.refine(g, nil, image.Rect(96, 76, 232, 124), nil); box != c.want {
			t.Errorf("%s: box %v, want %v", c.name, box, c.want)
		}
	}
	// The straight-line erasure alone also cuts the noise line off; with
	// neither, it stretches the box up.
	e := NewExtractor()
	e.ThinLine = 0
	if box, _ := e.refine(g, nil, image.Rect(96, 76, 232, 124), nil); box != image.Rect(100, 80, 250, 120) {
		t.Errorf("ThinLine 0: box %v, want %v", box, image.Rect(100, 80, 250, 120))
	}
	e.StraightLine = 0
	if box, _ := e.refine(g, nil, image.Rect(96, 76, 232, 124), nil); box.Min.Y >= 80 {
		t.Errorf("without ThinLine and StraightLine the noise line should stretch the box; got %v", box)
	}
}

// TestRefineGrowsByBridges: a "-上" ending whose "上" lies further than
// GrowX line heights past the coarse box is reached step by step, up to
// GrowMax; a trailing dash with no glyph after it is not taken.
func TestRefineGrowsByBridges(t *testing.T) {
	g := newGray(700, 200)
	for i := range g.Pix {
		g.Pix[i] = 220
	}
	fill := func(r image.Rectangle) { paint(g, 40, r) }
	for _, x := range []int{100, 150, 200} { // glyphs, 40 px tall
		fill(image.Rect(x, 80, x+8, 120))
		fill(image.Rect(x, 80, x+30, 88))
		fill(image.Rect(x, 112, x+30, 120))
	}
	fill(image.Rect(250, 97, 270, 103)) // "-", 20 px past the glyphs
	fill(image.Rect(285, 80, 293, 120)) // "上", 55 px past them
	fill(image.Rect(300, 97, 315, 103)) // a dash after it with no glyph behind
	core := image.Rect(96, 76, 232, 124)
	for _, c := range []struct {
		name          string
		growX, growMx float64
		want          image.Rectangle
	}{
		{"default", 0.5, 1.5, image.Rect(100, 80, 293, 120)},
		{"reach 0.5 in all", 0.5, 0, image.Rect(100, 80, 230, 120)},
		{"no growth", 0, 0, image.Rect(100, 80, 230, 120)},
	} {
		e := NewExtractor()
		e.GrowX, e.GrowMax = c.growX, c.growMx
		if box, _ := e.refine(g, nil, core, nil); box != c.want {
			t.Errorf("%s: box %v, want %v", c.name, box, c.want)
		}
	}
}

// lineImage is a light 240×200 image with dark rectangles.
func lineImage(rs ...image.Rectangle) *image.Gray {
	g := newGray(240, 200)
	paint(g, 220, g.Rect)
	paint(g, 40, rs...)
	return g
}

// TestRefineReachY: the coarse stage loses a thin stem rising above the
// line (上), so the coarse box starts below it; the line's box must still
// take the stem, but not a bar stuck to a glyph that runs on far above.
func TestRefineReachY(t *testing.T) {
	glyphs := []image.Rectangle{
		image.Rect(20, 100, 50, 140), image.Rect(32, 84, 38, 100), // a glyph and its stem
		image.Rect(60, 112, 80, 116), image.Rect(60, 124, 80, 128), // =
		image.Rect(90, 100, 112, 140), image.Rect(120, 100, 150, 140),
	}
	bar := image.Rect(130, 0, 142, 100) // 12 px: neither thin nor a straight noise line's run
	core := image.Rect(16, 100, 200, 140)
	for _, c := range []struct {
		name   string
		reach  float64
		extra  []image.Rectangle
		wantTo int // the box's top
	}{
		{"stem taken", 0.3, nil, 84},
		{"stem taken, bar clipped", 0.3, []image.Rectangle{bar}, 84},
		{"ReachY 0 clips the stem", 0, nil, 92},
		{"stem taken, a dash under the text left out", 0.3, []image.Rectangle{image.Rect(92, 143, 110, 146)}, 84},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := NewExtractor()
			e.ReachY = c.reach
			g := lineImage(append(glyphs, c.extra...)...)
			box, n := e.refine(g, nil, core, nil)
			if want := image.Rect(20, c.wantTo, 150, 140); box != want || n == 0 {
				t.Errorf("box %v (%d components), want %v", box, n, want)
			}
		})
	}
}

// TestRefineDenseRowsRetry: a coarse box four times taller than its text
// (a blotch joined to the line) makes the glyphs look like specks; refine
// must look again at the rows where its mask is dense and find the line.
func TestRefineDenseRowsRetry(t *testing.T) {
	g := lineImage(image.Rect(20, 105, 50, 135), image.Rect(60, 115, 80, 118), image.Rect(60, 123, 80, 126),
		image.Rect(90, 105, 112, 135), image.Rect(120, 105, 150, 135))
	box, n := NewExtractor().refine(g, nil, image.Rect(16, 20, 200, 140), nil)
	if want := image.Rect(20, 105, 150, 135); box != want || n == 0 {
		t.Errorf("box %v (%d components), want %v", box, n, want)
	}
}

// TestRefineShorter: noise stretched the coarse box to twice the text's
// height, so the thin "1" starting the line is smaller than the speck area
// that height implies; the second pass, sized by the line found, takes it.
func TestRefineShorter(t *testing.T) {
	g := lineImage(image.Rect(8, 106, 11, 136), // 1
		image.Rect(40, 100, 70, 136), image.Rect(80, 112, 100, 115), image.Rect(80, 122, 100, 125),
		image.Rect(110, 100, 140, 136), image.Rect(150, 100, 180, 136))
	core := image.Rect(4, 70, 200, 150)
	for _, c := range []struct {
		shorter float64
		want    image.Rectangle
	}{
		{0.9, image.Rect(8, 100, 180, 136)},
		{0, image.Rect(40, 100, 180, 136)},
	} {
		e := NewExtractor()
		e.RefineShorter = c.shorter
		if box, n := e.refine(g, nil, core, nil); box != c.want || n == 0 {
			t.Errorf("RefineShorter %v: box %v (%d components), want %v", c.shorter, box, n, c.want)
		}
	}
}
