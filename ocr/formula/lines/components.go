package lines

import (
	"image"
)

// Component is an 8-connected set of foreground pixels.
type Component struct {
	Box  image.Rectangle // bounding rectangle, like cv2.boundingRect of its external contour
	Area int             // pixel count
}

// Components labels the 8-connected regions of non-zero pixels of a mask
// with a two-pass union-find and returns them in order of their first pixel
// (top to bottom, then left to right).
func Components(mask *image.Gray) []Component {
	_, comps := labelComponents(mask, false)
	return comps
}

// labelComponents is Components that, if keep is set, also returns each
// pixel's component as an index into comps plus one (0 for background), so
// that callers can erase chosen components.
func labelComponents(mask *image.Gray, keep bool) ([]int32, []Component) {
	w, h := mask.Rect.Dx(), mask.Rect.Dy()
	labels := make([]int32, w*h)
	parent := []int32{0} // label 0 is background
	find := func(x int32) int32 {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	union := func(a, b int32) int32 {
		ra, rb := find(a), find(b)
		if ra == rb {
			return ra
		}
		if ra < rb {
			parent[rb] = ra
			return ra
		}
		parent[ra] = rb
		return rb
	}
	newLabel := func() int32 {
		l := int32(len(parent))
		parent = append(parent, l)
		return l
	}
	for y := range h {
		row := mask.Pix[y*w : (y+1)*w]
		lrow := labels[y*w : (y+1)*w]
		if y == 0 {
			for x, v := range row {
				switch {
				case v == 0:
				case x > 0 && lrow[x-1] != 0:
					lrow[x] = lrow[x-1]
				default:
					lrow[x] = newLabel()
				}
			}
			continue
		}
		up := labels[(y-1)*w : y*w]
		for x, v := range row {
			if v == 0 {
				continue
			}
			// Decision tree of 8-connected raster labelling: the pixel
			// above joins everything the others would (it touches the
			// upper-left, upper-right and left neighbours' neighbours
			// above), and a labelled left neighbour already joined the
			// upper-left and upper pixels, leaving only the upper right.
			var l int32
			switch {
			case up[x] != 0:
				l = up[x]
			case x > 0 && lrow[x-1] != 0:
				l = lrow[x-1]
				if x+1 < w && up[x+1] != 0 {
					l = union(l, up[x+1])
				}
			default:
				if x > 0 && up[x-1] != 0 {
					l = up[x-1]
				}
				if x+1 < w && up[x+1] != 0 {
					if l == 0 {
						l = up[x+1]
					} else {
						l = union(l, up[x+1])
					}
				}
				if l == 0 {
					l = newLabel()
				}
			}
			lrow[x] = l
		}
	}
	// Unions point a root at a smaller one, so parents precede children
	// and one forward pass resolves every label to its root.
	for i := range parent {
		parent[i] = parent[parent[i]]
	}
	// Second pass: statistics per root, numbered in order of first pixel.
	index := make([]int32, len(parent))
	var comps []Component
	for y := range h {
		lrow := labels[y*w : (y+1)*w]
		for x, l := range lrow {
			if l == 0 {
				continue
			}
			r := parent[l]
			i := index[r]
			if i == 0 {
				comps = append(comps, Component{Box: image.Rect(x, y, x+1, y+1)})
				i = int32(len(comps))
				index[r] = i
			}
			if keep {
				lrow[x] = i
			}
			c := &comps[i-1]
			c.Area++
			if x < c.Box.Min.X {
				c.Box.Min.X = x
			}
			if x >= c.Box.Max.X {
				c.Box.Max.X = x + 1
			}
			c.Box.Max.Y = y + 1
		}
	}
	if !keep {
		return nil, comps
	}
	return labels, comps
}

// splitThinRows cuts each component at runs of at least minRun rows that
// hold fewer than minInk of its pixels (or an eighth of its widest row's),
// and drops those runs: a blotch streak or steep noise line that touches a
// text line (or joins two) is thin in every row it has alone, while a
// line's rows are wide. Shorter thin runs, such as a stem above the line,
// stay. labels are labelComponents' (keep set) for a mask w pixels wide.
func splitThinRows(labels []int32, w int, comps []Component, minInk, minRun int) []Component {
	if minRun <= 0 {
		return comps
	}
	var out []Component
	for ci, c := range comps {
		if c.Box.Dy() < minRun {
			out = append(out, c)
			continue
		}
		// Each row's pixel count and x extent, as a band of one row.
		id := int32(ci + 1)
		rows := make([]Component, c.Box.Dy())
		thin := minInk
		for i := range rows {
			y := c.Box.Min.Y + i
			r := Component{Box: image.Rectangle{ // not image.Rect, which would swap the empty x range
				Min: image.Pt(c.Box.Max.X, y),
				Max: image.Pt(c.Box.Min.X, y+1),
			}}
			for x := c.Box.Min.X; x < c.Box.Max.X; x++ {
				if labels[y*w+x] == id {
					r.Area++
					r.Box.Min.X = min(r.Box.Min.X, x)
					r.Box.Max.X = max(r.Box.Max.X, x+1)
				}
			}
			rows[i] = r
			thin = max(thin, r.Area/8)
		}
		// cut[i] marks rows inside a long thin run.
		cut := make([]bool, len(rows))
		split := false
		for i := 0; i < len(rows); {
			j := i
			for j < len(rows) && rows[j].Area < thin {
				j++
			}
			if j-i >= minRun {
				split = true
				for k := i; k < j; k++ {
					cut[k] = true
				}
			}
			i = max(j, i+1)
		}
		if !split {
			out = append(out, c)
			continue
		}
		for i := 0; i < len(rows); {
			if cut[i] {
				i++
				continue
			}
			// A component has pixels in every row of its box, so the
			// rows' boxes are not empty and their union is the band's.
			band := rows[i]
			for i++; i < len(rows) && !cut[i]; i++ {
				band.Box = band.Box.Union(rows[i].Box)
				band.Area += rows[i].Area
			}
			out = append(out, band)
		}
	}
	return out
}
