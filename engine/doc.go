// Package engine runs GoMLX's pure-Go backend with its heavy ops on oneDNN:
// convolutions (forward, and the input and kernel gradients that autodiff
// emits as convolutions), pooling (forward, and the max pool's gradient,
// SelectAndScatterMax, which the Go backend lacks), batch normalization,
// large matmuls, ReLU and its gradient, and per-channel bias adds.
//
// Wrap puts it under any graph: nn's blocks, ONNX models imported by
// onnx-gomlx, and their gradients, with no change to graph code. It records
// each function as it is built (record.go), and at Compile cuts it into Go
// segments, each compiled by the Go backend, and the ops between them that
// run as oneDNN primitives on the backend's own buffers (plan.go,
// kernels.go, pool.go, elementwise.go; the primitives in package dnnl),
// keeping values in oneDNN's blocked layout between primitives (regions)
// and each executable's released outputs for its next run (outputs.go). A function it cannot
// replay, and any op oneDNN cannot take, runs on the Go backend with the
// lowering of package lower (convolutions as memmove + matmul), counted in
// Stats and logged once.
//
// Built with -tags nodnnl (no cgo, no libdnnl: the GPU binary), Wrap
// returns the lowering alone.
package engine
