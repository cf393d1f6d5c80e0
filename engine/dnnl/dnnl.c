//go:build !nodnnl

#include "dl.h"

#include "load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// One argument of a primitive: the caller's memory (its handle set for each
// execution) and, where the primitive wants another layout, the memory in
// that layout (in the scratch arena) and the reorder between the two.
typedef struct {
	int arg;  // DNNL_ARG_*
	int ptr;  // which of the caller's buffers it is
	int out;  // written by the primitive
	int ws;   // a workspace: always in the primitive's own layout
	int acc;  // an output that also holds an input (a sum post-op's addend)
	dnnl_memory_t user, prim;
	dnnl_primitive_t reorder;    // user -> prim for inputs, prim -> user for outputs
	dnnl_primitive_t reorder_in; // user -> prim for an accumulating output
	size_t offset; // of prim in the arena
} dl_arg;

struct dl_op {
	dnnl_primitive_t prim;
	int nargs;  // the caller's buffers
	int nprim;  // the primitive's arguments (a buffer may be bound twice)
	dl_arg args[DL_MAX_ARGS + 1];
	dnnl_memory_t scratchpad;
	size_t scratchpad_offset;
	size_t arena; // bytes of arena this op needs
	size_t workspace;
	char impl[96];
};

static dnnl_engine_t eng;
static dnnl_stream_t strm;

// The arena holds the reordered copies and oneDNN's scratchpads. Ops run
// one at a time, so one arena, grown to the largest op's need, serves all.
static char *arena;
static size_t arena_size;

static int fail(char *err, size_t errlen, const char *what, dnnl_status_t st) {
	snprintf(err, errlen, "%s: oneDNN status %d", what, (int)st);
	return 1;
}

#define TRY(what, call)                                                                                              \
	do {                                                                                                         \
		dnnl_status_t st_ = (call);                                                                          \
		if (st_ != dnnl_success) return fail(err, errlen, what, st_);                                        \
	} while (0)

int dl_init(const char *library, int threads, char *err, size_t errlen) {
	if (dl_load(library, err, errlen)) return 1;
	if (threads > 0 && dl_omp_set_num_threads) dl_omp_set_num_threads(threads);
	if (eng) return 0;
	TRY("engine", dnnl_engine_create(&eng, dnnl_cpu, 0));
	TRY("stream", dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
	return 0;
}

static int user_md(dnnl_memory_desc_t *md, const dl_tensor *t, char *err, size_t errlen) {
	TRY("memory descriptor", dnnl_memory_desc_init_by_strides(md, t->ndims, t->dims, dnnl_f32, t->strides));
	return 0;
}

static int any_md(dnnl_memory_desc_t *md, const dl_tensor *t, char *err, size_t errlen) {
	TRY("memory descriptor", dnnl_memory_desc_init_by_tag(md, t->ndims, t->dims, dnnl_f32, dnnl_format_tag_any));
	return 0;
}

// blocked_md describes rank-4 data of dims in the blocked layout the
// convolutions choose (channels in blocks of 8, which every AVX2 and
// AVX-512 kernel reads), so that a region runs through the primitives
// that take no "any" source and must be given it by name: pooling, batch
// normalization, the bias add.
static int blocked_md(dnnl_memory_desc_t *md, const int64_t *dims, char *err, size_t errlen) {
	TRY("blocked layout", dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_aBcd8b));
	return 0;
}

// dims2 widens a spatial pair to oneDNN's dims array type.
static void dims2(dnnl_dims_t out, const int64_t in[2]) {
	memset(out, 0, sizeof(dnnl_dims_t));
	out[0] = in[0];
	out[1] = in[1];
}

static dl_op *new_op(void) { return (dl_op *)calloc(1, sizeof(dl_op)); }

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

