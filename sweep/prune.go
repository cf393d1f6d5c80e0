package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Pruning rules.
const (
	// ASHA is asynchronous successive halving (Li et al. 2018, Ray Tune's
	// ASHAScheduler): at rung epochs MinEpochs·Factor^k, a point goes on
	// only if its value is in the top 1/Factor of the values the other
	// points reported at that rung so far.
	ASHA = "asha"
	// Median is Optuna's MedianPruner: from epoch MinEpochs on, once
	// Startup points have finished, a point stops when its best value so
	// far is worse than the median of the finished points' values at the
	// same epoch.
	Median = "median"
)

// Rule is a sweep's pruning rule, stored with the sweep as JSON.
type Rule struct {
	Name      string `json:"rule"`
	MinEpochs int    `json:"min_epochs"`
	Factor    int    `json:"factor,omitempty"`  // ASHA's reduction factor η
	Startup   int    `json:"startup,omitempty"` // Median: finished points needed first
}

// Validate checks a rule's settings.
func (r Rule) Validate() error {
	switch {
	case r.Name != ASHA && r.Name != Median:
		return fmt.Errorf("--prune %q: want asha or median", r.Name)
	case r.MinEpochs < 1:
		return errors.New("--prune-min-epochs: must be >= 1")
	case r.Name == ASHA && r.Factor < 2:
		return errors.New("--prune-factor: must be >= 2")
	case r.Name == Median && r.Startup < 1:
		return errors.New("--prune-startup: must be >= 1")
	}
	return nil
}

// ParseRule reads a rule stored as JSON ("" is no rule: nil).
func ParseRule(s string) (*Rule, error) {
	if s == "" {
		return nil, nil
	}
	var r Rule
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("pruning rule %s: %w", s, err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("pruning rule %s: %w", s, err)
	}
	return &r, nil
}

// Report is one point's value of the sweep's metric at an epoch's end.
type Report struct {
	Point int64 // the point's job
	Epoch int
	Value float64
	Done  bool // the point finished training (not pruned, not failed)
}

// Decide says whether a point stops now. own holds its reports so far, the
// current one last; others the other points' reports. metric and lower
// name the value and its direction, for the reason given.
func (r Rule) Decide(metric string, lower bool, own, others []Report) (prune bool, reason string) {
	if len(own) == 0 {
		return false, ""
	}
	cur := own[len(own)-1]
	switch r.Name {
	case ASHA:
		return r.asha(metric, lower, cur, others)
	case Median:
		return r.median(metric, lower, own, others)
	}
	return false, ""
}

// IsRung reports whether an epoch is one of ASHA's rungs.
func (r Rule) IsRung(epoch int) bool {
	for m := r.MinEpochs; m <= epoch; m *= r.Factor {
		if m == epoch {
			return true
		}
		if r.Factor < 2 {
			break
		}
	}
	return false
}

func (r Rule) asha(metric string, lower bool, cur Report, others []Report) (bool, string) {
	if !r.IsRung(cur.Epoch) {
		return false, ""
	}
	var rung []float64
	for _, o := range others {
		if o.Epoch == cur.Epoch {
			rung = append(rung, o.Value)
		}
	}
	if len(rung) == 0 {
		return false, ""
	}
	// numpy's nanpercentile at 1-1/η, as Ray computes the cutoff (for a
	// lower-is-better metric, on the negated values: the 1/η percentile).
	q := 100 * (1 - 1/float64(r.Factor))
	if lower {
		q = 100 / float64(r.Factor)
	}
	cut := percentile(rung, q)
	if !worse(cur.Value, cut, lower) {
		return false, ""
	}
	return true, fmt.Sprintf("asha: %s %.4g at epoch %d is outside the top 1/%d of the %d other points at this rung (cutoff %.4g)",
		metric, cur.Value, cur.Epoch, r.Factor, len(rung), cut)
}

func (r Rule) median(metric string, lower bool, own, others []Report) (bool, string) {
	cur := own[len(own)-1]
	if cur.Epoch < r.MinEpochs {
		return false, ""
	}
	done := map[int64]bool{}
	var atEpoch []float64
	for _, o := range others {
		if o.Done {
			done[o.Point] = true
			if o.Epoch == cur.Epoch {
				atEpoch = append(atEpoch, o.Value)
			}
		}
	}
	if len(done) < r.Startup || len(atEpoch) == 0 {
		return false, ""
	}
	best := math.NaN()
	for _, o := range own {
		if math.IsNaN(best) || worse(best, o.Value, lower) {
			best = o.Value
		}
	}
	med := percentile(atEpoch, 50)
	if !worse(best, med, lower) {
		return false, ""
	}
	return true, fmt.Sprintf("median: best %s %.4g by epoch %d is worse than the median %.4g of %d finished points at that epoch",
		metric, best, cur.Epoch, med, len(atEpoch))
}

// worse reports whether v is strictly worse than ref.
func worse(v, ref float64, lower bool) bool {
	if lower {
		return v > ref
	}
	return v < ref
}

// percentile is numpy's default (linear interpolation between the two
// nearest ranks), ignoring NaNs like nanpercentile.
func percentile(vs []float64, q float64) float64 {
	var s []float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	pos := q / 100 * float64(len(s)-1)
	lo := int(math.Floor(pos))
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
}
