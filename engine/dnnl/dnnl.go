//go:build !nodnnl

package dnnl

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "dl.h"

static int dl_exec8(dl_op *op, void *a0, void *a1, void *a2, void *a3, void *a4, void *a5, void *a6, void *a7,
                    unsigned raw, char *err, size_t errlen) {
	void *p[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
	return dl_exec(op, p, raw, err, errlen);
}
*/
import "C"

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"unsafe"
)

// Tensor is a tensor as the caller holds it: Rank logical dimensions in
// oneDNN's order (N, C, H, W for data; [G,] O, I, KH, KW for weights) and
// the element strides of the caller's buffer for each.
type Tensor struct {
	Rank    int
	Dims    [5]int64
	Strides [5]int64
}

// Size is the number of elements the tensor spans.
func (t Tensor) Size() int64 {
	n := int64(1)
	for i := range t.Rank {
		n *= t.Dims[i]
	}
	return n
}

// ConvProp is what a convolution primitive computes.
type ConvProp int

const (
	// ConvForward: Dst = conv(Src, Wei) [+ bias] [ReLU].
	ConvForward ConvProp = iota
	// ConvBackwardData: Src = the gradient of the input from Dst (the
	// output gradient) and Wei.
	ConvBackwardData
	// ConvBackwardWeights: Wei = the gradient of the kernel from Src and
	// Dst (the output gradient) [and the bias gradient].
	ConvBackwardWeights
)

// ConvSpec configures a 2-D convolution (a 1-D one has a unit height).
type ConvSpec struct {
	Prop            ConvProp
	Src, Wei, Dst   Tensor
	Strides         [2]int64
	Dilates         [2]int64 // oneDNN's convention: 0 is no dilation
	PadL, PadR      [2]int64
	Bias, Sum, Relu bool    // forward post-ops: Dst = relu(conv + bias + what Dst holds)
	Clip            float32 // with Relu: clip to [0, Clip] instead (ReLU6), if > 0
	Plain           bool    // work on the caller's layouts instead of oneDNN's blocked ones
}

// PoolProp is what a pooling primitive computes.
type PoolProp int

const (
	PoolForward         PoolProp = iota // Dst = pool(Src)
	PoolForwardTraining                 // the same, plus a workspace for PoolBackward (max)
	PoolBackward                        // Src = the input gradient from Dst [and the workspace]
)

// PoolAlg is the pooling's reduction.
type PoolAlg int

const (
	PoolMax PoolAlg = iota
	PoolAvgIncludePadding
	PoolAvgExcludePadding
)

// PoolSpec configures a 2-D pooling.
type PoolSpec struct {
	Prop                        PoolProp
	Alg                         PoolAlg
	Src, Dst                    Tensor
	Kernel, Strides, PadL, PadR [2]int64
	Scale                       float32 // forward: multiplies the result (0 means 1)
	Plain                       bool    // work on the caller's layouts instead of oneDNN's blocked ones
}

// BatchNormProp is what a batch normalization primitive computes.
type BatchNormProp int

const (
	// BatchNormTraining: (src, scale, shift) -> (dst, mean, variance), the
	// statistics of the batch (the variance biased, as XLA's).
	BatchNormTraining BatchNormProp = iota
	// BatchNormInference: (src, scale, shift, mean, variance) -> dst.
	BatchNormInference
	// BatchNormBackward: (src, scale, mean, variance, diff_dst) ->
	// (diff_src, diff_scale, diff_shift).
	BatchNormBackward
)

// BatchNormSpec configures a batch normalization over Data's Dims[1].
type BatchNormSpec struct {
	Prop    BatchNormProp
	Data    Tensor
	Epsilon float32
	Plain   bool // work on the caller's layout; else rank-4 data runs in oneDNN's blocked one
}

// BiasSpec configures a per-channel add: Dst = Src + bias[c] over Src's
// Dims[1], Dst described as Src.
type BiasSpec struct {
	Src   Tensor
	Plain bool // work on the caller's layout; else rank-4 data runs in oneDNN's blocked one
}

// MatMulSpec configures Dst (B, M, N) = Src (B, M, K) x Wei (B, K, N), or
// the same without B (rank 2).
type MatMulSpec struct{ Src, Wei, Dst Tensor }

// Op is a created primitive.
type Op struct {
	op        *C.dl_op
	nargs     int
	workspace int
	impl      string
}

// Args is how many buffers Exec takes, in the primitive's argument order:
// convolution forward (src, wei, [bias], dst); backward data (dst, wei,
// src); backward weights (src, dst, wei, [bias]); pooling forward (src,
// dst, [workspace]); pooling backward (dst, src, [workspace]); batch
// normalization as BatchNormProp lists; matmul (src, wei, dst); ReLU
// forward (src, dst) and backward (dst, diff_dst, diff_src); bias add
// (src, bias, dst).
func (o *Op) Args() int { return o.nargs }