// add_arg binds argument arg of op's primitive (described by pd) to the
// caller's layout umd, adding a reorder where the primitive chose another.
static int add_arg(dl_op *op, const_dnnl_primitive_desc_t pd, int arg, int out, const dnnl_memory_desc_t *umd,
                   char *err, size_t errlen) {
	dl_arg *a = &op->args[op->nprim++];
	a->arg = arg;
	a->ptr = op->nargs++;
	a->out = out;
	const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
	if (!pmd) return fail(err, errlen, "query argument layout", dnnl_invalid_arguments);
	if (!umd) { // a workspace: the caller allocates it in the primitive's layout
		a->ws = 1;
		op->workspace = dnnl_memory_desc_get_size(pmd);
		TRY("workspace memory", dnnl_memory_create(&a->user, pmd, eng, DNNL_MEMORY_NONE));
		return 0;
	}
	TRY("memory", dnnl_memory_create(&a->user, umd, eng, DNNL_MEMORY_NONE));
	if (dnnl_memory_desc_equal(umd, pmd)) return 0;
	TRY("memory", dnnl_memory_create(&a->prim, pmd, eng, DNNL_MEMORY_NONE));
	dnnl_primitive_desc_t rpd;
	const dnnl_memory_desc_t *from = out ? pmd : umd, *to = out ? umd : pmd;
	TRY("reorder", dnnl_reorder_primitive_desc_create(&rpd, from, eng, to, eng, NULL));
	dnnl_status_t st = dnnl_primitive_create(&a->reorder, rpd);
	dnnl_primitive_desc_destroy(rpd);
	if (st != dnnl_success) return fail(err, errlen, "reorder", st);
	a->offset = op->arena;
	op->arena += align64(dnnl_memory_desc_get_size(pmd));
	return 0;
}

// accumulate makes op's last argument an output that also holds an input
// (a sum post-op's addend): reordered into the primitive's layout first.
static int accumulate(dl_op *op, char *err, size_t errlen) {
	dl_arg *a = &op->args[op->nprim - 1];
	a->acc = 1;
	if (!a->prim) return 0;
	const dnnl_memory_desc_t *umd, *pmd;
	TRY("query", dnnl_memory_get_memory_desc(a->user, &umd));
	TRY("query", dnnl_memory_get_memory_desc(a->prim, &pmd));
	dnnl_primitive_desc_t rpd;
	TRY("reorder", dnnl_reorder_primitive_desc_create(&rpd, umd, eng, pmd, eng, NULL));
	dnnl_status_t st = dnnl_primitive_create(&a->reorder_in, rpd);
	dnnl_primitive_desc_destroy(rpd);
	if (st != dnnl_success) return fail(err, errlen, "reorder", st);
	return 0;
}

// alias_arg binds argument arg to the caller's buffer of an earlier input
// (an argument oneDNN requires but does not read, as batch normalization's
// shift in its backward pass).
static int alias_arg(dl_op *op, const_dnnl_primitive_desc_t pd, int arg, const dnnl_memory_desc_t *umd, int ptr,
                     char *err, size_t errlen) {
	if (add_arg(op, pd, arg, 0, umd, err, errlen)) return 1;
	op->nargs--;
	op->args[op->nprim - 1].ptr = ptr;
	return 0;
}

// finish creates op's primitive from pd and its scratchpad (in the arena).
static int finish(dl_op *op, dnnl_primitive_desc_t pd, char *err, size_t errlen) {
	const char *impl = NULL;
	dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
	if (impl) snprintf(op->impl, sizeof op->impl, "%s", impl);
	const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	size_t ssize = smd ? dnnl_memory_desc_get_size(smd) : 0;
	if (ssize > 0) {
		TRY("scratchpad", dnnl_memory_create(&op->scratchpad, smd, eng, DNNL_MEMORY_NONE));
		op->scratchpad_offset = op->arena;
		op->arena += align64(ssize);
	}
	TRY("primitive", dnnl_primitive_create(&op->prim, pd));
	return 0;
}

// bind is one argument of a primitive bound to a caller's buffer: its
// oneDNN name, whether the primitive writes it, the caller's layout.
typedef struct {
	int arg, out;
	const dnnl_memory_desc_t *umd;
} bind;

