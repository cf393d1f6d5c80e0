// The C side of package dnnl: oneDNN primitives created once per
// configuration and executed on caller-owned buffers. Every call comes from
// one Go goroutine locked to one OS thread (see worker.go), so the scratch
// arena below needs no lock and OpenMP keeps a single thread team.
#ifndef DL_H
#define DL_H

#include <stddef.h>
#include <stdint.h>

#define DL_MAX_ARGS 8

// A tensor as the caller holds it: logical dimensions in oneDNN's order
// (N, C, H, W for data; [G,] O, I, KH, KW for weights) and the element
// strides of the caller's buffer for each of them.
typedef struct {
	int ndims;
	int64_t dims[12]; // DNNL_MAX_NDIMS: what oneDNN's dims type holds
	int64_t strides[12];
} dl_tensor;

enum { DL_CONV_FWD = 0, DL_CONV_BWD_DATA = 1, DL_CONV_BWD_WEIGHTS = 2 };

typedef struct {
	int prop;
	// src / wei / dst name the forward convolution's tensors; for the
	// backward kinds they are diff_src (output of BWD_DATA), diff_weights
	// (output of BWD_WEIGHTS) and diff_dst.
	dl_tensor src, wei, dst;
	int64_t strides[2], dilates[2], pad_l[2], pad_r[2]; // dilates: 0 = none (oneDNN's convention)
	int bias;  // FWD: a bias [O] input; BWD_WEIGHTS: a diff_bias [O] output
	int sum;   // FWD: dst += the convolution (dst holds an addend when called)
	int relu;  // FWD: ReLU as a post-op (after the sum)
	float clip; // FWD, with relu: clip to [0, clip] instead (ReLU6), if > 0
	int plain; // 1: the primitive works on the caller's layouts (no reorders)
} dl_conv_desc;

enum { DL_POOL_FWD = 0, DL_POOL_FWD_TRAINING = 1, DL_POOL_BWD = 2 };
enum { DL_POOL_MAX = 0, DL_POOL_AVG_INCLUDE = 1, DL_POOL_AVG_EXCLUDE = 2 };

typedef struct {
	int prop, alg;
	dl_tensor src, dst; // BWD: diff_src (output) and diff_dst (input)
	int64_t kernel[2], strides[2], pad_l[2], pad_r[2];
	float scale; // FWD*: dst *= scale (a sum pool is an include-padding average times the window)
	int plain;   // 1: the primitive works on the caller's layouts (no reorders)
} dl_pool_desc;

enum { DL_BN_FWD_TRAINING = 0, DL_BN_FWD_INFERENCE = 1, DL_BN_BWD = 2 };

typedef struct {
	int prop;
	dl_tensor data; // its dims[1] is the feature axis (C)
	float epsilon;
	int plain; // 1: on the caller's layout; 0: rank-4 data in the blocked layout of convolutions and pools
} dl_bnorm_desc;

// A matmul: dst (B, M, N) = src (B, M, K) x wei (B, K, N), each with the
// caller's strides (rank 2 when there is no batch).
typedef struct {
	dl_tensor src, wei, dst;
} dl_matmul_desc;

// ReLU over n elements: forward, dst = max(src, 0); backward from its
// output, diff_src = diff_dst where dst > 0, else 0.
typedef struct {
	int64_t n;
	int backward;
} dl_relu_desc;

// A per-channel add: dst = src + bias[c], src and dst of one
// description (dims[1] the channels), bias C values.
typedef struct {
	dl_tensor src;
	int plain; // 1: on the caller's layout; 0: rank-4 data in the blocked layout of convolutions and pools
} dl_bias_desc;

typedef struct dl_op dl_op;

// dl_init loads the library (see load.h), creates the CPU engine and
// stream; threads > 0 sets OpenMP's team size for the calling thread.
int dl_init(const char *library, int threads, char *err, size_t errlen);

int dl_conv_create(const dl_conv_desc *d, dl_op **op, char *err, size_t errlen);
int dl_pool_create(const dl_pool_desc *d, dl_op **op, char *err, size_t errlen);
int dl_bnorm_create(const dl_bnorm_desc *d, dl_op **op, char *err, size_t errlen);
int dl_matmul_create(const dl_matmul_desc *d, dl_op **op, char *err, size_t errlen);
int dl_relu_create(const dl_relu_desc *d, dl_op **op, char *err, size_t errlen);
int dl_bias_create(const dl_bias_desc *d, dl_op **op, char *err, size_t errlen);

// dl_op_nargs / dl_op_workspace: the number of buffers dl_exec takes (in
// the order of the kind's arguments, see dnnl.c) and the bytes of the
// workspace argument, if the op has one (max pooling for training).
int dl_op_nargs(const dl_op *op);
size_t dl_op_workspace(const dl_op *op);
const char *dl_op_impl(const dl_op *op);

// dl_exec runs op on the caller's buffers (ptrs[i] for argument i), with
// reorders into and out of the primitive's layouts where they differ,
// except for the arguments whose bit is set in raw: those buffers are in
// the primitive's own layout already (a value passed between two
// primitives that chose the same one). No pointer is kept after it returns.
int dl_exec(dl_op *op, void **ptrs, unsigned raw, char *err, size_t errlen);

// dl_op_reordered reports whether the caller's argument i is reordered
// (the primitive works in another layout); dl_op_bytes is the size of that
// layout; dl_same_layout whether argument i of a and j of b share it.
int dl_op_reordered(const dl_op *op, int i);
size_t dl_op_bytes(const dl_op *op, int i);
int dl_same_layout(const dl_op *a, int i, const dl_op *b, int j);

void dl_op_destroy(dl_op *op);

#endif
