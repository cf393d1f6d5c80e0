//go:build !nodnnl

package engine

import (
	"fmt"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"

	"github.com/dl4img/dl4img/engine/dnnl"
	"github.com/dl4img/dl4img/engine/lower"
)

// How a recorded function is cut into steps.
//
// Each live node gets a phase. A node the engine runs on oneDNN (a kernel)
// comes after the Go nodes it reads: its phase is one more than theirs, and
// at least that of the kernels it reads. A Go node runs in the phase of its
// latest input. The steps are then, for each phase k in order: the kernels
// of phase k (in recording order, which is topological), then one Go
// segment holding every Go node of phase k, compiled as one function of the
// backend. Values that cross from one step to another live in slots.
// Constants are not placed: each Go segment that reads one builds its own
// copy, and a kernel reads one from a slot filled once at Compile.

type plan struct {
	steps     []step
	nslots    int
	params    []int                // slot of each parameter
	outputs   []int                // slot of each output
	constants map[int]shapes.Shape // slots filled once, from a Constant node
	constData map[int]any
	lastUse   []int       // per slot: the last step that reads it (len(steps) for outputs)
	raw       map[int]int // slots kept in a primitive's layout, and their size in elements (regions)
}

// step is one unit of execution: a Go segment or a kernel.
type step interface {
	inputs() []int
	outputs() []int
}

type goStep struct {
	exec    compute.Executable
	in, out []int
}

func (s *goStep) inputs() []int  { return s.in }
func (s *goStep) outputs() []int { return s.out }

// kernelStep runs one kernel: its inputs and outputs are slots.
type kernelStep struct {
	k       kernel
	in, out []int
	shapes  []shapes.Shape
}

func (s *kernelStep) inputs() []int  { return s.in }
func (s *kernelStep) outputs() []int { return s.out }

// kernel is an op the engine runs on oneDNN.
type kernel interface {
	// name is the op's kind, for the counters ("conv forward", ...).
	name() string
	// run computes outs (fresh buffers of the op's output shapes, then
	// any extra outputs) from ins (the node's inputs, then any extra ones).
	run(x *execution, ins []*slot, outs []*slot) error
	// layout maps each input and output to the primitive's argument
	// it is, where the value may stay in the primitive's own layout (-1
	// where not).
	layout() (op *dnnl.Op, in, out []int)
}

// elementwiseKernel is a kernel that computes each output element from the
// same element of each input: it runs in any layout its values share.
type elementwiseKernel interface {
	kernel
	// sized returns the kernel over n elements (a region's layout, padded).
	sized(n int) (kernel, error)
}

// placed is a node the engine runs as a kernel, with the values it passes
// to or takes from other kernels beside the node's own (a max pool's
// workspace, read by its gradient).
type placed struct {
	k                 kernel
	in                []*value // the values the kernel reads, if not the node's inputs
	extraIn, extraOut []*value
}

// inputs are the values the kernel reads.
func (pk *placed) inputs(n *node) []*value {
	in := n.inputs
	if pk.in != nil {
		in = pk.in
	}
	return append(slices.Clip(in), pk.extraIn...)
}

