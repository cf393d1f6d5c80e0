package formula

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
	for y := range h {
		row := mask.Pix[y*w : (y+1)*w]
		lrow := labels[y*w : (y+1)*w]
		var up []int32
		if y > 0 {
			up = labels[(y-1)*w : y*w]
		}
		for x, v := range row {
			if v == 0 {
				continue
			}
			l := int32(0)
			link := func(n int32) {
				if n == 0 {
					return
				}
				if l == 0 {
					l = n
				} else if n != l {
					l = union(l, n)
				}
			}
			if x > 0 {
				link(lrow[x-1])
			}
			if up != nil {
				if x > 0 {
					link(up[x-1])
				}
				link(up[x])
				if x+1 < w {
					link(up[x+1])
				}
			}
			if l == 0 {
				l = int32(len(parent))
				parent = append(parent, l)
			}
			lrow[x] = l
		}
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
			r := find(l)
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
