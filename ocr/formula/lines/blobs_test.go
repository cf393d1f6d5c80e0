package lines

import (
	"image"
	"slices"
	"testing"
)

func boxesOf(cs []Component) []image.Rectangle {
	var out []image.Rectangle
	for _, c := range cs {
		out = append(out, c.Box)
	}
	return out
}

// Coarse masks of the kind the opening makes: lines are wide blobs, a
// blotch streak or steep noise line is a narrow vertical bar.
func TestSplitThinRows(t *testing.T) {
	line1 := image.Rect(20, 10, 80, 26)  // a line, 16 rows
	line2 := image.Rect(10, 50, 100, 66) // the next line
	for _, tc := range []struct {
		name  string
		parts []image.Rectangle
		want  []image.Rectangle
	}{
		{"line alone", []image.Rectangle{line1}, []image.Rectangle{line1}},
		// A stem 6 rows above the line is shorter than BandGap: kept.
		{"stem stays", []image.Rectangle{line1, image.Rect(30, 4, 33, 10)}, []image.Rectangle{image.Rect(20, 4, 80, 26)}},
		// A streak hanging 30 rows under the line is cut off.
		{"streak below", []image.Rectangle{line1, image.Rect(40, 26, 46, 56)}, []image.Rectangle{line1}},
		// Two lines joined by a streak become two blobs again.
		{"two lines joined", []image.Rectangle{line1, line2, image.Rect(40, 26, 46, 50)}, []image.Rectangle{line1, line2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newGray(120, 80)
			paint(m, 255, tc.parts...)
			labels, comps := labelComponents(m, true)
			p := DefaultParams()
			got := boxesOf(splitThinRows(labels, m.Rect.Dx(), comps, p.BandInk, p.BandGap))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDenseRows(t *testing.T) {
	m := newGray(120, 80)
	// A line (rows 40–55) with a noise line running up from it.
	paint(m, 255, image.Rect(10, 40, 100, 56))
	for y := 10; y < 40; y++ {
		paint(m, 255, image.Rect(60-y/2, y, 66-y/2, y+1))
	}
	box := image.Rect(10, 10, 100, 56)
	// 16 dense rows, widened by 4 each way (clipped at the bottom).
	if got, want := denseRows(m, box), image.Rect(10, 36, 100, 56); got != want {
		t.Errorf("denseRows = %v, want %v", got, want)
	}
}

func TestMergeRows(t *testing.T) {
	a := Component{Box: image.Rect(10, 10, 40, 26), Area: 400}
	b := Component{Box: image.Rect(50, 12, 90, 26), Area: 500}   // rest of a's line
	bar := Component{Box: image.Rect(95, 0, 101, 60), Area: 300} // a streak through the rows
	wide := Component{Box: image.Rect(50, 14, 300, 60), Area: 5000}
	for _, tc := range []struct {
		name string
		in   []Component
		want []image.Rectangle
	}{
		{"pieces of a line", []Component{a, b}, []image.Rectangle{image.Rect(10, 10, 90, 26)}},
		{"streak stays apart", []Component{a, b, bar}, []image.Rectangle{image.Rect(10, 10, 90, 26), bar.Box}},
		// A line-shaped blob may be much taller than a light piece of it.
		{"wide blob takes a small piece", []Component{a, wide}, []image.Rectangle{image.Rect(10, 10, 300, 60)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := boxesOf(mergeRows(slices.Clone(tc.in), DefaultParams().MinAspect))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
