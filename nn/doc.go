// Package nn holds the GoMLX building blocks that dl4img models share:
// Conv2D (im2col on the pure-Go backend, native convolution on XLA),
// trainable transposed convolution, max pooling that trains on every backend,
// GRU / bidirectional GRU, CTC loss (in graph) and CTC decoding (on the host).
//
// Layers follow the GoMLX examples style: functions of (*model.Scope, *Node,
// config) returning *Node, with the functional core (…Op) taking weights as
// nodes. Layouts are channels-last (NHWC) by default and kernels HWIO; the
// package docs of each block say how to map torch weights. The image blocks
// (Conv2D, ConvTranspose2D, MaxPool2DIn, BatchNormIn) also take the
// channels-major layout CBHW, which PreferredLayout picks on the pure-Go
// backend: there a network kept in CBHW between its first and last
// convolution trains markedly faster (see convframe.go); on XLA
// PreferredLayout is NHWC and the graphs are unchanged. Relu is
// activation.Relu with a cheaper hand-written gradient on the pure-Go backend.
//
// BatchNorm (norm.BatchNorm), Dropout (layers.Dropout), Dense (layers.Dense)
// and L2 regularization (regularizer.L2 / regularizer.ParamL2) are GoMLX's own
// and are used directly.
package nn
