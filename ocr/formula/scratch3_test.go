package formula

import (
	"os"
	"testing"
)

func TestScratchSweep(t *testing.T) {
	if os.Getenv("SCRATCH_SWEEP") == "" {
		t.Skip()
	}
	g := testGenerator(t)
	for _, thr := range []int{1, 3, 4} {
		e := NewExtractor()
		e.LocalOpen = thr
		st := measureQuality(t, g, e, 0, 60)
		t.Logf("thr %d: %d images, %d lines: wrong count %d, IoU≥0.5 %d, IoU≥0.9 %d", thr, st.images, st.lines, st.wrongCount, st.found50, st.found90)
	}
}
