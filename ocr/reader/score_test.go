package reader

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/ocr/expr"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestLevenshtein(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"ABCD", "ABCD", 0}, {"ABCD", "", 4}, {"", "AB", 2},
		{"ABCD", "ABD", 1}, {"ABCD", "AXCD", 1}, {"ABCD", "ABCDE", 1},
		{"kitten", "sitting", 3}, {"加减", "加乘", 1},
	}
	for _, tc := range tests {
		if got := Levenshtein(tc.a, tc.b); got != tc.want {
			t.Errorf("Levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestScoreText(t *testing.T) {
	truth := []string{"AB0O", "0000", "XYZW", "ABCD", "Q1Q1"}
	pred := []string{"AB0O", "O00O", "XYW", "ABCDE", "Q1Q1"}
	m, err := ScoreText(truth, pred)
	if err != nil {
		t.Fatal(err)
	}
	// Exact: samples 0 and 4.
	if m.N != 5 || m.SeqCorrect != 2 || !near(m.SeqAccuracy, 0.4) {
		t.Errorf("sequence: %d/%d %.3f", m.SeqCorrect, m.N, m.SeqAccuracy)
	}
	// Position-wise: 4 + 2 (middle zeros) + 2 (X, Y) + 4 + 4 = 16 of 20.
	if m.Chars != 20 || m.CharCorrect != 16 || !near(m.CharAccuracy, 0.8) {
		t.Errorf("chars: %d/%d %.3f", m.CharCorrect, m.Chars, m.CharAccuracy)
	}
	// Edits: 2 substitutions, 1 deletion (Z), 1 insertion (E).
	if m.EditDistance != 4 || m.Substitutions != 2 || m.Deletions != 1 || m.Insertions != 1 || !near(m.CER, 0.2) {
		t.Errorf("edits: %+v", m)
	}
	// Capped per sample, the same 4 edits of 20 characters; a reading far
	// longer than its label costs at most the label's length.
	if !near(m.EditAccuracy, 0.8) {
		t.Errorf("edit accuracy %g, want 0.8", m.EditAccuracy)
	}
	if long, _ := ScoreText([]string{"AB", "CDEF"}, []string{"XXXXXXXX", "CDEF"}); !near(long.EditAccuracy, 4.0/6) || !near(long.CER, 8.0/6) {
		t.Errorf("a long wrong reading: edit accuracy %g, CER %g; want 4/6, 8/6", long.EditAccuracy, long.CER)
	}
	if got := strings.Join(m.TopConfusions(3), ", "); got != "0→O: 2" {
		t.Errorf("confusions %q", got)
	}
	if _, err := json.Marshal(m); err != nil {
		t.Error(err)
	}
	if _, err := ScoreText([]string{"A"}, nil); err == nil {
		t.Error("length mismatch accepted")
	}
	// Too few characters is wrong, not a partial match of the sequence.
	short, _ := ScoreText([]string{"ABCD"}, []string{"ABC"})
	if short.SeqCorrect != 0 || short.CharCorrect != 3 {
		t.Errorf("short prediction: %+v", short)
	}
}

func TestConfusionOrdering(t *testing.T) {
	truth := []string{"0", "0", "0", "1", "1", "8"}
	pred := []string{"O", "O", "O", "I", "I", "B"}
	m, _ := ScoreText(truth, pred)
	want := "0→O: 3|1→I: 2|8→B: 1"
	if got := strings.Join(m.TopConfusions(10), "|"); got != want {
		t.Errorf("confusions %q, want %q", got, want)
	}
	js, _ := json.Marshal(m.Confusions[0])
	if string(js) != `{"truth":"0","pred":"O","count":3}` {
		t.Errorf("json %s", js)
	}
}

func TestScoreValues(t *testing.T) {
	truth := []string{"3+4", "(3-7)+5", "2*3", "9-1", "1+1", "5*5"}
	values := []string{"7", "1", "", "8", "2", "25"}
	pred := []string{
		"3+4",     // both right
		"(3-7)+5", // both right
		"3*2",     // text wrong, value right
		"9-l",     // not computable
		"1+",      // not computable
		"5*5",     // text right; truth value from labels is 25: right
	}
	m, err := ScoreValues(expr.Prelim, truth, values, pred)
	if err != nil {
		t.Fatal(err)
	}
	if m.TextCorrect != 3 || m.ValueCorrect != 4 || m.BothCorrect != 3 || m.NotComputable != 2 {
		t.Errorf("counts: text %d value %d both %d nc %d", m.TextCorrect, m.ValueCorrect, m.BothCorrect, m.NotComputable)
	}
	if !near(m.BothAccuracy, 0.5) || !near(m.NotComputableRate, 2.0/6) || !near(m.ValueAccuracy, 4.0/6) {
		t.Errorf("rates: %s", m.String())
	}

	// A wrong value in labels.txt makes the right text's value wrong.
	m, _ = ScoreValues(expr.Prelim, []string{"2+2"}, []string{"5"}, []string{"2+2"})
	if m.TextCorrect != 1 || m.ValueCorrect != 0 || m.BothCorrect != 0 {
		t.Errorf("mismatched truth value: %+v", m)
	}
	// Division: values compare after rounding to two decimals.
	m, _ = ScoreValues(expr.Prelim, []string{"2/3"}, []string{"0.67"}, []string{"4/6"})
	if m.ValueCorrect != 1 || m.TextCorrect != 0 {
		t.Errorf("division: %+v", m)
	}
	// Without values the truth is evaluated.
	m, _ = ScoreValues(expr.Prelim, []string{"2*(1+1)"}, nil, []string{"2*2"})
	if m.ValueCorrect != 1 {
		t.Errorf("evaluated truth: %+v", m)
	}
	if _, err := ScoreValues(expr.Prelim, []string{"2+"}, nil, []string{"2"}); err == nil {
		t.Error("uncomputable truth accepted")
	}
	if _, err := ScoreValues(expr.Prelim, []string{"1"}, []string{"1", "2"}, []string{"1"}); err == nil {
		t.Error("value count mismatch accepted")
	}
}
