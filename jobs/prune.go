package jobs

import (
	"errors"
	"math"

	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/sweep"
	"github.com/dl4img/dl4img/tasks"
)

var _ tasks.Pruner = (*env)(nil)

// Prune implements tasks.Pruner. A task of a sweep point whose sweep has a
// pruning rule reports the sweep's metric at each epoch's end to the store,
// which records it with the rule's decision in one transaction (a resumed
// point gets the decision it was given). Other tasks are never pruned, nor
// are epochs that did not compute the metric or computed no number.
func (e *env) Prune(epoch int, metrics map[string]float64) (bool, string, error) {
	e.sweepOnce.Do(func() {
		s, err := e.w.DB.SweepOfJob(e.ctx, e.task.JobID)
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		if err == nil {
			e.rule, err = sweep.ParseRule(s.Prune)
		}
		e.sweep, e.sweepErr = s, err
	})
	if e.sweepErr != nil || e.rule == nil {
		return false, "", e.sweepErr
	}
	s, rule := e.sweep, e.rule
	v, ok := metrics[s.Metric]
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
		return false, "", nil
	}
	return e.w.DB.ReportEpoch(e.ctx, e.task.ID, epoch, v, func(own, others []store.EpochReport) (bool, string) {
		return rule.Decide(s.Metric, s.Lower, reports(own), reports(others))
	})
}

func reports(rs []store.EpochReport) []sweep.Report {
	out := make([]sweep.Report, len(rs))
	for i, r := range rs {
		out[i] = sweep.Report{Point: r.Job, Epoch: r.Epoch, Value: r.Value, Done: r.Done}
	}
	return out
}