// make_op makes *out from pd with the arguments b[0..n) in order (add_arg)
// and its primitive (finish). pd stays the caller's to destroy.
static int make_op(dnnl_primitive_desc_t pd, const bind *b, int n, dl_op **out, char *err, size_t errlen) {
	dl_op *op = new_op();
	for (int i = 0; i < n; i++) {
		if (add_arg(op, pd, b[i].arg, b[i].out, b[i].umd, err, errlen)) {
			dl_op_destroy(op);
			return 1;
		}
	}
	if (finish(op, pd, err, errlen)) {
		dl_op_destroy(op);
		return 1;
	}
	*out = op;
	return 0;
}

static dnnl_primitive_attr_t user_scratchpad_attr(void) {
	dnnl_primitive_attr_t attr = NULL;
	if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
	dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	return attr;
}

int dl_conv_create(const dl_conv_desc *d, dl_op **out, char *err, size_t errlen) {
	dnnl_memory_desc_t su, wu, du, bu, sa, wa, da, ba;
	if (user_md(&su, &d->src, err, errlen) || user_md(&wu, &d->wei, err, errlen) || user_md(&du, &d->dst, err, errlen))
		return 1;
	if (d->plain) {
		// The data in the caller's layout; weights (small) still reordered.
		sa = su, da = du;
		if (any_md(&wa, &d->wei, err, errlen)) return 1;
	} else if (any_md(&sa, &d->src, err, errlen) || any_md(&wa, &d->wei, err, errlen) ||
	           any_md(&da, &d->dst, err, errlen)) {
		return 1;
	}
	dnnl_dims_t bdims = {d->dst.dims[1]};
	TRY("bias descriptor", dnnl_memory_desc_init_by_tag(&bu, 1, bdims, dnnl_f32, dnnl_a));
	ba = bu;

	dnnl_dims_t strides, dilates, pad_l, pad_r;
	dims2(strides, d->strides), dims2(dilates, d->dilates), dims2(pad_l, d->pad_l), dims2(pad_r, d->pad_r);
	dnnl_convolution_desc_t fd, bd;
	dnnl_primitive_desc_t hint = NULL, pd = NULL;
	dnnl_primitive_attr_t attr = user_scratchpad_attr();
	dnnl_post_ops_t po = NULL;
	dnnl_status_t st;
	int rc = 1;
	dl_op *op = NULL;
	int fwd = d->prop == DL_CONV_FWD;
	st = dnnl_dilated_convolution_forward_desc_init(&fd, fwd ? dnnl_forward_inference : dnnl_forward_training,
	                                                dnnl_convolution_direct, &sa, &wa, (fwd && d->bias) ? &ba : NULL,
	                                                &da, strides, dilates, pad_l, pad_r);
	if (st != dnnl_success) {
		fail(err, errlen, "convolution descriptor", st);
		goto out;
	}
	if (fwd) {
		if (d->relu || d->sum) {
			dnnl_post_ops_create(&po);
			if (d->sum) dnnl_post_ops_append_sum(po, 1.0f);
			if (d->relu && d->clip > 0)
				dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, 0.0f, d->clip);
			else if (d->relu)
				dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
			dnnl_primitive_attr_set_post_ops(attr, po);
		}
		st = dnnl_primitive_desc_create(&pd, &fd, attr, eng, NULL);
	} else {
		st = dnnl_primitive_desc_create(&hint, &fd, NULL, eng, NULL);
		if (st != dnnl_success) {
			fail(err, errlen, "convolution (forward hint)", st);
			goto out;
		}
		if (d->prop == DL_CONV_BWD_DATA) {
			st = dnnl_dilated_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &sa, &wa, &da,
			                                                      strides, dilates, pad_l, pad_r);
		} else {
			st = dnnl_dilated_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &sa, &wa,
			                                                         d->bias ? &ba : NULL, &da, strides, dilates,
			                                                         pad_l, pad_r);
		}
		if (st != dnnl_success) {
			fail(err, errlen, "convolution backward descriptor", st);
			goto out;
		}
		st = dnnl_primitive_desc_create(&pd, &bd, attr, eng, hint);
	}
	if (st != dnnl_success) {
		fail(err, errlen, "convolution primitive", st);
		goto out;
	}
	op = new_op();
	switch (d->prop) {
	case DL_CONV_FWD:
		if (add_arg(op, pd, DNNL_ARG_SRC, 0, &su, err, errlen) || add_arg(op, pd, DNNL_ARG_WEIGHTS, 0, &wu, err, errlen) ||
		    (d->bias && add_arg(op, pd, DNNL_ARG_BIAS, 0, &bu, err, errlen)) ||
		    add_arg(op, pd, DNNL_ARG_DST, 1, &du, err, errlen))
			goto out;
		if (d->sum && accumulate(op, err, errlen)) goto out;
		break;
	case DL_CONV_BWD_DATA:
		if (add_arg(op, pd, DNNL_ARG_DIFF_DST, 0, &du, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_WEIGHTS, 0, &wu, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_DIFF_SRC, 1, &su, err, errlen))
			goto out;
		break;
	default:
		if (add_arg(op, pd, DNNL_ARG_SRC, 0, &su, err, errlen) || add_arg(op, pd, DNNL_ARG_DIFF_DST, 0, &du, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_DIFF_WEIGHTS, 1, &wu, err, errlen) ||
		    (d->bias && add_arg(op, pd, DNNL_ARG_DIFF_BIAS, 1, &bu, err, errlen)))
			goto out;
	}
	if (finish(op, pd, err, errlen)) goto out;
	*out = op;
	op = NULL;
	rc = 0;