// Workspace is the byte size of the op's workspace argument (0: none).
func (o *Op) Workspace() int { return o.workspace }

// Impl names the oneDNN implementation chosen (for example "jit:avx2").
func (o *Op) Impl() string { return o.impl }

// Library is the process's oneDNN: its thread and its primitive cache.
type Library struct {
	calls  chan func()
	mu     sync.Mutex
	convs  map[ConvSpec]*Op
	pools  map[PoolSpec]*Op
	bns    map[BatchNormSpec]*Op
	mms    map[MatMulSpec]*Op
	relus  map[reluKey]*Op
	biases map[BiasSpec]*Op
}

type reluKey struct {
	n        int64
	backward bool
}

var (
	openOnce sync.Once
	lib      *Library
	openErr  error
)

// Open loads libdnnl (libdnnl.so.2, or the file DL4IMG_DNNL_LIBRARY names),
// starts the process's oneDNN thread with an OpenMP team of threads
// threads (the first call decides) and returns the library. OpenMP's threads are told to sleep between primitives
// (OMP_WAIT_POLICY=PASSIVE, read when libgomp loads, unless set already)
// rather than spin on the cores the Go backend's ops need.
func Open(threads int) (*Library, error) {
	openOnce.Do(func() {
		if os.Getenv("OMP_WAIT_POLICY") == "" {
			os.Setenv("OMP_WAIT_POLICY", "PASSIVE")
		}
		l := &Library{calls: make(chan func()), convs: map[ConvSpec]*Op{}, pools: map[PoolSpec]*Op{},
			bns: map[BatchNormSpec]*Op{}, mms: map[MatMulSpec]*Op{}, relus: map[reluKey]*Op{}, biases: map[BiasSpec]*Op{}}
		started := make(chan error)
		go func() {
			// One OS thread for every call: OpenMP's team and its size
			// belong to the thread that starts parallel regions.
			runtime.LockOSThread()
			var err [256]C.char
			name := cmp.Or(os.Getenv("DL4IMG_DNNL_LIBRARY"), "libdnnl.so.2")
			cname := C.CString(name)
			rc := C.dl_init(cname, C.int(threads), &err[0], C.size_t(len(err)))
			C.free(unsafe.Pointer(cname))
			if rc != 0 {
				started <- errors.New(C.GoString(&err[0]))
				return
			}
			started <- nil
			for f := range l.calls {
				f()
			}
		}()
		if openErr = <-started; openErr == nil {
			lib = l
		}
	})
	return lib, openErr
}

// do runs f on the library's thread.
func (l *Library) do(f func()) {
	done := make(chan struct{})
	l.calls <- func() { f(); close(done) }
	<-done
}

func (t Tensor) c() C.dl_tensor {
	var ct C.dl_tensor
	ct.ndims = C.int(t.Rank)
	for i := range t.Rank {
		ct.dims[i] = C.int64_t(t.Dims[i])
		ct.strides[i] = C.int64_t(t.Strides[i])
	}
	return ct
}

func c2(v [2]int64) [2]C.int64_t { return [2]C.int64_t{C.int64_t(v[0]), C.int64_t(v[1])} }

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Conv returns the primitive for s, creating it on first use.
func (l *Library) Conv(s ConvSpec) (*Op, error) {
	var d C.dl_conv_desc
	d.prop = C.int(s.Prop)
	d.src, d.wei, d.dst = s.Src.c(), s.Wei.c(), s.Dst.c()
	d.strides, d.dilates, d.pad_l, d.pad_r = c2(s.Strides), c2(s.Dilates), c2(s.PadL), c2(s.PadR)
	d.bias, d.sum, d.relu, d.plain = cbool(s.Bias), cbool(s.Sum), cbool(s.Relu), cbool(s.Plain)
	d.clip = C.float(s.Clip)
	return cached(l, l.convs, s, func(out **C.dl_op, e *C.char, n C.size_t) C.int { return C.dl_conv_create(&d, out, e, n) })
}

// Pool returns the primitive for s, creating it on first use.
func (l *Library) Pool(s PoolSpec) (*Op, error) {
	if s.Scale == 0 {
		s.Scale = 1
	}
	var d C.dl_pool_desc
	d.prop, d.alg = C.int(s.Prop), C.int(s.Alg)
	d.src, d.dst = s.Src.c(), s.Dst.c()
	d.kernel, d.strides, d.pad_l, d.pad_r = c2(s.Kernel), c2(s.Strides), c2(s.PadL), c2(s.PadR)
	d.scale, d.plain = C.float(s.Scale), cbool(s.Plain)
	return cached(l, l.pools, s, func(out **C.dl_op, e *C.char, n C.size_t) C.int { return C.dl_pool_create(&d, out, e, n) })
}

