// Package dnnl runs oneDNN primitives (Debian's libdnnl-dev 2.6, through
// cgo) on caller-owned float32 buffers: convolutions forward and their two
// gradients, and pooling forward and backward. A primitive is created once
// per configuration (a comparable spec) and cached; every call runs on one
// OS thread, so OpenMP keeps one team of threads, sized once.
//
// The caller's buffers are Go memory: each is passed as an argument of the
// single C call that binds and executes it, and C keeps no pointer after
// that call returns (cgo's pointer rules).
//
// With -tags nodnnl the package is empty.
package dnnl