out:
	if (op) dl_op_destroy(op);
	if (pd) dnnl_primitive_desc_destroy(pd);
	if (hint) dnnl_primitive_desc_destroy(hint);
	if (po) dnnl_post_ops_destroy(po);
	if (attr) dnnl_primitive_attr_destroy(attr);
	return rc;
}

int dl_pool_create(const dl_pool_desc *d, dl_op **out, char *err, size_t errlen) {
	dnnl_memory_desc_t su, du, sa, da;
	if (user_md(&su, &d->src, err, errlen) || user_md(&du, &d->dst, err, errlen)) return 1;
	if (d->plain) {
		sa = su, da = du;
	} else {
		// The source blocked by name; the destination follows it.
		if (blocked_md(&sa, d->src.dims, err, errlen) || any_md(&da, &d->dst, err, errlen)) return 1;
	}
	dnnl_alg_kind_t alg = d->alg == DL_POOL_MAX           ? dnnl_pooling_max
	                      : d->alg == DL_POOL_AVG_INCLUDE ? dnnl_pooling_avg_include_padding
	                                                      : dnnl_pooling_avg_exclude_padding;
	dnnl_dims_t kernel, strides, pad_l, pad_r;
	dims2(kernel, d->kernel), dims2(strides, d->strides), dims2(pad_l, d->pad_l), dims2(pad_r, d->pad_r);
	dnnl_pooling_desc_t fd, bd;
	dnnl_primitive_desc_t hint = NULL, pd = NULL;
	dnnl_primitive_attr_t attr = user_scratchpad_attr();
	dnnl_post_ops_t po = NULL;
	dnnl_status_t st;
	int rc = 1;
	dl_op *op = NULL;
	int bwd = d->prop == DL_POOL_BWD;
	st = dnnl_pooling_forward_desc_init(&fd, d->prop == DL_POOL_FWD ? dnnl_forward_inference : dnnl_forward_training,
	                                    alg, &sa, &da, strides, kernel, pad_l, pad_r);
	if (st != dnnl_success) {
		fail(err, errlen, "pooling descriptor", st);
		goto out;
	}
	if (!bwd) {
		if (d->scale != 1.0f) {
			dnnl_post_ops_create(&po);
			dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_linear, d->scale, 0.0f);
			dnnl_primitive_attr_set_post_ops(attr, po);
		}
		st = dnnl_primitive_desc_create(&pd, &fd, attr, eng, NULL);
	} else {
		st = dnnl_primitive_desc_create(&hint, &fd, NULL, eng, NULL);
		if (st == dnnl_success) {
			st = dnnl_pooling_backward_desc_init(&bd, alg, &sa, &da, strides, kernel, pad_l, pad_r);
		}
		if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &bd, attr, eng, hint);
	}
	if (st != dnnl_success) {
		fail(err, errlen, "pooling primitive", st);
		goto out;
	}
	op = new_op();
	if (!bwd) {
		if (add_arg(op, pd, DNNL_ARG_SRC, 0, &su, err, errlen) || add_arg(op, pd, DNNL_ARG_DST, 1, &du, err, errlen))
			goto out;
		if (d->prop == DL_POOL_FWD_TRAINING && d->alg == DL_POOL_MAX &&
		    add_arg(op, pd, DNNL_ARG_WORKSPACE, 1, NULL, err, errlen))
			goto out;
	} else {
		if (add_arg(op, pd, DNNL_ARG_DIFF_DST, 0, &du, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_DIFF_SRC, 1, &su, err, errlen))
			goto out;
		if (d->alg == DL_POOL_MAX && add_arg(op, pd, DNNL_ARG_WORKSPACE, 0, NULL, err, errlen)) goto out;
	}
	if (finish(op, pd, err, errlen)) goto out;
	*out = op;
	op = NULL;
	rc = 0;