// compilePlan plans f, or returns a nil plan when nothing in it runs on
// oneDNN (it then compiles whole).
func (b *builder) compilePlan() (*plan, error) {
	f := b.main
	f.skipIdentities()
	kernels := b.backend.placeKernels(f, liveNodes(f, nil, nil))
	if len(kernels) == 0 {
		return nil, nil
	}
	source := sourceOf(kernels)
	// A kernel may read other values than its node (the kernel under a
	// Reverse): what only its node read is dead now.
	live := liveNodes(f, kernels, source)

	// Phases, each node's after its inputs' (through the nodes that make
	// them, which recording order does not always put first: autodiff
	// records a bias gradient before the convolution it is folded into).
	phase := make([]int, len(f.nodes))
	done := make([]bool, len(f.nodes))
	var order []*node
	var phaseOf func(n *node) int
	phaseOf = func(n *node) int {
		if done[n.index] || n.op == "Parameter" || n.op == "Constant" {
			return phase[n.index]
		}
		p := 0
		pk, isKernel := kernels[n]
		ins := n.inputs
		if isKernel {
			ins = pk.inputs(n)
			p = 1
		}
		for _, in := range ins {
			src := source(in)
			if src.op == "Parameter" || src.op == "Constant" {
				continue
			}
			q := phaseOf(src)
			if _, k := kernels[src]; isKernel && !k {
				q++ // a kernel follows the Go segment of its input
			}
			p = max(p, q)
		}
		phase[n.index], done[n.index] = p, true
		order = append(order, n) // after its inputs: a topological order
		return p
	}
	maxPhase := 0
	for _, n := range f.nodes {
		if live[n.index] {
			maxPhase = max(maxPhase, phaseOf(n))
		}
	}

	p := &plan{constants: map[int]shapes.Shape{}, constData: map[int]any{}}
	slotOf := map[*value]int{}
	newSlot := func(v *value) int {
		if s, ok := slotOf[v]; ok {
			return s
		}
		slotOf[v] = p.nslots
		p.nslots++
		return p.nslots - 1
	}
	for _, v := range f.params {
		p.params = append(p.params, newSlot(v))
	}

	// Which step each value's consumers are in decides what crosses steps.
	type seg struct{ nodes []*node }
	segs := make([]seg, maxPhase+1)
	var kernelOrder [][]*node = make([][]*node, maxPhase+1)
	for _, n := range order {
		if _, ok := kernels[n]; ok {
			kernelOrder[phase[n.index]] = append(kernelOrder[phase[n.index]], n)
		} else {
			segs[phase[n.index]].nodes = append(segs[phase[n.index]].nodes, n)
		}
	}
	stepOf := map[*node]int{}
	type pending struct {
		step  int
		nodes []*node
	}
	var goSegs []pending
	for k := 0; k <= maxPhase; k++ {
		for _, n := range kernelOrder[k] {
			stepOf[n] = len(p.steps)
			p.steps = append(p.steps, &kernelStep{})
		}
		if len(segs[k].nodes) > 0 {
			for _, n := range segs[k].nodes {
				stepOf[n] = len(p.steps)
			}
			goSegs = append(goSegs, pending{len(p.steps), segs[k].nodes})
			p.steps = append(p.steps, &goStep{})
		}
	}
	outputOf := map[*value]bool{}
	for _, v := range f.outputs {
		outputOf[v] = true
	}
	// crosses reports whether v, made in step s, is read by another step.
	readers := map[*value][]int{}
	for _, n := range f.nodes {
		if !live[n.index] || n.op == "Parameter" || n.op == "Constant" {
			continue
		}
		ins := n.inputs
		if pk, ok := kernels[n]; ok {
			ins = pk.inputs(n)
		}
		for _, in := range ins {
			readers[in] = append(readers[in], stepOf[n])
		}
	}
	crosses := func(v *value, s int) bool {
		if outputOf[v] {
			return true
		}
		for _, r := range readers[v] {
			if r != s {
				return true
			}
		}
		return false
	}
	constSlot := func(v *value) int {
		s, ok := slotOf[v]
		if !ok {
			s = newSlot(v)
			p.constants[s] = v.shape
			p.constData[s] = v.node.args[0]
		}
		return s
	}

	// Kernel steps: inputs and outputs as slots.
	for n, pk := range kernels {
		ks := p.steps[stepOf[n]].(*kernelStep)
		ks.k = pk.k
		for _, in := range pk.inputs(n) {
			if in.node.op == "Constant" {
				ks.in = append(ks.in, constSlot(in))
			} else {
				ks.in = append(ks.in, newSlot(in))
			}
		}
		for _, o := range append(slices.Clip(n.outs), pk.extraOut...) {
			ks.out = append(ks.out, newSlot(o))
			ks.shapes = append(ks.shapes, o.shape)
		}
	}

	// Go segments: replay their nodes on a fresh builder each.
	for i, gs := range goSegs {
		st := p.steps[gs.step].(*goStep)
		inner := lower.WrapBuilder(b.backend.Backend.Builder(fmt.Sprintf("%s#%d", b.name, i)))
		g := inner.Main()
		env := map[*value]compute.Value{}
		in := func(v *value) (compute.Value, error) {
			if x, ok := env[v]; ok {
				return x, nil
			}
			var x compute.Value
			var err error
			if v.node.op == "Constant" {
				var outs []compute.Value
				outs, err = v.node.replay(g, nil)
				if err == nil {
					x = outs[0]
				}
			} else {
				s := newSlot(v)
				st.in = append(st.in, s)
				x, err = g.Parameter(fmt.Sprintf("s%d", s), v.shape, nil)
			}
			if err != nil {
				return nil, err
			}
			env[v] = x
			return x, nil
		}
		var rets []compute.Value
		for _, n := range gs.nodes {
			args := make([]compute.Value, len(n.inputs))
			for j, v := range n.inputs {
				x, err := in(v)
				if err != nil {
					return nil, fmt.Errorf("engine: segment %d: %s: %w", i, n.op, err)
				}
				args[j] = x
			}
			outs, err := n.replay(g, args)
			if err != nil {
				return nil, fmt.Errorf("engine: segment %d: replay %s: %w", i, n.op, err)
			}
			for j, o := range n.outs {
				env[o] = outs[j]
				if crosses(o, gs.step) {
					st.out = append(st.out, newSlot(o))
					rets = append(rets, outs[j])
				}
			}
		}
		if err := g.Return(rets, nil); err != nil {
			return nil, fmt.Errorf("engine: segment %d: %w", i, err)
		}
		exec, err := inner.Compile()
		if err != nil {
			return nil, fmt.Errorf("engine: segment %d: %w", i, err)
		}
		st.exec = exec
	}

	for _, v := range f.outputs {
		if v.node.op == "Constant" {
			p.outputs = append(p.outputs, constSlot(v))
		} else {
			p.outputs = append(p.outputs, newSlot(v))
		}
	}
	p.lastUse = make([]int, p.nslots)
	for i := range p.lastUse {
		p.lastUse[i] = -1
	}
	for si, st := range p.steps {
		for _, s := range st.inputs() {
			p.lastUse[s] = si
		}
	}
	for _, s := range p.outputs {
		p.lastUse[s] = len(p.steps)
	}
	if err := p.regions(); err != nil {
		return nil, err
	}
	return p, nil
}

