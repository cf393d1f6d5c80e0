package ocr

import (
	"math"
	"testing"

	"github.com/dl4img/dl4img/ocr/reader"
)

// TestEvalMetricsHandMade scores hand-made readings: a too-short reading
// is wrong, the value is computed from the predicted text, and unlabeled
// placeholders are left out.
func TestEvalMetricsHandMade(t *testing.T) {
	text := &Params{kind: KindCaptchaCTC}
	samples := []Sample{
		{Path: "0.png", Text: "AB12"},
		{Path: "1.png", Text: "0O00"},
		{Path: "2.png", Text: "XYZW"},
		{Path: "", Text: ""}, // a skipped bad image
	}
	rd := []reader.Reading{{Text: "AB12", Loss: 1}, {Text: "OO00", Loss: 2}, {Text: "XYZ", Loss: 3}, {Text: "ZZZZ", Loss: 100}}
	m, tm, am, err := evalMetrics(text, "val_", samples, rd)
	if err != nil {
		t.Fatal(err)
	}
	if am != nil {
		t.Error("arith metrics for a text kind")
	}
	want := map[string]float64{"val_seq_acc": 1.0 / 3, "val_acc": 10.0 / 12, "val_cer": 2.0 / 12, "val_loss": 2}
	for k, v := range want {
		if math.Abs(m[k]-v) > 1e-9 {
			t.Errorf("%s = %g, want %g", k, m[k], v)
		}
	}
	if top := tm.TopConfusions(1); len(top) != 1 || top[0] != "0→O: 1" {
		t.Errorf("confusions %v, want [0→O: 1]", top)
	}

	arith := &Params{kind: KindArithCTC}
	samples = []Sample{
		{Path: "0.png", Text: "1+2*3", Value: "7"},
		{Path: "1.png", Text: "(1+2)*3", Value: "9"},
		{Path: "2.png", Text: "9-4-1", Value: "4"},
		{Path: "3.png", Text: "8*2+1", Value: "17"},
	}
	rd = []reader.Reading{
		{Text: "1+2*3"},   // both right
		{Text: "(1+2*3"},  // not computable
		{Text: "9-(4-1)"}, // wrong text, wrong value (6)
		{Text: "2*8+1"},   // wrong text, right value
	}
	m, _, am, err = evalMetrics(arith, "test_", samples, rd)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]float64{"test_seq_acc": 0.25, "test_value_acc": 0.5, "test_both_acc": 0.25, "test_not_computable": 0.25}
	for k, v := range want {
		if math.Abs(m[k]-v) > 1e-9 {
			t.Errorf("%s = %g, want %g", k, m[k], v)
		}
	}
	if am.NotComputable != 1 {
		t.Errorf("not computable %d, want 1", am.NotComputable)
	}
	if _, _, _, err := evalMetrics(text, "x_", []Sample{{Path: ""}}, []reader.Reading{{}}); err == nil {
		t.Error("no labeled samples: want an error")
	}
}
