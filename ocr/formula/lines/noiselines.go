package lines

import (
	"image"
	"math"
)

// Straight noise lines as thick as the text's strokes survive the
// thin-line erasure and stretch a line's box where they cross or touch its
// glyphs. The generator draws them as long straight segments of constant
// thickness between random points, so they run far beyond the text: their
// parts outside the rows where text can be, or the thin parts already
// erased there, tell their direction, and following that direction through
// the neighbourhood finds the rest.
//
// eraseStraightLines works on runs: for lines at most 45° from the
// horizontal, the vertical runs of a column (a noise line crosses every
// column once, with a run about its thickness long); for steeper lines, the
// horizontal runs of a row. A run no longer than maxRun whose centre lies
// outside inner, or was erased by eraseThinLines (set in raw, clear in
// mask), is a seed. A Hough transform over the seeds proposes lines; each is
// fitted by least squares and then walked across the whole neighbourhood:
// the thin runs on it, with gaps (glyph strokes it crosses, breaks in the
// line) of at most maxGap, form chains, and a chain that holds a seed and is
// at least minLen long (half that if it reaches the neighbourhood's
// border) is a noise line whose thin runs are erased from mask; so are
// then the line's other chains at least maxRun long, seeded or not (where
// it runs on past a glyph wider than maxGap to its end point inside the
// neighbourhood). Runs where the line merges with a glyph's stroke are longer and
// stay, so the glyph keeps its shape and only the line's own pixels go. A
// chain within 6° of vertical that ends inside the neighbourhood at both
// ends is kept: a glyph's stem rising above the coarse box's rows.
// It returns how many lines it erased.
func eraseStraightLines(raw, mask *image.Gray, inner image.Rectangle, maxRun, maxGap int, minLen float64, minVotes int) int {
	w, h := raw.Rect.Dx(), raw.Rect.Dy()
	if w < 2 || h < 2 {
		return 0
	}
	colPts, rowPts := lineSeeds(raw, mask, inner, maxRun)
	n := 0
	// Columns: u = x, v = y; a step in u is 1 byte, in v a row.
	if len(colPts) >= minVotes {
		n += followLines(raw, mask, colPts, w, h, 1, w, maxRun, maxGap, minLen, minVotes, false)
	}
	// Rows: u = y, v = x.
	if len(rowPts) >= minVotes {
		n += followLines(raw, mask, rowPts, h, w, w, 1, maxRun, maxGap, minLen, minVotes, true)
	}
	return n
}

// seedPoint is a thin run's centre: u along the scan axis, v across it.
type seedPoint struct{ u, v int32 }

// lineSeeds returns the centres of the thin vertical runs (as (x, y)) and
// thin horizontal runs (as (y, x)) of raw that lie outside inner or on
// pixels erased from mask.
func lineSeeds(raw, mask *image.Gray, inner image.Rectangle, maxRun int) (cols, rows []seedPoint) {
	w, h := raw.Rect.Dx(), raw.Rect.Dy()
	seed := func(x, y int) bool {
		i := y*w + x
		return !(image.Pt(x, y).In(inner)) || (raw.Pix[i] != 0 && mask.Pix[i] == 0)
	}
	start := make([]int32, w)
	for i := range start {
		start[i] = -1
	}
	for y := 0; y <= h; y++ {
		var row []uint8
		if y < h {
			row = raw.Pix[y*w : (y+1)*w]
		}
		rs := -1
		for x := 0; x <= w; x++ {
			on := x < w && y < h && row[x] != 0
			if x < w {
				// Vertical runs, tracked per column.
				switch s := start[x]; {
				case on && s < 0:
					start[x] = int32(y)
				case !on && s >= 0:
					if y-int(s) <= maxRun {
						c := (int(s) + y - 1) / 2
						if seed(x, c) {
							cols = append(cols, seedPoint{int32(x), int32(c)})
						}
					}
					start[x] = -1
				}
			}
			// Horizontal runs.
			switch {
			case on && rs < 0:
				rs = x
			case !on && rs >= 0:
				if x-rs <= maxRun {
					c := (rs + x - 1) / 2
					if seed(c, y) {
						rows = append(rows, seedPoint{int32(y), int32(c)})
					}
				}
				rs = -1
			}
		}
	}
	return cols, rows
}

