package tasks

import "errors"

// ErrPruned ends a training task that a sweep's pruning rule stopped
// early. The worker records the task as pruned: not failed, not retried;
// its metrics and best weights stay.
var ErrPruned = errors.New("pruned")

// Pruner is what the Loop asks at the end of every epoch but the last:
// should this run stop now? The worker's Env implements it, answering from
// the store for the points of a sweep with a pruning rule, and no for
// every other task. An Env without it is never pruned.
type Pruner interface {
	// Prune gets the epoch's metrics; a true answer comes with the reason.
	Prune(epoch int, metrics map[string]float64) (stop bool, reason string, err error)
}
