package lines

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
			// The line crosses a glyph wider than the largest break and
			// ends inside the neighbourhood: the piece beyond the glyph
			// has no seed but lies on a line already found.
			name:      "line ending inside the rows beyond a wide glyph",
			glyphs:    []image.Rectangle{image.Rect(110, 25, 170, 70)},
			lines:     []seg{{0, 12, 330, 56, 5}},
			wantLines: 1,
			erased:    []image.Point{{50, 18}, {250, 45}, {320, 54}},
			kept:      []image.Point{{140, 31}, {140, 60}},
		},
		{
			// The coarse box can miss the top of a tall stroke; it ends
			// inside the neighbourhood, unlike a noise line.
			name:   "a glyph's stem rising above the rows",
			glyphs: []image.Rectangle{image.Rect(200, 2, 206, 70), image.Rect(180, 65, 230, 70)}, // 上
			kept:   []image.Point{{203, 5}, {203, 20}, {203, 50}},
		},
		{
			name:      "vertical line out to the border",
			lines:     []seg{{300, 0, 302, 90, 4}},
			wantLines: 1,
			erased:    []image.Point{{300, 5}, {301, 50}, {302, 88}},
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
			// The dashes outnumber the glyphs: the median height comes
			// from the groups of the coarse box only.
			name: "a dashed noise line grown along both ends",
			comps: []Component{
				dash(0, 10, 20), dash(20, 30, 20), dash(40, 50, 20), dash(60, 70, 20),
				tall(80, 110), tall(120, 150),
				dash(160, 170, 22), dash(180, 190, 22), dash(200, 210, 22),
			},
			fate: []uint8{fateGrown, fateGrown, fateGrown, fateCore, fateCore, fateCore, fateGrown, fateGrown, fateGrown},
			want: image.Rect(80, 10, 150, 50),
		},
		{
			// Stacked in the glyphs' columns, so in their groups.
			name:  "a noise line's dashes under the text, a glyph's top above it",
			comps: []Component{tall(0, 30), tall(40, 70), dash(10, 25, 52), dash(45, 60, 5)},
			fate:  []uint8{fateCore, fateCore, fateGrown, fateCore},
			want:  image.Rect(0, 5, 70, 50),
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

// TestExtendTips: the final box takes the pieces of the 3×3-median mask
// connected to the glyphs (a 2-px bar that the 5×5 median wiped out), but
// not faint pieces, pieces that run on beyond the reach (a noise line) or
// pixels erased as noise lines.
func TestExtendTips(t *testing.T) {
	const w, h = 120, 80
	const bg, ink, thr = 230, 40, 135
	glyph := image.Rect(50, 20, 60, 60)
	for _, c := range []struct {
		name   string
		extra  []image.Rectangle // dark pieces added to the fine image
		faint  []image.Rectangle // light gray pieces, still below thr
		erased []image.Rectangle // of extra: erased as noise lines
		want   image.Rectangle
	}{
		{name: "nothing to add", want: glyph},
		// The 3×3 median still takes a pixel off the bar's end.
		{name: "thin bar at the foot", extra: []image.Rectangle{image.Rect(36, 56, 50, 58)}, want: image.Rect(37, 20, 60, 60)},
		{name: "stroke tip above", extra: []image.Rectangle{image.Rect(53, 16, 56, 20)}, want: image.Rect(50, 16, 60, 60)},
		// A piece far wider than tall (a noise line along the foot) may
		// move the ends but not the bottom.
		{name: "wide piece under the foot", extra: []image.Rectangle{image.Rect(45, 60, 65, 62)}, want: image.Rect(46, 20, 64, 60)},
		{name: "faint stub", faint: []image.Rectangle{image.Rect(60, 30, 70, 32)}, want: glyph},
		{name: "dark line beyond the reach", extra: []image.Rectangle{image.Rect(60, 40, 110, 42)}, want: glyph},
		{
			name:  "erased noise line",
			extra: []image.Rectangle{image.Rect(60, 40, 70, 42)},
			// with the pixels the 3×3 median adds where it joins the glyph
			erased: []image.Rectangle{image.Rect(60, 39, 70, 43)},
			want:   glyph,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			fine := newGray(w, h)
			fill := func(m *image.Gray, r image.Rectangle, v uint8) {
				for y := r.Min.Y; y < r.Max.Y; y++ {
					for x := r.Min.X; x < r.Max.X; x++ {
						m.Pix[y*w+x] = v
					}
				}
			}
			fill(fine, fine.Rect, bg)
			fill(fine, glyph, ink)
			for _, r := range c.extra {
				fill(fine, r, ink)
			}
			for _, r := range c.faint {
				fill(fine, r, 120)
			}
			mask, raw := newGray(w, h), newGray(w, h)
			fill(mask, glyph, 255)
			fill(raw, glyph, 255)
			for _, r := range c.erased {
				fill(raw, r, 255)
			}
			labels, comps := labelComponents(mask, true)
			fate := make([]uint8, len(comps))
			for i := range fate {
				fate[i] = fateCore
			}
			hd := &hood{region: fine.Rect, t: thr, mask: mask, raw: raw}
			got := extendTips(fine, hd, &parts{labels: labels, comps: comps, fate: fate}, glyph, 20, 5)
			if got != c.want {
				t.Errorf("box %v, want %v", got, c.want)
			}
		})
	}
}