// followLines finds lines v = a + b·(u - U/2), |b| ≤ 1, through the seeds
// pts in a U×V grid whose pixel (u, v) is at index u·su + v·sv of raw and
// mask, and erases the thin runs of those that pass the chain test (see
// eraseStraightLines). At most three lines are taken. rows says that u
// runs down the rows, so a chain can be a glyph's vertical stem.
func followLines(raw, mask *image.Gray, pts []seedPoint, U, V, su, sv, maxRun, maxGap int, minLen float64, minVotes int, rows bool) int {
	g := &lineGrid{raw: raw, mask: mask, U: U, V: V, su: su, sv: sv, maxRun: maxRun, maxGap: maxGap, minLen: minLen, rows: rows}
	h := &hough{U: U, nA: (V+U)/houghBin + 2}
	h.acc = make([]int32, (2*houghSteps+1)*h.nA)
	used := make([]bool, len(pts))
	erased := 0
	for range 3 {
		a, b, ok := h.peak(pts, used, minVotes)
		if !ok {
			break
		}
		a, b, in := g.fit(pts, used, a, b)
		for _, i := range in {
			used[i] = true
		}
		if len(in) < minVotes {
			// The peak's seeds do not fit one line: drop them and look on.
			if len(in) == 0 {
				break
			}
			continue
		}
		seedU := make(map[int32]bool, len(in))
		for _, i := range in {
			seedU[pts[i].u] = true
		}
		erased += g.walk(a, b, seedU)
	}
	return erased
}

// Hough resolution: slopes in steps of 1/houghSteps, intercepts in bins of
// houghBin pixels.
const (
	houghSteps = 64
	houghBin   = 3
)

// hough accumulates votes for lines v = a + b·(u - U/2), |b| ≤ 1.
type hough struct {
	U, nA int // grid length along u; intercept bins
	acc   []int32
}

// peak is the line with the most votes of the seeds not used yet (over a
// pair of neighbouring intercept bins); ok is false when fewer than
// minVotes seeds are left or vote for it.
func (h *hough) peak(pts []seedPoint, used []bool, minVotes int) (a, b float64, ok bool) {
	clear(h.acc)
	uc, live := h.U/2, 0
	for i, p := range pts {
		if used[i] {
			continue
		}
		live++
		du := int(p.u) - uc
		base := int(p.v)*houghSteps + uc*houghSteps
		for k := -houghSteps; k <= houghSteps; k++ {
			a := (base - k*du) / (houghBin * houghSteps)
			if a >= 0 && a < h.nA {
				h.acc[(k+houghSteps)*h.nA+a]++
			}
		}
	}
	if live < minVotes {
		return 0, 0, false
	}
	best, bk, ba := int32(0), 0, 0
	for k := range 2*houghSteps + 1 {
		row := h.acc[k*h.nA : (k+1)*h.nA]
		for a := 0; a+1 < h.nA; a++ {
			if s := row[a] + row[a+1]; s > best {
				best, bk, ba = s, k, a
			}
		}
	}
	if int(best) < minVotes {
		return 0, 0, false
	}
	// The pair of bins spans intercepts [ba, ba+2)·houghBin: centre at
	// (ba+1)·houghBin, less the offset U/2.
	return float64((ba+1)*houghBin - uc), float64(bk-houghSteps) / houghSteps, true
}

// lineGrid is the U×V grid followLines works in.
type lineGrid struct {
	raw, mask      *image.Gray
	U, V, su, sv   int
	maxRun, maxGap int
	minLen         float64
	rows           bool
}

func (g *lineGrid) isSet(u, v int) bool { return g.raw.Pix[u*g.su+v*g.sv] != 0 }

// fit refines the line by least squares over the unused seeds near it,
// first within a bin and a pixel, then within 2 px, keeping a slope of at
// most 1.05; in are the seeds of the last pass.
func (g *lineGrid) fit(pts []seedPoint, used []bool, a, b float64) (float64, float64, []int) {
	uc := g.U / 2
	var in []int
	for _, tol := range []float64{houghBin + 1, 2} {
		in = in[:0]
		var su0, sv0, suu, suv, n float64
		for i, p := range pts {
			if used[i] {
				continue
			}
			du := float64(int(p.u) - uc)
			if math.Abs(float64(p.v)-(a+b*du)) <= tol {
				in = append(in, i)
				su0 += du
				sv0 += float64(p.v)
				suu += du * du
				suv += du * float64(p.v)
				n++
			}
		}
		if n < 2 {
			break
		}
		if d := n*suu - su0*su0; d > 1e-9 {
			nb := (n*suv - su0*sv0) / d
			if math.Abs(nb) <= 1.05 {
				b = nb
				a = (sv0 - b*su0) / n
			}
		}
	}
	return a, b, in
}