// BatchNorm returns the primitive for s, creating it on first use.
func (l *Library) BatchNorm(s BatchNormSpec) (*Op, error) {
	var d C.dl_bnorm_desc
	d.prop, d.data, d.epsilon, d.plain = C.int(s.Prop), s.Data.c(), C.float(s.Epsilon), cbool(s.Plain)
	return cached(l, l.bns, s, func(out **C.dl_op, e *C.char, n C.size_t) C.int { return C.dl_bnorm_create(&d, out, e, n) })
}

// MatMul returns the primitive for s, creating it on first use.
func (l *Library) MatMul(s MatMulSpec) (*Op, error) {
	var d C.dl_matmul_desc
	d.src, d.wei, d.dst = s.Src.c(), s.Wei.c(), s.Dst.c()
	return cached(l, l.mms, s, func(out **C.dl_op, e *C.char, n C.size_t) C.int { return C.dl_matmul_create(&d, out, e, n) })
}

// Relu returns the primitive computing ReLU over n elements, creating it
// on first use: forward (src) -> dst, or backward from the output (dst,
// diff_dst) -> diff_src.
func (l *Library) Relu(n int64, backward bool) (*Op, error) {
	d := C.dl_relu_desc{n: C.int64_t(n), backward: cbool(backward)}
	return cached(l, l.relus, reluKey{n, backward},
		func(out **C.dl_op, e *C.char, m C.size_t) C.int { return C.dl_relu_create(&d, out, e, m) })
}

// Bias returns the per-channel add for s, creating it on first use.
func (l *Library) Bias(s BiasSpec) (*Op, error) {
	d := C.dl_bias_desc{src: s.Src.c(), plain: cbool(s.Plain)}
	return cached(l, l.biases, s, func(out **C.dl_op, e *C.char, m C.size_t) C.int { return C.dl_bias_create(&d, out, e, m) })
}

// cached returns m[key], made by mk on first use (m is one of l's caches,
// guarded by l.mu).
func cached[K comparable](l *Library, m map[K]*Op, key K, mk func(**C.dl_op, *C.char, C.size_t) C.int) (*Op, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if op, ok := m[key]; ok {
		return op, nil
	}
	op, err := l.create(mk)
	if err != nil {
		return nil, err
	}
	m[key] = op
	return op, nil
}

func (l *Library) create(mk func(**C.dl_op, *C.char, C.size_t) C.int) (*Op, error) {
	var op *Op
	var err error
	l.do(func() {
		var cop *C.dl_op
		var e [256]C.char
		if mk(&cop, &e[0], C.size_t(len(e))) != 0 {
			err = errors.New(C.GoString(&e[0]))
			return
		}
		op = &Op{op: cop, nargs: int(C.dl_op_nargs(cop)), workspace: int(C.dl_op_workspace(cop)),
			impl: C.GoString(C.dl_op_impl(cop))}
	})
	return op, err
}

// Raw is a tensor already in the layout the primitive chose for its
// argument (Op.Reordered), as another primitive left it (Op.SameLayout):
// passed as it is, with no reorder.
type Raw []float32

// Reordered reports whether argument i runs in another layout than the
// caller's (the primitive reorders it in or out).
func (o *Op) Reordered(i int) bool { return C.dl_op_reordered(o.op, C.int(i)) != 0 }

// Bytes is the size of argument i in the primitive's layout.
func (o *Op) Bytes(i int) int { return int(C.dl_op_bytes(o.op, C.int(i))) }

// SameLayout reports whether argument i of a and argument j of b are
// reordered into one and the same layout: a value a writes there can be
// handed to b as Raw.
func SameLayout(a *Op, i int, b *Op, j int) bool {
	return C.dl_same_layout(a.op, C.int(i), b.op, C.int(j)) != 0
}

// Exec runs op on bufs, one per argument (see Op.Args): []float32 for
// tensors in the caller's layout, Raw for tensors in the primitive's,
// []byte for a workspace. Each must hold what its tensor spans.
func (l *Library) Exec(op *Op, bufs ...any) error {
	if len(bufs) != op.nargs {
		return fmt.Errorf("oneDNN op %s: %d buffers for %d arguments", op.impl, len(bufs), op.nargs)
	}
	var p [8]unsafe.Pointer
	var raw C.unsigned
	for i, b := range bufs {
		switch b := b.(type) {
		case []float32:
			p[i] = unsafe.Pointer(unsafe.SliceData(b))
		case Raw:
			p[i] = unsafe.Pointer(unsafe.SliceData(b))
			raw |= 1 << i
		case []byte:
			p[i] = unsafe.Pointer(unsafe.SliceData(b))
		default:
			return fmt.Errorf("oneDNN op %s: buffer %d is %T", op.impl, i, b)
		}
	}
	var err error
	l.do(func() {
		var e [256]C.char
		if C.dl_exec8(op.op, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], raw, &e[0], C.size_t(len(e))) != 0 {
			err = fmt.Errorf("oneDNN op %s: %s", op.impl, C.GoString(&e[0]))
		}
	})
	runtime.KeepAlive(bufs)
	return err
}
