package reader

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/dl4img/dl4img/ocr/expr"
)

// Confusion counts how often the truth character was read as another.
type Confusion struct {
	Truth, Pred rune
	Count       int
}

func (c Confusion) String() string { return fmt.Sprintf("%c→%c: %d", c.Truth, c.Pred, c.Count) }

// MarshalJSON writes the characters as strings, not code points.
func (c Confusion) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Truth string `json:"truth"`
		Pred  string `json:"pred"`
		Count int    `json:"count"`
	}{string(c.Truth), string(c.Pred), c.Count})
}

// TextMetrics compares predicted strings with the truth.
type TextMetrics struct {
	N           int     `json:"n"`
	SeqCorrect  int     `json:"seq_correct"`
	SeqAccuracy float64 `json:"seq_accuracy"` // whole string right

	// CharAccuracy is position-wise: truth character i counts as right when
	// the prediction has the same character at position i; the denominator
	// is the number of truth characters. For fixed-length labels this is the
	// mean of the book's per-head accuracies; a missing character is wrong.
	Chars        int     `json:"chars"`
	CharCorrect  int     `json:"char_correct"`
	CharAccuracy float64 `json:"char_accuracy"`

	// CER is the Levenshtein distance summed over samples divided by the
	// number of truth characters (can exceed 1 with many insertions).
	EditDistance int     `json:"edit_distance"`
	CER          float64 `json:"cer"`
	// EditAccuracy is 1 - CER with each sample's distance capped at its
	// length (a reading can at worst miss its sample's characters): the
	// final round's character accuracy.
	EditAccuracy  float64 `json:"edit_accuracy"`
	Substitutions int     `json:"substitutions"`
	Insertions    int     `json:"insertions"`
	Deletions     int     `json:"deletions"`

	// Confusions are the substitutions of a minimal alignment, most frequent
	// first (ties by truth, then predicted character).
	Confusions []Confusion `json:"confusions,omitempty"`
}

// TopConfusions formats the k most frequent confusions, e.g. "0→O: 37".
func (m *TextMetrics) TopConfusions(k int) []string {
	var out []string
	for i, c := range m.Confusions {
		if i == k {
			break
		}
		out = append(out, c.String())
	}
	return out
}

func (m *TextMetrics) String() string {
	s := fmt.Sprintf("n=%d seq_acc=%.4f char_acc=%.4f cer=%.4f", m.N, m.SeqAccuracy, m.CharAccuracy, m.CER)
	if top := m.TopConfusions(5); len(top) > 0 {
		s += " confusions: " + strings.Join(top, ", ")
	}
	return s
}

