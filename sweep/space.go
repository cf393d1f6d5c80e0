// Package sweep makes the points of a hyperparameter sweep (a grid's
// cross product, random draws from a search space) and holds the rules
// that prune weak points early (asynchronous successive halving, Optuna's
// median rule). It knows nothing of the store or the queue: the CLI turns
// points into jobs, the worker feeds the rules what the store recorded.
package sweep

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Distributions of a swept parameter.
const (
	Grid       = "grid"       // every one of Values (--grid)
	Uniform    = "uniform"    // a float drawn uniformly from [Lo, Hi]
	LogUniform = "loguniform" // a float whose log is uniform over [log Lo, log Hi]
	Int        = "int"        // an integer drawn uniformly from Lo..Hi, both included
	Choice     = "choice"     // one of Values
)

// Param is one swept parameter.
type Param struct {
	Name   string   `json:"name"`
	Dist   string   `json:"dist"`
	Values []string `json:"values,omitempty"` // Grid, Choice
	Lo     float64  `json:"lo,omitempty"`     // Uniform, LogUniform, Int
	Hi     float64  `json:"hi,omitempty"`
}

// ParseGrid reads a --grid value, "key=v1,v2,...".
func ParseGrid(s string) (Param, error) {
	name, vals, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return Param{}, fmt.Errorf("--grid %q: want key=v1,v2,...", s)
	}
	values, err := list(vals)
	if err != nil {
		return Param{}, fmt.Errorf("--grid %s: %w", s, err)
	}
	return Param{Name: name, Dist: Grid, Values: values}, nil
}

// list splits "a,b,c" into trimmed values; an empty list or value is an error.
func list(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no values")
	}
	var out []string
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			return nil, errors.New("an empty value")
		}
		out = append(out, v)
	}
	return out, nil
}

// ParseSpace reads a --space value: key=uniform(a,b), loguniform(a,b),
// int(a,b) or choice(x,y,...).
func ParseSpace(s string) (Param, error) {
	name, def, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	def = strings.TrimSpace(def)
	open := strings.IndexByte(def, '(')
	if !ok || name == "" || open < 0 || !strings.HasSuffix(def, ")") {
		return Param{}, fmt.Errorf("--space %q: want key=uniform(a,b), loguniform(a,b), int(a,b) or choice(x,y,...)", s)
	}
	p := Param{Name: name, Dist: strings.TrimSpace(def[:open])}
	args, err := list(def[open+1 : len(def)-1])
	if err != nil {
		return Param{}, fmt.Errorf("--space %s: %w", s, err)
	}
	if p.Dist == Choice {
		p.Values = args
		return p, nil
	}
	switch p.Dist {
	case Uniform, LogUniform, Int:
	default:
		return Param{}, fmt.Errorf("--space %s: unknown distribution %q (want uniform, loguniform, int or choice)", s, p.Dist)
	}
	if len(args) != 2 {
		return Param{}, fmt.Errorf("--space %s: %s takes two bounds, got %d", s, p.Dist, len(args))
	}
	var b [2]float64
	for i, a := range args {
		if p.Dist == Int {
			n, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				return Param{}, fmt.Errorf("--space %s: bound %q is not an integer", s, a)
			}
			b[i] = float64(n)
			continue
		}
		v, err := strconv.ParseFloat(a, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return Param{}, fmt.Errorf("--space %s: bound %q is not a finite number", s, a)
		}
		b[i] = v
	}
	p.Lo, p.Hi = b[0], b[1]
	switch {
	case p.Dist == Int && p.Lo > p.Hi:
		return Param{}, fmt.Errorf("--space %s: want a <= b", s)
	case p.Dist != Int && p.Lo >= p.Hi:
		return Param{}, fmt.Errorf("--space %s: want a < b", s)
	case p.Dist == LogUniform && p.Lo <= 0:
		return Param{}, fmt.Errorf("--space %s: loguniform bounds must be > 0", s)
	}
	return p, nil
}

// Value is one parameter's value at a point, as --set writes it.
type Value struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Point is a set of swept values, in the order of the sweep's parameters.
type Point []Value

// Sets returns the point as --set arguments ("key=value").
func (p Point) Sets() []string {
	out := make([]string, len(p))
	for i, v := range p {
		out[i] = v.Name + "=" + v.Value
	}
	return out
}

