package reader

import (
	"math"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
)

func TestCharset(t *testing.T) {
	cs := NewCharset("0123456789+-*/()=;烧不")
	ids, err := cs.Encode("烧=1;(烧)", 64)
	if err != nil {
		t.Fatal(err)
	}
	ints := make([]int, len(ids))
	for i, id := range ids {
		ints[i] = int(id)
	}
	if back, err := cs.Text(ints); back != "烧=1;(烧)" || err != nil {
		t.Errorf("round trip %q, %v", back, err)
	}
	for _, bad := range []struct {
		text string
		max  int
	}{{"x=1;x", 64}, {"123", 2}} {
		if _, err := cs.Encode(bad.text, bad.max); err == nil {
			t.Errorf("Encode(%q, %d) accepted", bad.text, bad.max)
		}
	}
	if _, err := cs.Text([]int{cs.Len()}); err == nil {
		t.Error("Text of the blank class accepted")
	}
	labels, lens, err := cs.Labels([]string{"12", "", "不"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if l, n := tensors.MustCopyFlatData[int32](labels), tensors.MustCopyFlatData[int32](lens); !slices.Equal(l, []int32{1, 2, 0, 0, 0, 0, 19, 0, 0}) || !slices.Equal(n, []int32{2, 1, 1}) {
		t.Errorf("labels %v lengths %v: want zero padding and a dummy length 1 for the unlabeled text", l, n)
	}
}

// TestDecodeHandMade checks greedy CTC decoding (repeats collapsed, blanks
// dropped, cut to the label length) and the CNN's per-head arg-max on
// hand-made probabilities.
func TestDecodeHandMade(t *testing.T) {
	alpha := NewCharset("AB")
	ctc := CRNN{Classes: 2, MaxLen: 2}
	// Steps over classes A, B, blank(2).
	row := func(c int) []float32 {
		r := []float32{0.1, 0.1, 0.1}
		r[c] = 0.8
		return r
	}
	cat := func(cs ...int) []float32 {
		var out []float32
		for _, c := range cs {
			out = append(out, row(c)...)
		}
		return out
	}
	cases := []struct {
		name  string
		net   Net
		probs []float32
		want  string
	}{
		{"ctc repeats collapse", ctc, cat(0, 0, 2, 1, 1), "AB"},
		{"ctc blank separates repeats", ctc, cat(0, 2, 0, 2), "AA"},
		{"ctc cut to length", ctc, cat(0, 2, 1, 2, 0), "AB"},
		{"ctc too short", ctc, cat(2, 1, 1, 2), "B"},
		{"ctc all blank", ctc, cat(2, 2, 2), ""},
		{"cnn heads", CNN{Classes: 2, Length: 3}, []float32{0.2, 0.8, 0.9, 0.1, 0.4, 0.6}, "BAB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ids, conf, err := c.net.Decode(c.probs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := alpha.Text(ids)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("decoded %q, want %q", got, c.want)
			}
			if conf <= 0 || conf > 1 {
				t.Errorf("confidence %g outside (0, 1]", conf)
			}
		})
	}
	// The confidence is the product of the chosen probabilities.
	_, conf, _ := CNN{Classes: 2, Length: 3}.Decode([]float32{0.2, 0.8, 0.9, 0.1, 0.4, 0.6})
	if want := 0.8 * 0.9 * 0.6; math.Abs(conf-want) > 1e-6 {
		t.Errorf("confidence %g, want %g", conf, want)
	}
	// And of the CTC path's steps, blanks included.
	_, conf, _ = ctc.Decode(cat(0, 2, 1))
	if want := 0.8 * 0.8 * 0.8; math.Abs(conf-want) > 1e-6 {
		t.Errorf("CTC confidence %g, want %g", conf, want)
	}
}