// ScoreText scores pred against truth, sample by sample.
func ScoreText(truth, pred []string) (TextMetrics, error) {
	if len(truth) != len(pred) {
		return TextMetrics{}, fmt.Errorf("evaluate: %d truths but %d predictions", len(truth), len(pred))
	}
	var m TextMetrics
	capped := 0
	conf := map[[2]rune]int{}
	for i := range truth {
		t, p := []rune(truth[i]), []rune(pred[i])
		m.N++
		if truth[i] == pred[i] {
			m.SeqCorrect++
		}
		m.Chars += len(t)
		for j := range t {
			if j < len(p) && p[j] == t[j] {
				m.CharCorrect++
			}
		}
		a := align(t, p)
		m.EditDistance += a.sub + a.ins + a.del
		capped += min(len(t), a.sub+a.ins+a.del)
		m.Substitutions += a.sub
		m.Insertions += a.ins
		m.Deletions += a.del
		for _, s := range a.pairs {
			conf[s]++
		}
	}
	m.SeqAccuracy = ratio(m.SeqCorrect, m.N)
	m.CharAccuracy = ratio(m.CharCorrect, m.Chars)
	m.CER = ratio(m.EditDistance, m.Chars)
	if m.Chars > 0 {
		m.EditAccuracy = 1 - float64(capped)/float64(m.Chars)
	}
	for k, n := range conf {
		m.Confusions = append(m.Confusions, Confusion{Truth: k[0], Pred: k[1], Count: n})
	}
	sort.Slice(m.Confusions, func(i, j int) bool {
		a, b := m.Confusions[i], m.Confusions[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Truth != b.Truth {
			return a.Truth < b.Truth
		}
		return a.Pred < b.Pred
	})
	return m, nil
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Levenshtein is the edit distance between two strings, in characters.
func Levenshtein(a, b string) int {
	al := align([]rune(a), []rune(b))
	return al.sub + al.ins + al.del
}

type alignment struct {
	sub, ins, del int
	pairs         [][2]rune // substituted (truth, pred) pairs
}

// align computes a minimal edit script from t to p. On ties the backtrace
// prefers a match or substitution, so "0AB" read as "OAB" is one 0→O
// substitution rather than a deletion plus an insertion.
func align(t, p []rune) alignment {
	n, m := len(t), len(p)
	d := make([][]int, n+1)
	for i := range d {
		d[i] = make([]int, m+1)
		d[i][0] = i
	}
	for j := range m + 1 {
		d[0][j] = j
	}
	for i := 1; i <= n; i++ {
		for j := 1; j <= m; j++ {
			c := d[i-1][j-1]
			if t[i-1] != p[j-1] {
				c++
			}
			d[i][j] = min(c, d[i-1][j]+1, d[i][j-1]+1)
		}
	}
	var a alignment
	i, j := n, m
	for i > 0 || j > 0 {
		switch {
		case i > 0 && j > 0 && t[i-1] == p[j-1] && d[i][j] == d[i-1][j-1]:
			i, j = i-1, j-1
		case i > 0 && j > 0 && d[i][j] == d[i-1][j-1]+1:
			a.sub++
			a.pairs = append(a.pairs, [2]rune{t[i-1], p[j-1]})
			i, j = i-1, j-1
		case i > 0 && d[i][j] == d[i-1][j]+1:
			a.del++
			i--
		default:
			a.ins++
			j--
		}
	}
	return a
}

// ValueMetrics scores expression readings: the text, the value computed
// from the predicted text, and both.
type ValueMetrics struct {
	TextMetrics
	TextCorrect   int `json:"text_correct"`
	ValueCorrect  int `json:"value_correct"`
	BothCorrect   int `json:"both_correct"`
	NotComputable int `json:"not_computable"` // predictions the dialect rejects

	TextAccuracy      float64 `json:"text_accuracy"`
	ValueAccuracy     float64 `json:"value_accuracy"`
	BothAccuracy      float64 `json:"both_accuracy"`
	NotComputableRate float64 `json:"not_computable_rate"`
}

func (m *ValueMetrics) String() string {
	return fmt.Sprintf("%s text=%.4f value=%.4f both=%.4f not_computable=%.4f",
		m.TextMetrics.String(), m.TextAccuracy, m.ValueAccuracy, m.BothAccuracy, m.NotComputableRate)
}

// ScoreValues scores predicted expressions of dialect d. truthValue holds
// the values from labels.txt; a nil slice or an empty entry means
// "evaluate the truth text". A value is right when d.Format of the
// predicted text's exact value equals the truth value in that form, i.e.
// the same number (rounded to two decimals). A truth with no value to
// compare (a value that is no number, or none and a text that does not
// evaluate) is an error.
func ScoreValues(d expr.Dialect, truthText, truthValue, pred []string) (ValueMetrics, error) {
	if truthValue != nil && len(truthValue) != len(truthText) {
		return ValueMetrics{}, fmt.Errorf("evaluate: %d truths but %d truth values", len(truthText), len(truthValue))
	}
	tm, err := ScoreText(truthText, pred)
	if err != nil {
		return ValueMetrics{}, err
	}
	m := ValueMetrics{TextMetrics: tm}
	for i, t := range truthText {
		want := ""
		if truthValue != nil && truthValue[i] != "" {
			if want, err = d.Normalize(truthValue[i]); err != nil {
				return ValueMetrics{}, fmt.Errorf("evaluate: truth %d: %w", i, err)
			}
		} else if v, err := d.Eval(t); err == nil {
			want = d.Format(v)
		} else {
			return ValueMetrics{}, fmt.Errorf("evaluate: truth %d: %w", i, err)
		}
		textOK := pred[i] == t
		valueOK := false
		if v, err := d.Eval(pred[i]); err != nil {
			m.NotComputable++
		} else {
			valueOK = d.Format(v) == want
		}
		if textOK {
			m.TextCorrect++
		}
		if valueOK {
			m.ValueCorrect++
		}
		if textOK && valueOK {
			m.BothCorrect++
		}
	}
	m.TextAccuracy = ratio(m.TextCorrect, m.N)
	m.ValueAccuracy = ratio(m.ValueCorrect, m.N)
	m.BothAccuracy = ratio(m.BothCorrect, m.N)
	m.NotComputableRate = ratio(m.NotComputable, m.N)
	return m, nil
}