// String is "key=value key=value", for messages.
func (p Point) String() string { return strings.Join(p.Sets(), " ") }

// MaxPoints bounds a sweep: past it a typo in a grid (a value list pasted
// twice) would queue more jobs than anyone meant to run.
const MaxPoints = 1000

// Points makes a sweep's points: the cross product of the grid parameters
// (the first varying slowest), each combined with n draws from the space
// parameters (n is ignored without them). The same seed draws the same
// points.
func Points(grid, space []Param, n int, seed uint64) ([]Point, error) {
	if err := checkNames(grid, space); err != nil {
		return nil, err
	}
	if len(space) > 0 && n < 1 {
		return nil, errors.New("--space needs --random N (N >= 1)")
	}
	if len(space) == 0 && n > 0 {
		return nil, errors.New("--random N needs at least one --space key=dist(...)")
	}
	if len(space) == 0 {
		n = 1
	}
	if len(grid) == 0 && len(space) == 0 {
		return nil, errors.New("nothing to sweep: give --grid key=v1,v2,... or --random N with --space key=dist(...)")
	}
	total := n
	for _, g := range grid {
		total *= len(g.Values)
		if total > MaxPoints {
			break
		}
	}
	if total > MaxPoints {
		return nil, fmt.Errorf("the sweep has more than %d points", MaxPoints)
	}
	// Draws first, so that a point's random values do not depend on the
	// grid (the same seed draws the same values whatever is crossed in).
	rng := rand.New(rand.NewPCG(seed, 0x5eed5eed))
	draws := make([]Point, n)
	for i := range draws {
		for _, p := range space {
			draws[i] = append(draws[i], Value{p.Name, p.draw(rng)})
		}
	}
	points := []Point{nil}
	for _, g := range grid {
		var next []Point
		for _, pt := range points {
			for _, v := range g.Values {
				next = append(next, append(append(Point(nil), pt...), Value{g.Name, v}))
			}
		}
		points = next
	}
	var out []Point
	for _, pt := range points {
		for _, d := range draws {
			out = append(out, append(append(Point(nil), pt...), d...))
		}
	}
	return out, nil
}

func checkNames(grid, space []Param) error {
	seen := map[string]bool{}
	for _, p := range append(append([]Param(nil), grid...), space...) {
		if seen[p.Name] {
			return fmt.Errorf("parameter %s is swept twice", p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// draw returns one value of a space parameter. Floats keep 4 significant
// digits: they read well in tables and pass through --set unchanged.
func (p Param) draw(rng *rand.Rand) string {
	switch p.Dist {
	case Choice:
		return p.Values[rng.IntN(len(p.Values))]
	case Int:
		return strconv.FormatInt(int64(p.Lo)+rng.Int64N(int64(p.Hi-p.Lo)+1), 10)
	case LogUniform:
		return round(math.Exp(math.Log(p.Lo)+rng.Float64()*(math.Log(p.Hi)-math.Log(p.Lo))), p.Lo, p.Hi)
	}
	return round(p.Lo+rng.Float64()*(p.Hi-p.Lo), p.Lo, p.Hi)
}

// round formats v with 4 significant digits, kept inside [lo, hi].
func round(v, lo, hi float64) string {
	s := strconv.FormatFloat(v, 'g', 4, 64)
	r, _ := strconv.ParseFloat(s, 64)
	switch {
	case r < lo:
		return strconv.FormatFloat(lo, 'g', -1, 64)
	case r > hi:
		return strconv.FormatFloat(hi, 'g', -1, 64)
	}
	return s
}

// Spec is how a sweep's points were made, stored with the sweep as JSON.
type Spec struct {
	Grid   []Param  `json:"grid,omitempty"`
	Space  []Param  `json:"space,omitempty"`
	Random int      `json:"random,omitempty"` // draws from Space per grid combination
	Seed   uint64   `json:"seed"`
	Set    []string `json:"set,omitempty"`    // the fixed parameters (--set)
	Config string   `json:"config,omitempty"` // the --config file, as given
}

// Params lists the swept parameters: the grid's, then the space's.
func (s Spec) Params() []Param { return append(append([]Param(nil), s.Grid...), s.Space...) }