// regions keeps in a primitive's own layout (oneDNN's blocked formats)
// each value that one kernel writes and only kernels read, where writer
// and readers all chose that same layout: no reorder out of it and back
// in between them, as TVM's BYOC regions and PyTorch's oneDNN tensors
// keep it. An element-wise kernel has no layout of its own: it runs in
// the one its inputs share, if all its values stay in it. Values the Go
// backend reads, and outputs, stay in its layout.
func (p *plan) regions() error {
	p.raw = map[int]int{}
	type use struct{ step, pos int }
	type at struct { // where a value is in a primitive's layout: the argument writing it
		op  *dnnl.Op
		arg int
	}
	reads := map[int][]use{}
	goReads := map[int]bool{}
	for si, st := range p.steps {
		switch st := st.(type) {
		case *goStep:
			for _, s := range st.in {
				goReads[s] = true
			}
		case *kernelStep:
			for pos, s := range st.in {
				reads[s] = append(reads[s], use{si, pos})
			}
		}
	}
	for _, s := range p.outputs {
		goReads[s] = true
	}
	layout := map[int]at{}
	for _, st := range p.steps {
		ks, ok := st.(*kernelStep)
		if !ok {
			continue
		}
		if _, ok := ks.k.(elementwiseKernel); ok {
			l, same := layout[ks.in[0]]
			for _, s := range ks.in[1:] {
				m, ok := layout[s]
				same = same && ok && dnnl.SameLayout(l.op, l.arg, m.op, m.arg)
			}
			for _, s := range ks.out {
				if same {
					layout[s] = l
				}
			}
			continue
		}
		op, _, outArgs := ks.k.layout()
		for j, s := range ks.out {
			if a := outArgs[j]; a >= 0 && op.Reordered(a) {
				layout[s] = at{op, a}
			}
		}
	}
	kept := map[int]bool{}
	for s, l := range layout {
		if goReads[s] || len(reads[s]) == 0 {
			continue
		}
		same := true
		for _, r := range reads[s] {
			k := p.steps[r.step].(*kernelStep).k
			if _, ok := k.(elementwiseKernel); ok {
				continue // decided below, with the kernel's other values
			}
			rop, inArgs, _ := k.layout()
			b := inArgs[r.pos]
			same = same && b >= 0 && rop.Reordered(b) && dnnl.SameLayout(l.op, l.arg, rop, b)
		}
		kept[s] = same
	}
	// An element-wise kernel's values are all in the region's layout or
	// none is; an input that is an output's initial value (a residual)
	// shares the output's layout.
	for changed := true; changed; {
		changed = false
		drop := func(slots ...int) {
			for _, s := range slots {
				if kept[s] {
					kept[s], changed = false, true
				}
			}
		}
		for _, st := range p.steps {
			ks, ok := st.(*kernelStep)
			if !ok {
				continue
			}
			if _, ok := ks.k.(elementwiseKernel); ok {
				all := true
				for _, s := range append(slices.Clip(ks.in), ks.out...) {
					all = all && kept[s]
				}
				if !all {
					drop(ks.in...)
					drop(ks.out...)
				}
				continue
			}
			_, inArgs, outArgs := ks.k.layout()
			for i, a := range inArgs[:min(len(inArgs), len(ks.in))] {
				for j, b := range outArgs[:min(len(outArgs), len(ks.out))] {
					if in, out := ks.in[i], ks.out[j]; a >= 0 && a == b && kept[in] != kept[out] {
						drop(in, out)
					}
				}
			}
		}
	}
	for s, ok := range kept {
		if ok {
			l := layout[s]
			p.raw[s] = l.op.Bytes(l.arg) / 4
		}
	}
	// Element-wise kernels in a region run over the elements of its
	// layout, padding included.
	for _, st := range p.steps {
		if ks, ok := st.(*kernelStep); ok {
			if ew, ok := ks.k.(elementwiseKernel); ok && kept[ks.in[0]] {
				k, err := ew.sized(p.raw[ks.in[0]])
				if err != nil {
					return err
				}
				ks.k = k
			}
		}
	}
	return nil
}

// sourceOf returns the node that makes each value once kernels are
// placed: a kernel may make a value of another node (a folded reduction),
// and readers of that value then wait for the kernel.
func sourceOf(kernels map[*node]*placed) func(*value) *node {
	producer := map[*value]*node{}
	for n, pk := range kernels {
		for _, v := range pk.extraOut {
			if v.node != n {
				producer[v] = n
			}
		}
	}
	return func(v *value) *node {
		if p, ok := producer[v]; ok {
			return p
		}
		return v.node
	}
}

// liveNodes marks the nodes the outputs depend on, through what kernels
// read where a node is placed as one, and through the node that makes
// each value (source; nil: the value's own).
func liveNodes(f *function, kernels map[*node]*placed, source func(*value) *node) []bool {
	if source == nil {
		source = func(v *value) *node { return v.node }
	}
	live := make([]bool, len(f.nodes))
	var stack []*node
	for _, v := range f.outputs {
		stack = append(stack, source(v))
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.index >= len(live) || live[n.index] {
			continue
		}
		live[n.index] = true
		ins := n.inputs
		if pk, ok := kernels[n]; ok {
			ins = pk.inputs(n)
		}
		for _, in := range ins {
			stack = append(stack, source(in))
		}
	}
	return live
}
