// Package onnxlegal rewrites an ONNX model, at the protobuf level, into
// the ops and attributes that the pinned ONNX import (onnx-gomlx v0.5.0)
// converts with the semantics ONNX gives them: "legalization", as
// onnxruntime's graph transformers and onnx-simplifier rewrite graphs
// before a backend sees them. The import stays a pinned dependency,
// unforked; what it lacks is expressed in what it has:
//
//   - pooling: ceil_mode and auto_pad as explicit pads, a missing strides
//     as 1 (the import used the kernel size), a padded AveragePool
//     (count_include_pad 0 or 1) as zero blocks, the mean and a constant
//     K/count, dilated MaxPool as strided Slices and Max, GlobalMaxPool as
//     ReduceMax; Conv's auto_pad as explicit pads;
//   - ConvTranspose as a Conv over the zero-interleaved input with the
//     flipped, transposed kernel (a new initializer), covering strides,
//     pads, output_padding, output_shape, auto_pad, dilations and groups;
//   - HardSigmoid, HardSwish, LeakyRelu and PRelu as element-wise ops;
//     LRN and InstanceNormalization as element-wise ops and reductions;
//     DepthToSpace and SpaceToDepth as Reshape and Transpose; Resize and
//     Upsample with constant scales or sizes as repetition or MatMuls by
//     constant interpolation matrices;
//   - older or computed forms the import misreads or refuses: Clip-6's
//     attributes, Pad-2's and Slice-1's attributes, pads computed by shape
//     arithmetic, Slices with negative steps, Pad's edge and reflect modes,
//     Dropout in inference, BatchNormalization's training-only attributes,
//     Einsum equations with spaces;
//   - what GoMLX cannot differentiate, so that fine-tuning works through
//     the rewritten graph: every Pad becomes Concats of filled blocks,
//     every Identity an alias of its input, and the Conv a ConvTranspose
//     becomes gets an odd kernel.
//
// Each rewrite's comment names the ONNX operator version it implements.
// A node that is neither imported nor rewritten is an *UnsupportedError
// whose message is one line naming the node, the op and the reason.
//
// The graph is read with the dims of its inputs (the caller fixes the
// image size) and shapes are inferred as it is rewritten, since several
// rewrites depend on spatial sizes.
package onnxlegal

// Version changes whenever a rewrite changes what a legalized model
// computes, so that results cached from an earlier legalization can be
// told apart.
const Version = 1
