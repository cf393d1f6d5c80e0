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

// followLines finds lines v = a + b·(u - uc), |b| ≤ 1, through the seeds pts
// in a U×V grid whose pixel (u, v) is at index u·su + v·sv of raw and mask,
// and erases the thin runs of those that pass the chain test (see
// eraseStraightLines). At most three lines are taken. rows says that u
// runs down the rows, so a chain can be a glyph's vertical stem.
func followLines(raw, mask *image.Gray, pts []seedPoint, U, V, su, sv, maxRun, maxGap int, minLen float64, minVotes int, rows bool) int {
	const (
		steps = 64 // slope resolution 1/steps
		bin   = 3  // intercept bin width in pixels
	)
	uc := U / 2
	nA := (V+U)/bin + 2
	acc := make([]int32, (2*steps+1)*nA)
	used := make([]bool, len(pts))
	erased := 0
	isSet := func(u, v int) bool { return raw.Pix[u*su+v*sv] != 0 }
	for range 3 {
		clear(acc)
		live := 0
		for i, p := range pts {
			if used[i] {
				continue
			}
			live++
			du := int(p.u) - uc
			base := int(p.v)*steps + (U/2)*steps
			for k := -steps; k <= steps; k++ {
				a := (base - k*du) / (bin * steps)
				if a >= 0 && a < nA {
					acc[(k+steps)*nA+a]++
				}
			}
		}
		if live < minVotes {
			break
		}
		best, bk, ba := int32(0), 0, 0
		for k := range 2*steps + 1 {
			row := acc[k*nA : (k+1)*nA]
			for a := 0; a+1 < nA; a++ {
				if s := row[a] + row[a+1]; s > best {
					best, bk, ba = s, k, a
				}
			}
		}
		if int(best) < minVotes {
			break
		}
		// The pair of bins spans intercepts [ba, ba+2)·bin: centre at
		// (ba+1)·bin, less the offset U/2.
		b := float64(bk-steps) / steps
		a := float64((ba+1)*bin - U/2)
		var in []int
		for _, tol := range []float64{bin + 1, 2} {
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
		if len(in) < minVotes {
			// The peak's seeds do not fit one line: drop them and look on.
			for _, i := range in {
				used[i] = true
			}
			if len(in) == 0 {
				break
			}
			continue
		}
		for _, i := range in {
			used[i] = true
		}
		seedU := make(map[int32]bool, len(in))
		for _, i := range in {
			seedU[pts[i].u] = true
		}
		// Walk the line: the thin run on it in every u, within 2 px of
		// the fit (a faint line thresholded into 1–2 px dashes wanders).
		type run struct{ u, lo, hi int }
		var chain []run
		hasSeed := false
		// Chains that fail the test are kept: once another chain on the
		// same line passes, the line is a noise line, and its unseeded
		// pieces at least maxRun long (where it runs on past the glyphs
		// beyond a wide one it crosses, to its end point inside the
		// neighbourhood) go too.
		var rest [][]run
		confirmed := false
		erase := func(c []run) {
			for _, r := range c {
				for v := r.lo; v <= r.hi; v++ {
					mask.Pix[r.u*su+v*sv] = 0
				}
			}
		}
		flush := func() {
			if len(chain) == 0 {
				return
			}
			first, last := chain[0], chain[len(chain)-1]
			span := float64(last.u-first.u+1) * math.Sqrt(1+b*b)
			// A chain that runs into the neighbourhood's border
			// needs only half the length: glyphs stay clear of it.
			border := first.u == 0 || last.u == U-1 || first.lo == 0 || first.hi == V-1 || last.lo == 0 || last.hi == V-1
			// A chain within 6° of vertical that ends inside the
			// neighbourhood at both ends is a glyph's stroke (上, 十,
			// 1) taller than the coarse box: noise lines join random
			// points of the image, so one that steep and short is rare.
			stroke := rows && !border && math.Abs(b) < 0.1
			switch {
			case hasSeed && !stroke && (span >= minLen || border && 2*span >= minLen):
				erase(chain)
				confirmed = true
				erased++
			case span >= float64(maxRun):
				rest = append(rest, append([]run(nil), chain...))
			}
			chain, hasSeed = chain[:0], false
		}
		for u := range U {
			vc := a + b*float64(u-uc)
			vi := int(math.Round(vc))
			hit := -1
			for _, d := range [...]int{0, -1, 1, -2, 2} {
				if v := vi + d; v >= 0 && v < V && isSet(u, v) {
					hit = v
					break
				}
			}
			if hit < 0 {
				if len(chain) > 0 && u-chain[len(chain)-1].u > maxGap {
					flush()
				}
				continue
			}
			lo, hi := hit, hit
			for lo > 0 && hi-lo <= maxRun && isSet(u, lo-1) {
				lo--
			}
			for hi+1 < V && hi-lo <= maxRun && isSet(u, hi+1) {
				hi++
			}
			if hi-lo+1 > maxRun || math.Abs(float64(lo+hi)/2-vc) > float64(maxRun)/2 {
				// A glyph stroke the line merges with, or something
				// else: a gap.
				if len(chain) > 0 && u-chain[len(chain)-1].u > maxGap {
					flush()
				}
				continue
			}
			if len(chain) > 0 && u-chain[len(chain)-1].u > maxGap {
				flush()
			}
			chain = append(chain, run{u, lo, hi})
			if seedU[int32(u)] {
				hasSeed = true
			}
		}
		flush()
		if confirmed {
			for _, c := range rest {
				erase(c)
			}
		}
	}
	return erased
}