// run is a thin run across the line at u, from v = lo to hi.
type run struct{ u, lo, hi int }

// runAt is the thin run on the line at u, whose centre there is vc: found
// within 2 px of vc (a faint line thresholded into 1–2 px dashes wanders),
// at most maxRun long and centred within maxRun/2 of vc. ok is false where
// there is none, or a glyph stroke the line merges with.
func (g *lineGrid) runAt(u int, vc float64) (lo, hi int, ok bool) {
	vi := int(math.Round(vc))
	hit := -1
	for _, d := range [...]int{0, -1, 1, -2, 2} {
		if v := vi + d; v >= 0 && v < g.V && g.isSet(u, v) {
			hit = v
			break
		}
	}
	if hit < 0 {
		return 0, 0, false
	}
	lo, hi = hit, hit
	for lo > 0 && hi-lo <= g.maxRun && g.isSet(u, lo-1) {
		lo--
	}
	for hi+1 < g.V && hi-lo <= g.maxRun && g.isSet(u, hi+1) {
		hi++
	}
	if hi-lo+1 > g.maxRun || math.Abs(float64(lo+hi)/2-vc) > float64(g.maxRun)/2 {
		return 0, 0, false
	}
	return lo, hi, true
}

func (g *lineGrid) erase(c []run) {
	for _, r := range c {
		for v := r.lo; v <= r.hi; v++ {
			g.mask.Pix[r.u*g.su+v*g.sv] = 0
		}
	}
}

// walk follows the line v = a + b·(u - U/2) across the grid: its thin
// runs, with gaps of at most maxGap, form chains, which lineWalk.flush
// judges. It returns how many chains it erased.
func (g *lineGrid) walk(a, b float64, seedU map[int32]bool) int {
	w := &lineWalk{g: g, b: b}
	for u := range g.U {
		vc := a + b*float64(u-g.U/2)
		lo, hi, ok := g.runAt(u, vc)
		if len(w.chain) > 0 && u-w.chain[len(w.chain)-1].u > g.maxGap {
			w.flush()
		}
		if !ok {
			continue
		}
		w.chain = append(w.chain, run{u, lo, hi})
		if seedU[int32(u)] {
			w.hasSeed = true
		}
	}
	w.flush()
	if w.confirmed {
		for _, c := range w.rest {
			g.erase(c)
		}
	}
	return w.erased
}

// lineWalk is walk's state: the chain being built, and the chains that
// failed the test, kept because once another chain on the same line
// passes, the line is a noise line and its unseeded pieces at least
// maxRun long (where it runs on past the glyphs beyond a wide one it
// crosses, to its end point inside the neighbourhood) go too.
type lineWalk struct {
	g         *lineGrid
	b         float64 // the line's slope
	chain     []run
	hasSeed   bool
	rest      [][]run
	confirmed bool
	erased    int
}

// flush judges the chain and starts a new one.
func (w *lineWalk) flush() {
	if len(w.chain) == 0 {
		return
	}
	g := w.g
	first, last := w.chain[0], w.chain[len(w.chain)-1]
	span := float64(last.u-first.u+1) * math.Sqrt(1+w.b*w.b)
	// A chain that runs into the neighbourhood's border needs only half
	// the length: glyphs stay clear of it.
	border := first.u == 0 || last.u == g.U-1 || first.lo == 0 || first.hi == g.V-1 || last.lo == 0 || last.hi == g.V-1
	// A chain within 6° of vertical that ends inside the neighbourhood at
	// both ends is a glyph's stroke (上, 十, 1) taller than the coarse
	// box: noise lines join random points of the image, so one that steep
	// and short is rare.
	stroke := g.rows && !border && math.Abs(w.b) < 0.1
	switch {
	case w.hasSeed && !stroke && (span >= g.minLen || border && 2*span >= g.minLen):
		g.erase(w.chain)
		w.confirmed = true
		w.erased++
	case span >= float64(g.maxRun):
		w.rest = append(w.rest, append([]run(nil), w.chain...))
	}
	w.chain, w.hasSeed = w.chain[:0], false
}
