package formula

import (
	"image"
	"testing"
)

// iou is the intersection over union of two rectangles.
func iou(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ia := float64(in.Dx() * in.Dy())
	return ia / (float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - ia)
}

type qualityStats struct {
	images, lines, wrongCount, found50, found90 int
	worst                                       []string
}

// measureQuality extracts samples [from, from+n) and matches each
// ground-truth line to the found box with the best IoU.
func measureQuality(t testing.TB, g *Generator, e *Extractor, from, n int) qualityStats {
	var st qualityStats
	for i := from; i < from+n; i++ {
		s, err := g.Sample(i)
		if err != nil {
			t.Fatal(err)
		}
		_, boxes, err := e.Extract(s.Image, nil)
		st.images++
		st.lines += len(s.Boxes)
		if err != nil {
			st.wrongCount++
			st.worst = append(st.worst, err.Error())
			continue
		}
		if len(boxes) != len(s.Boxes) {
			st.wrongCount++
			st.worst = append(st.worst, sprintf("sample %d: %d lines, want %d", i, len(boxes), len(s.Boxes)))
		}
		for l, gt := range s.Boxes {
			best := 0.0
			for _, b := range boxes {
				best = max(best, iou(gt, b))
			}
			if best >= 0.5 {
				st.found50++
			}
			if best >= 0.9 {
				st.found90++
			} else {
				st.worst = append(st.worst, sprintf("sample %d line %d: IoU %.3f gt %v", i, l, best, gt))
			}
		}
	}
	return st
}

func TestExtractQuality(t *testing.T) {
	g := testGenerator(t)
	e := NewExtractor()
	n := 20
	st := measureQuality(t, g, e, 0, n)
	for _, w := range st.worst {
		t.Log(w)
	}
	t.Logf("%d images, %d lines: wrong count %d, IoU≥0.5 %d, IoU≥0.9 %d", st.images, st.lines, st.wrongCount, st.found50, st.found90)
	if st.wrongCount > 0 {
		t.Errorf("%d of %d images yielded the wrong number of lines", st.wrongCount, st.images)
	}
	if float64(st.found50) < 0.95*float64(st.lines) {
		t.Errorf("only %d of %d lines found with IoU ≥ 0.5", st.found50, st.lines)
	}
}