out:
	if (op) dl_op_destroy(op);
	if (pd) dnnl_primitive_desc_destroy(pd);
	if (hint) dnnl_primitive_desc_destroy(hint);
	if (po) dnnl_post_ops_destroy(po);
	if (attr) dnnl_primitive_attr_destroy(attr);
	return rc;
}

// Batch normalization over dims[1] of the data, with a scale and a shift:
// XLA's BatchNormTraining, BatchNormInference and BatchNormGrad.
int dl_bnorm_create(const dl_bnorm_desc *d, dl_op **out, char *err, size_t errlen) {
	dnnl_memory_desc_t du, cu, da;
	if (user_md(&du, &d->data, err, errlen)) return 1;
	da = du;
	if (!d->plain && d->data.ndims == 4 && blocked_md(&da, d->data.dims, err, errlen)) return 1;
	dnnl_dims_t cdims = {d->data.dims[1]};
	TRY("channel descriptor", dnnl_memory_desc_init_by_tag(&cu, 1, cdims, dnnl_f32, dnnl_a));
	unsigned flags = dnnl_use_scale | dnnl_use_shift;
	if (d->prop == DL_BN_FWD_INFERENCE) flags |= dnnl_use_global_stats;
	dnnl_batch_normalization_desc_t fd, bd;
	dnnl_primitive_desc_t hint = NULL, pd = NULL;
	dnnl_primitive_attr_t attr = user_scratchpad_attr();
	dnnl_status_t st;
	int rc = 1;
	dl_op *op = NULL;
	int bwd = d->prop == DL_BN_BWD;
	st = dnnl_batch_normalization_forward_desc_init(
	        &fd, d->prop == DL_BN_FWD_INFERENCE ? dnnl_forward_inference : dnnl_forward_training, &da, d->epsilon,
	        flags);
	if (st == dnnl_success) {
		if (!bwd) {
			st = dnnl_primitive_desc_create(&pd, &fd, attr, eng, NULL);
		} else {
			st = dnnl_primitive_desc_create(&hint, &fd, NULL, eng, NULL);
			if (st == dnnl_success)
				st = dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &da, &da, d->epsilon, flags);
			if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &bd, attr, eng, hint);
		}
	}
	if (st != dnnl_success) {
		fail(err, errlen, "batch normalization primitive", st);
		goto out;
	}
	op = new_op();
	switch (d->prop) {
	case DL_BN_FWD_TRAINING: // (src, scale, shift) -> (dst, mean, variance)
		if (add_arg(op, pd, DNNL_ARG_SRC, 0, &du, err, errlen) || add_arg(op, pd, DNNL_ARG_SCALE, 0, &cu, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_SHIFT, 0, &cu, err, errlen) || add_arg(op, pd, DNNL_ARG_DST, 1, &du, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_MEAN, 1, &cu, err, errlen) || add_arg(op, pd, DNNL_ARG_VARIANCE, 1, &cu, err, errlen))
			goto out;
		break;
	case DL_BN_FWD_INFERENCE: // (src, scale, shift, mean, variance) -> dst
		if (add_arg(op, pd, DNNL_ARG_SRC, 0, &du, err, errlen) || add_arg(op, pd, DNNL_ARG_SCALE, 0, &cu, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_SHIFT, 0, &cu, err, errlen) || add_arg(op, pd, DNNL_ARG_MEAN, 0, &cu, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_VARIANCE, 0, &cu, err, errlen) || add_arg(op, pd, DNNL_ARG_DST, 1, &du, err, errlen))
			goto out;
		break;
	default: // (src, scale, mean, variance, diff_dst) -> (diff_src, diff_scale, diff_shift)
		if (add_arg(op, pd, DNNL_ARG_SRC, 0, &du, err, errlen) || add_arg(op, pd, DNNL_ARG_SCALE, 0, &cu, err, errlen) ||
		    alias_arg(op, pd, DNNL_ARG_SHIFT, &cu, 1, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_MEAN, 0, &cu, err, errlen) || add_arg(op, pd, DNNL_ARG_VARIANCE, 0, &cu, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_DIFF_DST, 0, &du, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_DIFF_SRC, 1, &du, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_DIFF_SCALE, 1, &cu, err, errlen) ||
		    add_arg(op, pd, DNNL_ARG_DIFF_SHIFT, 1, &cu, err, errlen))
			goto out;
	}
	if (finish(op, pd, err, errlen)) goto out;
	*out = op;
	op = NULL;
	rc = 0;
