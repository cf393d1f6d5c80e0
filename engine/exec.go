//go:build !nodnnl

package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dl4img/dl4img/engine/dnnl"
	"github.com/dl4img/dl4img/engine/lower"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

// Compile plans the recorded function into steps (plan.go), or compiles
// its shadow whole when it cannot be replayed or has nothing for oneDNN.
func (b *builder) Compile() (compute.Executable, error) {
	if b.fallback == "" {
		p, err := b.compilePlan()
		if err != nil {
			// A bug of the engine, not of the model: keep today's path.
			b.fallback = err.Error()
		} else if p != nil {
			return b.newExecutable(p)
		}
	}
	if b.fallback != "" {
		b.backend.stats.note(func(s *Stats) map[string]int { return s.Fallbacks }, "compiled whole: "+b.fallback)
	}
	e, err := b.shadow.Compile()
	if err != nil {
		return nil, err
	}
	return lower.OwnedExecutable(b.backend, e), nil
}

// executable runs a plan.
type executable struct {
	backend   *backend
	plan      *plan
	names     []string
	inShapes  []shapes.Shape
	outShapes []shapes.Shape
	consts    map[int]compute.Buffer
	free      freeOutputs
}

func (b *builder) newExecutable(p *plan) (*executable, error) {
	e := &executable{backend: b.backend, plan: p, consts: map[int]compute.Buffer{}}
	e.free.reuse = &b.backend.reuse
	for _, v := range b.main.params {
		e.names = append(e.names, v.node.args[0].(string))
		e.inShapes = append(e.inShapes, v.shape)
	}
	for _, v := range b.main.outputs {
		e.outShapes = append(e.outShapes, v.shape)
	}
	for s, shape := range p.constants {
		buf, err := b.backend.Backend.BufferFromFlatData(0, p.constData[s], shape)
		if err != nil {
			return nil, fmt.Errorf("engine: constant: %w", err)
		}
		e.consts[s] = buf
	}
	b.backend.stats.update(func(s *Stats) {
		s.Regions += len(p.raw)
		for _, st := range p.steps {
			switch st := st.(type) {
			case *goStep:
				s.Segments++
			case *kernelStep:
				s.Offloaded[st.k.name()]++
			}
		}
	})
	return e, nil
}

func (e *executable) Finalize() {
	for _, st := range e.plan.steps {
		if g, ok := st.(*goStep); ok {
			g.exec.Finalize()
		}
	}
	for _, b := range e.consts {
		_ = b.Finalize()
	}
	e.free.finalize()
}

func (e *executable) Inputs() ([]string, []shapes.Shape) { return e.names, e.inShapes }
func (e *executable) Outputs() []shapes.Shape            { return e.outShapes }

// slot holds one value between steps: a buffer of the Go backend, whether
// this execution may free or donate it, or a kernel's workspace.
type slot struct {
	buf   compute.Buffer
	owned bool
	ws    []byte
	last  bool // while a kernel runs: it may take this input's buffer (owned, read by nothing later)
	// raw is buf's data where the value is kept in a primitive's own
	// layout between kernels (plan.raw: rawLen elements).
	raw    []float32
	rawLen int
}

// execution is the state of one Execute.
type execution struct {
	e     *executable
	slots []slot
	// fresh holds the kernel outputs this execution allocated (or took
	// from the executable's free list), with their shapes: released, they
	// go back to the list, not to the garbage collector.
	fresh map[compute.Buffer]shapes.Shape
	// inUse and peak are the bytes of kernel outputs this execution holds,
	// now and at most: they bound what its executable's free list keeps
	// (freeOutputs.put).
	inUse, peak int
}

// arg is the slot as a primitive's argument: the value in the
// primitive's layout where the plan keeps it so, else its buffer's data.
func (s *slot) arg() (any, error) {
	if s.raw != nil {
		return dnnl.Raw(s.raw), nil
	}
	return s.data()
}

// output allocates a kernel's output in slot s: memory in a primitive's
// layout where the plan keeps the value so (a dnnl.Raw), else a buffer of
// the Go backend of the given shape (a []float32 of its data).
func (x *execution) output(s *slot, shape shapes.Shape) (any, error) {
	if s.rawLen > 0 {
		buf, d, err := x.newBuffer(shapes.Make(dtypes.Float32, s.rawLen))
		if err != nil {
			return nil, err
		}
		s.buf, s.owned, s.raw = buf, true, d
		return dnnl.Raw(d), nil
	}
	buf, d, err := x.newBuffer(shape)
	if err != nil {
		return nil, err
	}
	s.buf, s.owned = buf, true
	return d, nil
}

// data returns the float32 contents of a slot's buffer (shared, not copied).
func (s *slot) data() ([]float32, error) {
	flat, err := s.buf.Data()
	if err != nil {
		return nil, err
	}
	f, ok := flat.([]float32)
	if !ok {
		return nil, fmt.Errorf("engine: a kernel got %T data", flat)
	}
	return f, nil
}

