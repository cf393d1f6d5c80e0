package formula

import (
	"image"
	"testing"
)

// TestEraseStraightLines: straight noise lines as thick as the strokes
// that leave the text's rows are erased along their whole length, but not
// where they merge with a glyph's stroke, and glyph strokes that only line
// up by chance (the top bars of "7575") or a "/" stay.
func TestEraseStraightLines(t *testing.T) {
	const w, h = 400, 100
	inner := image.Rect(20, 25, 380, 75) // where text can be
	type seg struct {
		x0, y0, x1, y1 float64
		thick          float64
	}
	for _, c := range []struct {
		name      string
		glyphs    []image.Rectangle
		lines     []seg
		wantLines int
		erased    []image.Point // must be cleared
		kept      []image.Point // must stay set
	}{
		{
			name:      "shallow line through a stroke, out to the border",
			glyphs:    []image.Rectangle{image.Rect(100, 30, 110, 70)}, // a "1"
			lines:     []seg{{0, 40, 399, 60, 5}},
			wantLines: 1,
			erased:    []image.Point{{50, 42}, {200, 50}, {300, 55}, {390, 59}},
			kept:      []image.Point{{105, 35}, {105, 65}, {105, 45}},
		},
		{
			name:      "steep line crossing the text",
			glyphs:    []image.Rectangle{image.Rect(150, 30, 190, 38), image.Rect(150, 62, 190, 70)},
			lines:     []seg{{160, 0, 180, 99, 4}},
			wantLines: 1,
			erased:    []image.Point{{161, 5}, {170, 50}, {179, 94}},
			kept:      []image.Point{{152, 34}, {188, 66}},
		},
		{
			name: "collinear top bars inside the rows",
			glyphs: []image.Rectangle{
				image.Rect(40, 30, 70, 35), image.Rect(80, 30, 110, 35), image.Rect(120, 30, 150, 35), image.Rect(160, 30, 190, 35),
				image.Rect(60, 35, 66, 70), image.Rect(100, 35, 106, 70), image.Rect(140, 35, 146, 70), image.Rect(180, 35, 186, 70),
			},
			kept: []image.Point{{45, 32}, {85, 32}, {125, 32}, {165, 32}},
		},
		{
			name:  "a slash",
			lines: []seg{{200, 70, 215, 30, 5}},
			kept:  []image.Point{{207, 50}, {201, 68}, {214, 32}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := newGray(w, h)
			for _, r := range c.glyphs {
				for y := r.Min.Y; y < r.Max.Y; y++ {
					for x := r.Min.X; x < r.Max.X; x++ {
						raw.Pix[y*w+x] = 255
					}
				}
			}
			for _, l := range c.lines {
				drawSegment(raw, l.x0, l.y0, l.x1, l.y1, l.thick)
			}
			mask := crop(raw, raw.Rect)
			n := eraseStraightLines(raw, mask, inner, 8, 25, 60, 5)
			if n != c.wantLines {
				t.Errorf("erased %d lines, want %d", n, c.wantLines)
			}
			for _, p := range c.erased {
				if raw.Pix[p.Y*w+p.X] == 0 {
					t.Fatalf("test setup: %v not on the line", p)
				}
				if mask.Pix[p.Y*w+p.X] != 0 {
					t.Errorf("%v still set", p)
				}
			}
			for _, p := range c.kept {
				if mask.Pix[p.Y*w+p.X] == 0 {
					t.Errorf("%v erased", p)
				}
			}
		})
	}
}

// drawSegment sets the pixels within thick/2 of the segment.
func drawSegment(m *image.Gray, x0, y0, x1, y1, thick float64) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	dx, dy := x1-x0, y1-y0
	l2 := dx*dx + dy*dy
	for y := range h {
		for x := range w {
			px, py := float64(x)+0.5, float64(y)+0.5
			t := max(0, min(1, ((px-x0)*dx+(py-y0)*dy)/l2))
			ex, ey := px-(x0+t*dx), py-(y0+t*dy)
			if ex*ex+ey*ey <= thick*thick/4 {
				m.Pix[y*w+x] = 255
			}
		}
	}
}

func TestTrimShortEnds(t *testing.T) {
	tall := func(x0, x1 int) Component { return Component{Box: image.Rect(x0, 10, x1, 50)} }
	dash := func(x0, x1, y int) Component { return Component{Box: image.Rect(x0, y, x1, y+4)} }
	for _, c := range []struct {
		name  string
		comps []Component
		fate  []uint8
		want  image.Rectangle
	}{
		{
			name:  "dashes of a noise line after the last glyph",
			comps: []Component{tall(0, 30), tall(40, 70), dash(80, 100, 20), dash(110, 130, 18)},
			fate:  []uint8{fateCore, fateCore, fateCore, fateGrown},
			want:  image.Rect(0, 10, 70, 50),
		},
		{
			name:  "a minus inside the line, a stub before it",
			comps: []Component{dash(0, 10, 12), tall(20, 50), dash(60, 80, 28), tall(90, 120)},
			fate:  []uint8{fateCore, fateCore, fateGrown, fateGrown},
			want:  image.Rect(20, 10, 120, 50),
		},
		{
			name: "a glyph broken into short pieces stacked in its columns",
			comps: []Component{
				{Box: image.Rect(0, 10, 20, 25)}, {Box: image.Rect(5, 30, 25, 50)}, // one glyph
				tall(30, 60), dash(70, 90, 30),
			},
			fate: []uint8{fateGrown, fateCore, fateCore, fateCore},
			want: image.Rect(0, 10, 60, 50),
		},
		{
			name:  "left out components do not count",
			comps: []Component{tall(0, 30), tall(40, 70), tall(100, 130)},
			fate:  []uint8{fateCore, fateCore, fateNoise},
			want:  image.Rect(0, 10, 70, 50),
		},
	} {
		if got := trimShortEnds(c.comps, c.fate); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