out:
	if (op) dl_op_destroy(op);
	if (pd) dnnl_primitive_desc_destroy(pd);
	if (hint) dnnl_primitive_desc_destroy(hint);
	if (attr) dnnl_primitive_attr_destroy(attr);
	return rc;
}

// A matmul on the caller's layouts (oneDNN takes transposed or strided
// operands directly): src, wei -> dst.
int dl_matmul_create(const dl_matmul_desc *d, dl_op **out, char *err, size_t errlen) {
	dnnl_memory_desc_t su, wu, du;
	if (user_md(&su, &d->src, err, errlen) || user_md(&wu, &d->wei, err, errlen) || user_md(&du, &d->dst, err, errlen))
		return 1;
	dnnl_matmul_desc_t md;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_attr_t attr = user_scratchpad_attr();
	int rc = 1;
	dnnl_status_t st = dnnl_matmul_desc_init(&md, &su, &wu, NULL, &du);
	if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &md, attr, eng, NULL);
	if (st != dnnl_success)
		fail(err, errlen, "matmul primitive", st);
	else
		rc = make_op(pd, (bind[]){{DNNL_ARG_SRC, 0, &su}, {DNNL_ARG_WEIGHTS, 0, &wu}, {DNNL_ARG_DST, 1, &du}}, 3, out,
		             err, errlen);
	if (pd) dnnl_primitive_desc_destroy(pd);
	if (attr) dnnl_primitive_attr_destroy(attr);
	return rc;
}

