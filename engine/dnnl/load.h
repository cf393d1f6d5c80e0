// oneDNN's functions, loaded with dlopen when the engine starts rather than
// linked: a machine without Debian's libdnnl2 still runs every command
// that needs no engine, and the engine says in one line which package to
// install. Every file that calls oneDNN includes this header instead of
// dnnl.h: the names below then call through the pointers dl_load sets.
#ifndef DL_LOAD_H
#define DL_LOAD_H

#include <oneapi/dnnl/dnnl.h>
#include <stddef.h>

#define DL_FUNCS(X) \
	X(dnnl_batch_normalization_backward_desc_init) \
	X(dnnl_batch_normalization_forward_desc_init) \
	X(dnnl_binary_desc_init) \
	X(dnnl_dilated_convolution_backward_data_desc_init) \
	X(dnnl_dilated_convolution_backward_weights_desc_init) \
	X(dnnl_dilated_convolution_forward_desc_init) \
	X(dnnl_engine_create) \
	X(dnnl_eltwise_forward_desc_init) \
	X(dnnl_eltwise_backward_desc_init) \
	X(dnnl_matmul_desc_init) \
	X(dnnl_memory_create) \
	X(dnnl_memory_desc_equal) \
	X(dnnl_memory_desc_get_size) \
	X(dnnl_memory_desc_init_by_strides) \
	X(dnnl_memory_desc_init_by_tag) \
	X(dnnl_memory_destroy) \
	X(dnnl_memory_get_memory_desc) \
	X(dnnl_memory_set_data_handle) \
	X(dnnl_pooling_backward_desc_init) \
	X(dnnl_pooling_forward_desc_init) \
	X(dnnl_post_ops_append_eltwise) \
	X(dnnl_post_ops_append_sum) \
	X(dnnl_post_ops_create) \
	X(dnnl_post_ops_destroy) \
	X(dnnl_primitive_attr_create) \
	X(dnnl_primitive_attr_destroy) \
	X(dnnl_primitive_attr_set_post_ops) \
	X(dnnl_primitive_attr_set_scratchpad_mode) \
	X(dnnl_primitive_create) \
	X(dnnl_primitive_desc_create) \
	X(dnnl_primitive_desc_destroy) \
	X(dnnl_primitive_desc_query) \
	X(dnnl_primitive_desc_query_md) \
	X(dnnl_primitive_destroy) \
	X(dnnl_primitive_execute) \
	X(dnnl_reorder_primitive_desc_create) \
	X(dnnl_stream_create) \
	X(dnnl_stream_wait)

#define DL_DECLARE(f) extern __typeof__(&f) dl_##f;
DL_FUNCS(DL_DECLARE)
#undef DL_DECLARE

// dl_load opens libdnnl (name: "libdnnl.so.2" or a path) and, through it,
// libgomp, once.
int dl_load(const char *name, char *err, size_t errlen);

// dl_omp_set_num_threads is libgomp's omp_set_num_threads.
extern void (*dl_omp_set_num_threads)(int);

#ifndef DL_LOAD_DEFINE
#define dnnl_batch_normalization_backward_desc_init (*dl_dnnl_batch_normalization_backward_desc_init)
#define dnnl_batch_normalization_forward_desc_init (*dl_dnnl_batch_normalization_forward_desc_init)
#define dnnl_binary_desc_init (*dl_dnnl_binary_desc_init)
#define dnnl_dilated_convolution_backward_data_desc_init (*dl_dnnl_dilated_convolution_backward_data_desc_init)
#define dnnl_dilated_convolution_backward_weights_desc_init (*dl_dnnl_dilated_convolution_backward_weights_desc_init)
#define dnnl_dilated_convolution_forward_desc_init (*dl_dnnl_dilated_convolution_forward_desc_init)
#define dnnl_engine_create (*dl_dnnl_engine_create)
#define dnnl_eltwise_forward_desc_init (*dl_dnnl_eltwise_forward_desc_init)
#define dnnl_eltwise_backward_desc_init (*dl_dnnl_eltwise_backward_desc_init)
#define dnnl_matmul_desc_init (*dl_dnnl_matmul_desc_init)
#define dnnl_memory_create (*dl_dnnl_memory_create)
#define dnnl_memory_desc_equal (*dl_dnnl_memory_desc_equal)
#define dnnl_memory_desc_get_size (*dl_dnnl_memory_desc_get_size)
#define dnnl_memory_desc_init_by_strides (*dl_dnnl_memory_desc_init_by_strides)
#define dnnl_memory_desc_init_by_tag (*dl_dnnl_memory_desc_init_by_tag)
#define dnnl_memory_destroy (*dl_dnnl_memory_destroy)
#define dnnl_memory_get_memory_desc (*dl_dnnl_memory_get_memory_desc)
#define dnnl_memory_set_data_handle (*dl_dnnl_memory_set_data_handle)
#define dnnl_pooling_backward_desc_init (*dl_dnnl_pooling_backward_desc_init)
#define dnnl_pooling_forward_desc_init (*dl_dnnl_pooling_forward_desc_init)
#define dnnl_post_ops_append_eltwise (*dl_dnnl_post_ops_append_eltwise)
#define dnnl_post_ops_append_sum (*dl_dnnl_post_ops_append_sum)
#define dnnl_post_ops_create (*dl_dnnl_post_ops_create)
#define dnnl_post_ops_destroy (*dl_dnnl_post_ops_destroy)
#define dnnl_primitive_attr_create (*dl_dnnl_primitive_attr_create)
#define dnnl_primitive_attr_destroy (*dl_dnnl_primitive_attr_destroy)
#define dnnl_primitive_attr_set_post_ops (*dl_dnnl_primitive_attr_set_post_ops)
#define dnnl_primitive_attr_set_scratchpad_mode (*dl_dnnl_primitive_attr_set_scratchpad_mode)
#define dnnl_primitive_create (*dl_dnnl_primitive_create)
#define dnnl_primitive_desc_create (*dl_dnnl_primitive_desc_create)
#define dnnl_primitive_desc_destroy (*dl_dnnl_primitive_desc_destroy)
#define dnnl_primitive_desc_query (*dl_dnnl_primitive_desc_query)
#define dnnl_primitive_desc_query_md (*dl_dnnl_primitive_desc_query_md)
#define dnnl_primitive_destroy (*dl_dnnl_primitive_destroy)
#define dnnl_primitive_execute (*dl_dnnl_primitive_execute)
#define dnnl_reorder_primitive_desc_create (*dl_dnnl_reorder_primitive_desc_create)
#define dnnl_stream_create (*dl_dnnl_stream_create)
#define dnnl_stream_wait (*dl_dnnl_stream_wait)
#endif

#endif
