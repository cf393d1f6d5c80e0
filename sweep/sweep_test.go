package sweep

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParseGridAndSpace(t *testing.T) {
	ok := []struct {
		grid bool
		in   string
		want Param
	}{
		{true, "learning_rate=0.1, 0.01", Param{Name: "learning_rate", Dist: Grid, Values: []string{"0.1", "0.01"}}},
		{true, "preset=demo", Param{Name: "preset", Dist: Grid, Values: []string{"demo"}}},
		{false, "lr=loguniform(1e-4,1e-1)", Param{Name: "lr", Dist: LogUniform, Lo: 1e-4, Hi: 0.1}},
		{false, "dropout=uniform(0, 0.5)", Param{Name: "dropout", Dist: Uniform, Hi: 0.5}},
		{false, "hidden=int(8,64)", Param{Name: "hidden", Dist: Int, Lo: 8, Hi: 64}},
		{false, "hidden=int(8,8)", Param{Name: "hidden", Dist: Int, Lo: 8, Hi: 8}},
		{false, "loss=choice(bce,dice)", Param{Name: "loss", Dist: Choice, Values: []string{"bce", "dice"}}},
	}
	for _, c := range ok {
		parse := ParseSpace
		if c.grid {
			parse = ParseGrid
		}
		got, err := parse(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
	bad := []struct {
		grid     bool
		in, want string
	}{
		{true, "lr=", "no values"},
		{true, "lr", "want key=v1,v2"},
		{true, "=1,2", "want key=v1,v2"},
		{true, "lr=1,,2", "an empty value"},
		{false, "lr=loguniform(0,1)", "loguniform bounds must be > 0"},
		{false, "lr=uniform(1,1)", "want a < b"},
		{false, "lr=uniform(1)", "takes two bounds"},
		{false, "lr=uniform(a,1)", `bound "a" is not a finite number`},
		{false, "lr=gauss(0,1)", `unknown distribution "gauss"`},
		{false, "lr=uniform(0,1", "want key=uniform"},
		{false, "hidden=int(8.5,9)", `bound "8.5" is not an integer`},
		{false, "hidden=int(9,8)", "want a <= b"},
		{false, "loss=choice()", "no values"},
		{false, "lr=0.1", "want key=uniform"},
	}
	for _, c := range bad {
		parse := ParseSpace
		if c.grid {
			parse = ParseGrid
		}
		if _, err := parse(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.in, err, c.want)
		}
	}
}

func TestGridIsTheCrossProduct(t *testing.T) {
	a, _ := ParseGrid("a=1,2")
	b, _ := ParseGrid("b=x,y,z")
	pts, err := Points([]Param{a, b}, nil, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pts {
		got = append(got, p.String())
	}
	want := []string{"a=1 b=x", "a=1 b=y", "a=1 b=z", "a=2 b=x", "a=2 b=y", "a=2 b=z"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("points %q, want %q", got, want)
	}
}

func TestRandomPointsDependOnlyOnTheSeed(t *testing.T) {
	lr, _ := ParseSpace("learning_rate=loguniform(1e-4,1e-1)")
	h, _ := ParseSpace("hidden=int(8,64)")
	drop, _ := ParseSpace("dropout=uniform(0,0.5)")
	c, _ := ParseSpace("loss=choice(bce,dice,bce+dice)")
	space := []Param{lr, h, drop, c}
	draw := func(seed uint64) []Point {
		pts, err := Points(nil, space, 40, seed)
		if err != nil {
			t.Fatal(err)
		}
		return pts
	}
	p1, p2, p3 := draw(7), draw(7), draw(8)
	if !reflect.DeepEqual(p1, p2) {
		t.Fatal("the same seed drew different points")
	}
	if reflect.DeepEqual(p1, p3) {
		t.Fatal("seeds 7 and 8 drew the same points")
	}
	choices := map[string]bool{}
	var logs []float64
	for _, p := range p1 {
		v, _ := strconv.ParseFloat(p[0].Value, 64)
		n, err := strconv.Atoi(p[1].Value)
		d, _ := strconv.ParseFloat(p[2].Value, 64)
		if v < 1e-4 || v > 0.1 || err != nil || n < 8 || n > 64 || d < 0 || d > 0.5 {
			t.Fatalf("point outside its space: %s", p)
		}
		if r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64); r != v {
			t.Fatalf("learning_rate %s has more than 4 significant digits", p[0].Value)
		}
		logs = append(logs, math.Log10(v))
		choices[p[3].Value] = true
	}
	// Log-uniform: about as many draws below 1e-2.5 as above.
	below := 0
	for _, l := range logs {
		if l < -2.5 {
			below++
		}
	}
	if below < 10 || below > 30 || len(choices) != 3 {
		t.Fatalf("%d of 40 log-uniform draws below the log-midpoint; choices drawn %v", below, choices)
	}
	// A grid crossed in keeps the draws: each grid value gets the same N.
	g, _ := ParseGrid("seed=1,2")
	crossed, err := Points([]Param{g}, space, 40, 7)
	if err != nil || len(crossed) != 80 {
		t.Fatalf("%d points, %v", len(crossed), err)
	}
	if !reflect.DeepEqual(crossed[41][1:], p1[1]) {
		t.Fatalf("grid value 2's second draw %s differs from %s", crossed[41], p1[1])
	}
}

func TestPointsRefusals(t *testing.T) {
	a, _ := ParseGrid("a=1,2")
	lr, _ := ParseSpace("lr=uniform(0,1)")
	big, _ := ParseGrid("b=" + strings.Repeat("1,", 600) + "1")
	for _, c := range []struct {
		grid, space []Param
		n           int
		want        string
	}{
		{nil, nil, 0, "nothing to sweep"},
		{nil, []Param{lr}, 0, "--space needs --random N"},
		{[]Param{a}, nil, 3, "--random N needs at least one --space"},
		{[]Param{a, a}, nil, 0, "parameter a is swept twice"},
		{[]Param{a, big}, nil, 0, "more than 1000 points"},
		{nil, []Param{lr}, 1001, "more than 1000 points"},
	} {
		if _, err := Points(c.grid, c.space, c.n, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func TestPercentileIsNumpys(t *testing.T) {
	// np.percentile([1, 2, 3, 4], 66.666...) = 3.0; ([0.9, 0.4], 66.67) = 0.7333...
	for _, c := range []struct {
		vs   []float64
		q    float64
		want float64
	}{
		{[]float64{4, 1, 3, 2}, 200.0 / 3, 3},
		{[]float64{0.9, 0.4}, 200.0 / 3, 0.4 + 0.5*2/3},
		{[]float64{5}, 50, 5},
		{[]float64{1, math.NaN(), 3}, 50, 2},
		{[]float64{1, 2, 3, 4}, 50, 2.5},
	} {
		if got := percentile(c.vs, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("percentile(%v, %g) = %g, want %g", c.vs, c.q, got, c.want)
		}
	}
}

func TestASHA(t *testing.T) {
	r := Rule{Name: ASHA, MinEpochs: 1, Factor: 3}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	for e, want := range map[int]bool{1: true, 2: false, 3: true, 6: false, 9: true, 27: true} {
		if r.IsRung(e) != want {
			t.Errorf("IsRung(%d) = %v", e, !want)
		}
	}
	rep := func(job int64, epoch int, v float64) Report { return Report{Point: job, Epoch: epoch, Value: v} }
	cases := []struct {
		name   string
		lower  bool
		cur    Report
		others []Report
		prune  bool
	}{
		{"first at the rung goes on", false, rep(1, 1, 0.1), nil, false},
		{"not a rung", false, rep(2, 2, 0.1), []Report{rep(1, 2, 0.9)}, false},
		{"below the only other", false, rep(2, 1, 0.4), []Report{rep(1, 1, 0.9)}, true},
		{"equal to the cutoff goes on", false, rep(2, 1, 0.9), []Report{rep(1, 1, 0.9)}, false},
		// cutoff = 66.7th percentile of {0.9, 0.4} = 0.733
		{"in the top third", false, rep(3, 1, 0.8), []Report{rep(1, 1, 0.9), rep(2, 1, 0.4)}, false},
		{"outside the top third", false, rep(3, 1, 0.7), []Report{rep(1, 1, 0.9), rep(2, 1, 0.4)}, true},
		{"other rungs do not count", false, rep(3, 3, 0.5), []Report{rep(1, 1, 0.9), rep(2, 3, 0.4)}, false},
		// lower is better: cutoff = 33.3rd percentile of {0.2, 1.0} = 0.467
		{"loss in the top third", true, rep(3, 1, 0.4), []Report{rep(1, 1, 0.2), rep(2, 1, 1.0)}, false},
		{"loss outside the top third", true, rep(3, 1, 0.5), []Report{rep(1, 1, 0.2), rep(2, 1, 1.0)}, true},
	}
	for _, c := range cases {
		prune, why := r.Decide("val_acc", c.lower, []Report{c.cur}, c.others)
		if prune != c.prune || prune != (why != "") {
			t.Errorf("%s: prune %v (%q), want %v", c.name, prune, why, c.prune)
		}
	}
}

func TestMedian(t *testing.T) {
	r := Rule{Name: Median, MinEpochs: 2, Startup: 2}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	done := func(job int64, vs ...float64) []Report {
		var out []Report
		for i, v := range vs {
			out = append(out, Report{Point: job, Epoch: i + 1, Value: v, Done: true})
		}
		return out
	}
	finished := append(done(1, 0.5, 0.7, 0.8), done(2, 0.3, 0.5, 0.6)...)
	own := func(vs ...float64) []Report {
		var out []Report
		for i, v := range vs {
			out = append(out, Report{Point: 9, Epoch: i + 1, Value: v})
		}
		return out
	}
	cases := []struct {
		name   string
		own    []Report
		others []Report
		prune  bool
	}{
		{"warm-up epoch", own(0.1), finished, false},
		{"below the median at epoch 2 (0.6)", own(0.1, 0.55), finished, true},
		{"its best so far counts", own(0.65, 0.55), finished, false},
		{"too few finished points", own(0.1, 0.1), done(1, 0.5, 0.7, 0.8), false},
		{"running points do not count", own(0.1, 0.1), []Report{{Point: 1, Epoch: 2, Value: 0.9}, {Point: 2, Epoch: 2, Value: 0.9}}, false},
	}
	for _, c := range cases {
		prune, why := r.Decide("val_acc", false, c.own, c.others)
		if prune != c.prune || prune != (why != "") {
			t.Errorf("%s: prune %v (%q), want %v", c.name, prune, why, c.prune)
		}
	}
}

func TestRuleValidation(t *testing.T) {
	for _, c := range []struct {
		r    Rule
		want string
	}{
		{Rule{Name: "hyperband", MinEpochs: 1, Factor: 3}, "want asha or median"},
		{Rule{Name: ASHA, MinEpochs: 0, Factor: 3}, "--prune-min-epochs"},
		{Rule{Name: ASHA, MinEpochs: 1, Factor: 1}, "--prune-factor"},
		{Rule{Name: Median, MinEpochs: 1}, "--prune-startup"},
	} {
		if err := c.r.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.r, err, c.want)
		}
	}
	if r, err := ParseRule(""); r != nil || err != nil {
		t.Fatalf("no rule: %v %v", r, err)
	}
	if r, err := ParseRule(`{"rule":"asha","min_epochs":2,"factor":4}`); err != nil || r.Factor != 4 || r.MinEpochs != 2 {
		t.Fatalf("parse: %+v %v", r, err)
	}
}
