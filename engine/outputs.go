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
	mu       sync.Mutex
	free     map[string]*sameShape // by shape.String()
	held     int                   // bytes in free
	lastPeak int                   // the bytes of kernel outputs the last execution held at once
	reuse    *reuseCounters
}

// sameShape are released buffers of one shape, of bytes each.
type sameShape struct {
	bytes int
	bufs  []compute.Buffer
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
	l.mu.Lock()
	same := l.free[shape.String()]
	if same == nil || len(same.bufs) == 0 {
		l.mu.Unlock()
		return nil, nil
	}
	buf := same.bufs[len(same.bufs)-1]
	same.bufs = same.bufs[:len(same.bufs)-1]
	l.held -= same.bytes
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

// put keeps buf for a later execution, or drops it when the list would
// hold more than twice the bytes of kernel outputs that an execution held
// at once (peak: this one's so far; or the last one's). The list holds
// more than that peak, since a buffer serves only its own shape: a
// training step holds its activations until its backward pass, and the
// book's three nets keep all they made (lists of 439, 451 and 749 MiB
// against peaks of 235, 305 and 456 MiB); a forward pass releases each
// activation soon after, and keeping a buffer of every shape it made
// (InceptionV3 at batch 16: 455 MiB against a peak of 126; 0.47 GiB more
// peak RSS) costs more memory than reallocating some costs time.
func (l *freeOutputs) put(shape shapes.Shape, buf compute.Buffer, peak int) {
	key := shape.String()
	bytes := int(shape.Memory())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held+bytes > 2*max(peak, l.lastPeak) {
		_ = buf.Finalize()
		return
	}
	if l.free == nil {
		l.free = map[string]*sameShape{}
	}
	if l.free[key] == nil {
		l.free[key] = &sameShape{bytes: bytes}
	}
	l.free[key].bufs = append(l.free[key].bufs, buf)
	l.held += bytes
}

// executed records the peak of an execution that has ended.
func (l *freeOutputs) executed(peak int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastPeak = peak
}

// finalize releases every buffer held.
func (l *freeOutputs) finalize() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, same := range l.free {
		for _, b := range same.bufs {
			_ = b.Finalize()
		}
	}
	l.free, l.held = nil, 0
}
