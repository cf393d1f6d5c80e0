//go:build !nodnnl

package engine

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
)

// outputPool keeps, by shape, the buffers that executions allocated for
// kernel outputs and then released, for the next execution. The Go
// backend recycles the buffers of its own ops, but not those it hands out
// through NewSharedBuffer: allocating every kernel output afresh cost
// about 0.1 s of a training step in zeroing alone, on the thread that
// runs the step (captcha-cnn and crnn, profiled). A sync.Pool per shape
// lets the garbage collector take back what no execution reuses.
type outputPool struct {
	pools sync.Map // shape.String() -> *sync.Pool of compute.Buffer
	// poison fills every reused buffer with NaN. The engine's tests set it,
	// so that a kernel leaving part of its output unwritten fails them
	// instead of passing with an earlier execution's values.
	poison bool
	reused atomic.Int64 // buffers handed out again (for tests)
}

func (p *outputPool) pool(shape shapes.Shape) *sync.Pool {
	key := shape.String()
	if v, ok := p.pools.Load(key); ok {
		return v.(*sync.Pool)
	}
	v, _ := p.pools.LoadOrStore(key, &sync.Pool{})
	return v.(*sync.Pool)
}

// get returns a released buffer of shape and its data, or nil.
func (p *outputPool) get(shape shapes.Shape) (compute.Buffer, []float32) {
	buf, _ := p.pool(shape).Get().(compute.Buffer)
	if buf == nil {
		return nil, nil
	}
	flat, err := buf.Data()
	f, ok := flat.([]float32)
	if err != nil || !ok {
		_ = buf.Finalize()
		return nil, nil
	}
	p.reused.Add(1)
	if p.poison {
		nan := float32(math.NaN())
		for i := range f {
			f[i] = nan
		}
	}
	return buf, f
}

func (p *outputPool) put(shape shapes.Shape, buf compute.Buffer) { p.pool(shape).Put(buf) }
