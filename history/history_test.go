package history

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/dl4img/dl4img/store"
)

var nan, inf = math.NaN(), math.Inf(1)

func TestBetterNeverPicksNonFinite(t *testing.T) {
	cases := []struct {
		name    string
		v, best float64
		want    bool
	}{
		{"loss", 0.5, nan, true},
		{"loss", 0.5, inf, true},
		{"loss", 0.5, 0.6, true},
		{"loss", 0.7, 0.6, false},
		{"loss", nan, 0.6, false},
		{"loss", nan, nan, false},
		{"loss", -inf, 0.6, false},
		{"val_acc", inf, 0.6, false},
		{"val_acc", 0.7, 0.6, true},
		{"val_acc", 0.7, -inf, true},
	}
	for _, c := range cases {
		if got := Better(c.name, c.v, c.best); got != c.want {
			t.Errorf("Better(%s, %v, %v) = %v, want %v", c.name, c.v, c.best, got, c.want)
		}
	}
}

// A diverged run: best is the best finite value wherever the NaNs are, last
// is what was recorded last (NaN included), and JSON says null for it.
func TestSummarizeWithNaN(t *testing.T) {
	var ms []store.Metric
	for i, v := range []float64{nan, 0.9, 0.4, inf, 0.6, nan} {
		ms = append(ms, store.Metric{Task: "train", Name: "loss", Step: i + 1, Epoch: 1, Value: v})
	}
	for i, v := range []float64{0.2, inf, 0.5} {
		ms = append(ms, store.Metric{Task: "train", Name: "acc", Step: i + 1, Epoch: 1, Value: v})
	}
	ms = append(ms, store.Metric{Task: "train", Name: "val_loss", Step: 1, Value: nan})
	sum := Summarize(ms)
	if len(sum) != 3 {
		t.Fatalf("%d summaries", len(sum))
	}
	if l := sum[0]; l.Best != 0.4 || !math.IsNaN(float64(l.Last)) || l.Step != 6 || l.Count != 6 {
		t.Errorf("loss: %+v", l)
	}
	if a := sum[1]; a.Best != 0.5 || a.Last != 0.5 {
		t.Errorf("acc: %+v", a)
	}
	if v := sum[2]; !math.IsNaN(float64(v.Best)) {
		t.Errorf("val_loss with no finite value: best %v", v.Best)
	}
	b, err := json.Marshal(sum[0])
	if err != nil || string(b) != `{"task":"train","name":"loss","count":6,"last":null,"best":0.4,"last_step":6,"last_epoch":1}` {
		t.Errorf("JSON %s, %v", b, err)
	}
}

func TestFormat(t *testing.T) {
	for v, want := range map[float64]string{nan: "NaN", inf: "Inf", -inf: "-Inf", 0.123456789: "0.1235", 3: "3"} {
		if got := Format(v, 4); got != want {
			t.Errorf("Format(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestRetriesDescribed(t *testing.T) {
	rs := Retries([]store.Retry{
		{At: "t1", Tasks: "train evaluate", Changes: `{"learning_rate":[1e30,0.001],"note":[null,"x y"]}`},
		{At: "t2", Tasks: "train", Changes: `not json`},
	})
	if len(rs) != 2 || rs[0].Describe() != `learning_rate 1e30 → 0.001; note - → x y` || len(rs[0].Tasks) != 2 {
		t.Fatalf("%+v: %q", rs, rs[0].Describe())
	}
	if rs[1].Describe() != "" || string(rs[1].Changes) != "{}" {
		t.Fatalf("bad changes: %+v", rs[1])
	}
}