// ReLU on flat data, multithreaded where the Go backend runs it on one
// core: forward (src -> dst), or backward from its output (dst, diff_dst
// -> diff_src). Flat, it runs on any layout its arguments share.
int dl_relu_create(const dl_relu_desc *d, dl_op **out, char *err, size_t errlen) {
	dnnl_memory_desc_t md;
	dnnl_dims_t dims = {d->n};
	TRY("descriptor", dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, dnnl_a));
	dnnl_eltwise_desc_t fd, bd;
	dnnl_primitive_desc_t hint = NULL, pd = NULL;
	dnnl_primitive_attr_t attr = user_scratchpad_attr();
	int rc = 1;
	dnnl_status_t st = dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, &md,
	                                                  0.0f, 0.0f);
	if (!d->backward) {
		if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &fd, attr, eng, NULL);
	} else {
		if (st == dnnl_success) st = dnnl_primitive_desc_create(&hint, &fd, NULL, eng, NULL);
		if (st == dnnl_success)
			st = dnnl_eltwise_backward_desc_init(&bd, dnnl_eltwise_relu_use_dst_for_bwd, &md, &md, 0.0f, 0.0f);
		if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &bd, attr, eng, hint);
	}
	if (st != dnnl_success)
		fail(err, errlen, "relu primitive", st);
	else if (!d->backward)
		rc = make_op(pd, (bind[]){{DNNL_ARG_SRC, 0, &md}, {DNNL_ARG_DST, 1, &md}}, 2, out, err, errlen);
	else
		rc = make_op(pd, (bind[]){{DNNL_ARG_DST, 0, &md}, {DNNL_ARG_DIFF_DST, 0, &md}, {DNNL_ARG_DIFF_SRC, 1, &md}}, 3, out,
		             err, errlen);
	if (pd) dnnl_primitive_desc_destroy(pd);
	if (hint) dnnl_primitive_desc_destroy(hint);
	if (attr) dnnl_primitive_attr_destroy(attr);
	return rc;
}

// A per-channel bias add (src, bias -> dst) on oneDNN's binary primitive,
// for the adds no convolution takes as a post-op (after a transposed
// convolution: oneDNN's backward-data primitive has no bias).
int dl_bias_create(const dl_bias_desc *d, dl_op **out, char *err, size_t errlen) {
	dnnl_memory_desc_t du, da, bu;
	if (user_md(&du, &d->src, err, errlen)) return 1;
	dnnl_dims_t bdims = {1, d->src.dims[1], 1, 1, 1};
	TRY("bias descriptor", dnnl_memory_desc_init_by_tag(&bu, d->src.ndims, bdims, dnnl_f32,
	                                                      d->src.ndims == 4 ? dnnl_abcd : dnnl_ab));
	// Blocked data takes its bias in the same blocked layout: with a plain
	// one, oneDNN 2.6 has only its reference binary (scalar, ~20x slower).
	dnnl_memory_desc_t ba = bu;
	da = du;
	if (!d->plain && d->src.ndims == 4 &&
	    (blocked_md(&da, d->src.dims, err, errlen) || blocked_md(&ba, bdims, err, errlen)))
		return 1;
	dnnl_binary_desc_t bd;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_attr_t attr = user_scratchpad_attr();
	int rc = 1;
	dnnl_status_t st = dnnl_binary_desc_init(&bd, dnnl_binary_add, &da, &ba, &da);
	if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &bd, attr, eng, NULL);
	if (st != dnnl_success)
		fail(err, errlen, "bias add primitive", st);
	else
		rc = make_op(pd, (bind[]){{DNNL_ARG_SRC_0, 0, &du}, {DNNL_ARG_SRC_1, 0, &bu}, {DNNL_ARG_DST, 1, &du}}, 3, out, err,
		             errlen);
	if (pd) dnnl_primitive_desc_destroy(pd);
	if (attr) dnnl_primitive_attr_destroy(attr);
	return rc;
}

int dl_op_nargs(const dl_op *op) { return op->nargs; }
size_t dl_op_workspace(const dl_op *op) { return op->workspace; }
const char *dl_op_impl(const dl_op *op) { return op->impl; }

// arg returns the first of op's arguments bound to the caller's buffer i.
static const dl_arg *arg(const dl_op *op, int i) {
	for (int k = 0; k < op->nprim; k++)
		if (op->args[k].ptr == i) return &op->args[k];
	return NULL;
}

int dl_op_reordered(const dl_op *op, int i) {
	const dl_arg *a = arg(op, i);
	return a && a->prim;
}

size_t dl_op_bytes(const dl_op *op, int i) {
	const dl_arg *a = arg(op, i);
	const dnnl_memory_desc_t *md;
	if (!a || dnnl_memory_get_memory_desc(a->prim ? a->prim : a->user, &md) != dnnl_success) return 0;
	return dnnl_memory_desc_get_size(md);
}

