//go:build !nodnnl

package engine

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
)

// freeOutputs keeps, by shape, the buffers an executable's executions
// allocated for kernel outputs and then released, for its next
// executions: a training step runs the same plan every time, so after the
// first one its kernels allocate nothing. The Go backend recycles the
// buffers of its own ops but not those it hands out through
// NewSharedBuffer: allocating every kernel output afresh cost about 0.1 s
// of a training step in zeroing alone (captcha-cnn and crnn, profiled).
// The list is the executable's, not a sync.Pool's, which every garbage
// collection empties: fcn allocated ~0.3 GB a step through it, and the
// collections that this garbage caused emptied it again. What it holds
// is at most one execution's kernel outputs, and goes with the executable
// (Finalize).
type freeOutputs struct {
	mu    sync.Mutex
	free  map[string][]compute.Buffer // shape.String() -> released buffers
	reuse *reuseCounters
}

// reuseCounters are the backend's knobs and counters for its tests.
type reuseCounters struct {
	// poison fills every reused buffer with NaN, so that a kernel leaving
	// part of its output unwritten fails the engine's tests instead of
	// passing with an earlier execution's values.
	poison bool
	reused atomic.Int64 // buffers handed out again
}

// get returns a released buffer of shape and its data, or nil.
func (l *freeOutputs) get(shape shapes.Shape) (compute.Buffer, []float32) {
	key := shape.String()
	l.mu.Lock()
	bufs := l.free[key]
	if len(bufs) == 0 {
		l.mu.Unlock()
		return nil, nil
	}
	buf := bufs[len(bufs)-1]
	l.free[key] = bufs[:len(bufs)-1]
	l.mu.Unlock()
	flat, err := buf.Data()
	f, ok := flat.([]float32)
	if err != nil || !ok {
		_ = buf.Finalize()
		return nil, nil
	}
	l.reuse.reused.Add(1)
	if l.reuse.poison {
		nan := float32(math.NaN())
		for i := range f {
			f[i] = nan
		}
	}
	return buf, f
}

func (l *freeOutputs) put(shape shapes.Shape, buf compute.Buffer) {
	key := shape.String()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.free == nil {
		l.free = map[string][]compute.Buffer{}
	}
	l.free[key] = append(l.free[key], buf)
}

// finalize releases every buffer held.
func (l *freeOutputs) finalize() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, bufs := range l.free {
		for _, b := range bufs {
			_ = b.Finalize()
		}
	}
	l.free = nil
}
