// Package nn holds the GoMLX building blocks that dl4img models share:
// Conv2D and ConvTranspose2D (GoMLX's convolution, with the gradients
// GoMLX lacks or gets wrong attached by hand), max pooling, batch norm,
// GRU / bidirectional GRU, CTC loss (in graph) and CTC decoding (on the
// host).
//
// Layers follow the GoMLX examples style: functions of (*model.Scope, *Node,
// config) returning *Node, with the functional core (…Op) taking weights as
// nodes. Images are channels-last (NHWC) and kernels HWIO; the docs of each
// block say how to map torch weights. Nothing here depends on the backend:
// on the pure-Go one the engine (package engine) runs the convolutions,
// pools and their gradients on oneDNN. Relu is activation.Relu with a
// cheaper hand-written gradient.
//
// Dropout (layers.Dropout), Dense (layers.Dense) and L2 regularization
// (regularizer.L2 / regularizer.ParamL2) are GoMLX's own and are used
// directly.
package nn