// newBuffer allocates a kernel's output, reusing a released one of the
// same shape where there is one.
func (x *execution) newBuffer(shape shapes.Shape) (compute.Buffer, []float32, error) {
	if buf, f := x.e.free.get(shape); buf != nil {
		x.taken(buf, shape)
		return buf, f, nil
	}
	buf, flat, err := x.e.backend.Backend.NewSharedBuffer(0, shape)
	if err != nil {
		return nil, nil, err
	}
	f, ok := flat.([]float32)
	if !ok {
		_ = buf.Finalize()
		return nil, nil, fmt.Errorf("engine: a kernel output of %s", shape)
	}
	x.taken(buf, shape)
	return buf, f, nil
}

// taken counts a kernel output the execution now holds.
func (x *execution) taken(buf compute.Buffer, shape shapes.Shape) {
	x.fresh[buf] = shape
	x.inUse += int(shape.Memory())
	x.peak = max(x.peak, x.inUse)
}

func (e *executable) Execute(inputs []compute.Buffer, donate []bool, _ compute.DeviceNum) (outs []compute.Buffer, err error) {
	p := e.plan
	if len(inputs) != len(p.params) {
		return nil, fmt.Errorf("engine: Execute: %d inputs for %d parameters", len(inputs), len(p.params))
	}
	x := &execution{e: e, slots: make([]slot, p.nslots), fresh: map[compute.Buffer]shapes.Shape{}}
	defer func() {
		for i := range x.slots {
			x.release(i)
		}
		e.free.executed(x.peak)
	}()
	for i, in := range inputs {
		if in == nil {
			return nil, fmt.Errorf("engine: Execute: input #%d is nil", i)
		}
		s := &x.slots[p.params[i]]
		s.buf = lower.Unowned(in)
		s.owned = i < len(donate) && donate[i]
	}
	for s, buf := range e.consts {
		x.slots[s].buf = buf
	}
	for s, n := range p.raw {
		x.slots[s].rawLen = n
	}
	for si, st := range p.steps {
		start := time.Now()
		if err := x.step(si, st); err != nil {
			return nil, err
		}
		e.account(st, time.Since(start))
		for _, s := range st.inputs() {
			if p.lastUse[s] == si {
				x.release(s)
			}
		}
	}
	outs = make([]compute.Buffer, len(p.outputs))
	for i, s := range p.outputs {
		sl := &x.slots[s]
		if sl.buf == nil {
			return nil, errors.New("engine: an output was not computed")
		}
		// One value may be two outputs (Identity ops skipped): the last
		// takes the buffer.
		if sl.owned && !slices.Contains(p.outputs[i+1:], s) {
			outs[i] = lower.Owned(e.backend, sl.buf)
			sl.buf, sl.owned = nil, false
			continue
		}
		// A caller's input, a constant, or a value returned twice: a copy.
		flat, err := sl.buf.Data()
		if err != nil {
			return nil, err
		}
		c, err := e.backend.Backend.BufferFromFlatData(0, flat, e.outShapes[i])
		if err != nil {
			return nil, err
		}
		outs[i] = lower.Owned(e.backend, c)
	}
	return outs, nil
}

// account adds d to the time spent in steps like st.
func (e *executable) account(st step, d time.Duration) {
	kind := "Go segments"
	if k, ok := st.(*kernelStep); ok {
		kind = k.k.name()
	}
	e.backend.stats.update(func(s *Stats) { s.Time[kind] += d })
}

// release frees slot s if this execution owns it.
func (x *execution) release(s int) {
	sl := &x.slots[s]
	if sl.owned && sl.buf != nil {
		if shape, ok := x.fresh[sl.buf]; ok {
			delete(x.fresh, sl.buf)
			x.inUse -= int(shape.Memory())
			x.e.free.put(shape, sl.buf, x.peak)
		} else {
			_ = sl.buf.Finalize()
		}
	}
	*sl = slot{}
}

func (x *execution) step(si int, st step) error {
	p := x.e.plan
	switch st := st.(type) {
	case *goStep:
		ins := make([]compute.Buffer, len(st.in))
		donate := make([]bool, len(st.in))
		for i, s := range st.in {
			sl := &x.slots[s]
			ins[i] = sl.buf
			// The segment may reuse a buffer this execution owns and
			// nothing reads later: the backend then recycles it. Not a
			// kernel's output: the backend would drop it (it recycles no
			// shared buffer), where the free list keeps it.
			_, kernelOut := x.fresh[sl.buf]
			donate[i] = sl.owned && p.lastUse[s] == si && !kernelOut
		}
		outs, err := st.exec.Execute(ins, donate, 0)
		if err != nil {
			return err
		}
		for i, s := range st.in {
			if donate[i] {
				x.slots[s] = slot{}
			}
		}
		for i, s := range st.out {
			x.slots[s] = slot{buf: outs[i], owned: true}
		}
		return nil
	case *kernelStep:
		ins := make([]*slot, len(st.in))
		for i, s := range st.in {
			ins[i] = &x.slots[s]
			ins[i].last = ins[i].owned && p.lastUse[s] == si
		}
		defer func() {
			for _, in := range ins {
				in.last = false
			}
		}()
		outs := make([]*slot, len(st.out))
		for i, s := range st.out {
			outs[i] = &x.slots[s]
		}
		if err := st.k.run(x, ins, outs); err != nil {
			return fmt.Errorf("engine: %s: %w", st.k.name(), err)
		}
		return nil
	}
	return fmt.Errorf("engine: unknown step %T", st)
}
