package formula

import (
	"os"
	"strconv"
	"testing"
)

func TestScratchHist(t *testing.T) {
	if os.Getenv("SCRATCH_IDX") == "" {
		t.Skip()
	}
	idx, _ := strconv.Atoi(os.Getenv("SCRATCH_IDX"))
	g := testGenerator(t)
	s, _ := g.Sample(idx)
	p := DefaultParams()
	gray := ToGray(s.Image)
	med, _ := Median(gray, 3)
	small := Downscale(med, 4, nil)
	fl := FlattenBackground(small, p.Flatten)
	cl := Close(Open(fl, p.OpenW, p.OpenH), p.CloseW, p.CloseH)
	h := Histogram(cl)
	t.Log("otsu", Otsu(h), "bg", BackgroundThreshold(h, 24))
	for i := 0; i < 256; i += 4 {
		s := 0
		for j := i; j < i+4; j++ {
			s += h[j]
		}
		t.Log(i, s)
	}
}