int dl_same_layout(const dl_op *a, int i, const dl_op *b, int j) {
	const dl_arg *x = arg(a, i), *y = arg(b, j);
	const dnnl_memory_desc_t *mx, *my;
	if (!x || !y || !x->prim || !y->prim) return 0;
	if (dnnl_memory_get_memory_desc(x->prim, &mx) != dnnl_success ||
	    dnnl_memory_get_memory_desc(y->prim, &my) != dnnl_success)
		return 0;
	return dnnl_memory_desc_equal(mx, my);
}

int dl_exec(dl_op *op, void **ptrs, unsigned raw, char *err, size_t errlen) {
	if (op->arena > arena_size) {
		free(arena);
		arena = (char *)aligned_alloc(64, op->arena);
		if (!arena) {
			arena_size = 0;
			snprintf(err, errlen, "out of memory for a %zu-byte scratch arena", op->arena);
			return 1;
		}
		arena_size = op->arena;
	}
	dnnl_exec_arg_t args[DL_MAX_ARGS + 2];
	int n = 0, rc = 0;
	for (int i = 0; i < op->nprim; i++) {
		dl_arg *a = &op->args[i];
		TRY("set buffer", dnnl_memory_set_data_handle(a->user, ptrs[a->ptr]));
		dnnl_memory_t m = a->user;
		if (a->prim && (raw >> a->ptr & 1)) {
			TRY("set buffer", dnnl_memory_set_data_handle(a->prim, ptrs[a->ptr]));
			m = a->prim;
		} else if (a->prim) {
			TRY("set buffer", dnnl_memory_set_data_handle(a->prim, arena + a->offset));
			m = a->prim;
			if (!a->out || a->acc) {
				dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, a->user}, {DNNL_ARG_TO, a->prim}};
				TRY("reorder", dnnl_primitive_execute(a->out ? a->reorder_in : a->reorder, strm, 2, r));
			}
		}
		args[n].arg = a->arg;
		args[n].memory = m;
		n++;
	}
	if (op->scratchpad) {
		TRY("set buffer", dnnl_memory_set_data_handle(op->scratchpad, arena + op->scratchpad_offset));
		args[n].arg = DNNL_ARG_SCRATCHPAD;
		args[n].memory = op->scratchpad;
		n++;
	}
	dnnl_status_t st = dnnl_primitive_execute(op->prim, strm, n, args);
	if (st != dnnl_success) rc = fail(err, errlen, "execute", st);
	for (int i = 0; rc == 0 && i < op->nprim; i++) {
		dl_arg *a = &op->args[i];
		if (a->prim && a->out && !(raw >> a->ptr & 1)) {
			dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, a->prim}, {DNNL_ARG_TO, a->user}};
			st = dnnl_primitive_execute(a->reorder, strm, 2, r);
			if (st != dnnl_success) rc = fail(err, errlen, "reorder", st);
		}
	}
	if (rc == 0) {
		st = dnnl_stream_wait(strm);
		if (st != dnnl_success) rc = fail(err, errlen, "wait", st);
	}
	// Keep no caller pointer past the call (cgo's rule for Go memory).
	for (int i = 0; i < op->nprim; i++) {
		dnnl_memory_set_data_handle(op->args[i].user, NULL);
		if (op->args[i].prim && (raw >> op->args[i].ptr & 1)) dnnl_memory_set_data_handle(op->args[i].prim, NULL);
	}
	return rc;
}

void dl_op_destroy(dl_op *op) {
	if (!op) return;
	for (int i = 0; i < op->nprim; i++) {
		dl_arg *a = &op->args[i];
		if (a->user) dnnl_memory_destroy(a->user);
		if (a->prim) dnnl_memory_destroy(a->prim);
		if (a->reorder) dnnl_primitive_destroy(a->reorder);
		if (a->reorder_in) dnnl_primitive_destroy(a->reorder_in);
	}
	if (op->scratchpad) dnnl_memory_destroy(op->scratchpad);
	if (op->prim) dnnl_primitive_destroy(op->prim);
	free(op);
}
