package onnxlegal

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The model is read and written at the protobuf wire level: onnx-gomlx
// keeps its generated proto types internal, and generating our own from
// onnx.proto would be a copy of third-party source. Only what legalization
// reads or edits is decoded (nodes, the headers of initializers, the value
// infos of inputs and outputs); every other field, and every node and
// tensor left alone, is written back byte for byte as it was read, so a
// 100 MB file costs one pass over its tags and one copy.
//
// Field numbers are those of onnx.proto (IR version 3 to 10):
const (
	fModelGraph = 7
	fModelOpset = 8

	fGraphNode      = 1
	fGraphInit      = 5
	fGraphInput     = 11
	fGraphOutput    = 12
	fGraphValueInfo = 13

	fNodeInput  = 1
	fNodeOutput = 2
	fNodeName   = 3
	fNodeOp     = 4
	fNodeAttr   = 5
	fNodeDomain = 7

	fAttrName   = 1
	fAttrF      = 2
	fAttrI      = 3
	fAttrS      = 4
	fAttrT      = 5
	fAttrG      = 6
	fAttrFloats = 7
	fAttrInts   = 8
	fAttrGraphs = 11
	fAttrType   = 20

	fTensorDims     = 1
	fTensorDType    = 2
	fTensorFloats   = 4
	fTensorInt32s   = 5
	fTensorInt64s   = 7
	fTensorName     = 8
	fTensorRaw      = 9
	fTensorDoubles  = 10
	fTensorLocation = 14

	fValueName  = 1
	fValueType  = 2
	fTypeTensor = 1
	fTTElem     = 1
	fTTShape    = 2
	fShapeDim   = 1
	fDimValue   = 1

	fOpsetDomain  = 1
	fOpsetVersion = 2
)

// AttributeProto.AttributeType values.
const (
	attrFloat  = 1
	attrInt    = 2
	attrString = 3
	attrTensor = 4
	attrGraph  = 5
	attrFloats = 6
	attrInts   = 7
	attrGraphs = 10
)

// TensorProto.DataType values.
const (
	Float32 = 1
	Uint8   = 2
	Int8    = 3
	Int32   = 6
	Int64   = 7
	Bool    = 9
	Float16 = 10
	Float64 = 11
)

// field is one encoded field (tag included), kept to be written back.
type field struct {
	num protowire.Number
	raw []byte
}

// Model is an ONNX ModelProto: its graph decoded, the rest kept as read.
type Model struct {
	fields []field // ModelProto's fields in file order; fModelGraph is re-encoded
	Graph  *Graph
	// Opset is the version of the default ("" / "ai.onnx") operator set.
	Opset int64
}

// Graph is the main GraphProto. Sub-graphs (If/Loop bodies) stay inside
// their node's attribute bytes, unread.
type Graph struct {
	Nodes                      []*Node
	Inits                      []*Tensor
	Inputs, Outputs, ValueInfo []*ValueInfo
	rest                       []field
}

// Node is a NodeProto.
type Node struct {
	Name, Op, Domain string
	Inputs, Outputs  []string
	Attrs            []*Attr
	raw              []byte // as read; nil once edited or for a new node
	rest             []field
}

// Attr is an AttributeProto. Graph-valued attributes keep their bytes.
type Attr struct {
	Name   string
	Type   int32
	F      float32
	I      int64
	S      string
	T      *Tensor
	Floats []float32
	Ints   []int64
	raw    []byte
}

// Tensor is a TensorProto: name, type and dims decoded; the data decoded
// only when asked for (Float64s, Int64s).
type Tensor struct {
	Name     string
	DType    int32
	Dims     []int64
	raw      []byte // the whole encoded TensorProto as read; nil for a new one
	data     []byte // raw_data
	floats   []float32
	doubles  []float64
	ints     []int64
	int32s   []int32
	external bool
}

// ValueInfo is a graph input, output or value_info: a tensor's name, type
// and dims (-1 where unknown or symbolic).
type ValueInfo struct {
	Name     string
	ElemType int32
	Dims     []int64 // nil: rank unknown
	raw      []byte
}

// Read decodes an ONNX model file's bytes. It keeps slices of b: b must
// not change while the model is used.
func Read(b []byte) (*Model, error) {
	m := &Model{}
	haveGraph := false
	err := fields(b, func(num protowire.Number, typ protowire.Type, v, raw []byte) error {
		m.fields = append(m.fields, field{num, raw})
		switch num {
		case fModelGraph:
			if typ != protowire.BytesType {
				return errors.New("bad graph field")
			}
			g, err := readGraph(v)
			if err != nil {
				return err
			}
			m.Graph, haveGraph = g, true
		case fModelOpset:
			var domain string
			var version int64
			err := fields(v, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
				switch num {
				case fOpsetDomain:
					domain = string(v)
				case fOpsetVersion:
					version = varint(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if domain == "" || domain == "ai.onnx" {
				m.Opset = version
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("not an ONNX model: %w", err)
	}
	if !haveGraph || len(m.Graph.Nodes) == 0 {
		return nil, errors.New("not an ONNX model: no graph nodes")
	}
	if m.Opset == 0 {
		return nil, errors.New("not an ONNX model: no default operator set version")
	}
	return m, nil
}

func readGraph(b []byte) (*Graph, error) {
	g := &Graph{}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v, raw []byte) error {
		var err error
		switch num {
		case fGraphNode:
			var n *Node
			n, err = readNode(v)
			g.Nodes = append(g.Nodes, n)
		case fGraphInit:
			var t *Tensor
			t, err = readTensor(v)
			g.Inits = append(g.Inits, t)
		case fGraphInput, fGraphOutput, fGraphValueInfo:
			var vi *ValueInfo
			vi, err = readValueInfo(v)
			switch num {
			case fGraphInput:
				g.Inputs = append(g.Inputs, vi)
			case fGraphOutput:
				g.Outputs = append(g.Outputs, vi)
			default:
				g.ValueInfo = append(g.ValueInfo, vi)
			}
		default:
			g.rest = append(g.rest, field{num, raw})
		}
		return err
	})
	return g, err
}

func readNode(b []byte) (*Node, error) {
	n := &Node{raw: b}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v, raw []byte) error {
		switch num {
		case fNodeInput:
			n.Inputs = append(n.Inputs, string(v))
		case fNodeOutput:
			n.Outputs = append(n.Outputs, string(v))
		case fNodeName:
			n.Name = string(v)
		case fNodeOp:
			n.Op = string(v)
		case fNodeDomain:
			n.Domain = string(v)
		case fNodeAttr:
			a, err := readAttr(v)
			if err != nil {
				return fmt.Errorf("node %q: %w", n.Name, err)
			}
			n.Attrs = append(n.Attrs, a)
		default:
			n.rest = append(n.rest, field{num, raw})
		}
		return nil
	})
	return n, err
}

func readAttr(b []byte) (*Attr, error) {
	a := &Attr{raw: b}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
		switch num {
		case fAttrName:
			a.Name = string(v)
		case fAttrType:
			a.Type = int32(varint(v))
		case fAttrF:
			if f, n := protowire.ConsumeFixed32(v); n == 4 {
				a.F = math.Float32frombits(f)
			}
		case fAttrI:
			a.I = varint(v)
		case fAttrS:
			a.S = string(v)
		case fAttrT:
			t, err := readTensor(v)
			if err != nil {
				return err
			}
			a.T = t
		case fAttrFloats:
			a.Floats = appendFloat32s(a.Floats, typ, v)
		case fAttrInts:
			a.Ints = appendVarints(a.Ints, typ, v)
		}
		return nil
	})
	return a, err
}

func readTensor(b []byte) (*Tensor, error) {
	t := &Tensor{raw: b}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
		switch num {
		case fTensorDims:
			t.Dims = appendVarints(t.Dims, typ, v)
		case fTensorDType:
			t.DType = int32(varint(v))
		case fTensorName:
			t.Name = string(v)
		case fTensorRaw:
			t.data = v
		case fTensorFloats:
			t.floats = appendFloat32s(t.floats, typ, v)
		case fTensorDoubles:
			t.doubles = appendFloat64s(t.doubles, typ, v)
		case fTensorInt64s:
			t.ints = appendVarints(t.ints, typ, v)
		case fTensorInt32s:
			for _, x := range appendVarints(nil, typ, v) {
				t.int32s = append(t.int32s, int32(x))
			}
		case fTensorLocation:
			t.external = varint(v) == 1
		}
		return nil
	})
	if t.Dims == nil {
		t.Dims = []int64{} // a scalar: rank 0, not unknown
	}
	return t, err
}

func readValueInfo(b []byte) (*ValueInfo, error) {
	vi := &ValueInfo{raw: b}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
		switch num {
		case fValueName:
			vi.Name = string(v)
		case fValueType:
			return fields(v, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
				if num != fTypeTensor {
					return nil
				}
				return fields(v, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
					switch num {
					case fTTElem:
						vi.ElemType = int32(varint(v))
					case fTTShape:
						vi.Dims = []int64{}
						return fields(v, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
							if num != fShapeDim {
								return nil
							}
							d := int64(-1)
							err := fields(v, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
								if num == fDimValue {
									d = varint(v)
								}
								return nil
							})
							vi.Dims = append(vi.Dims, d)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	return vi, err
}

// fields calls fn for each field of the message b with its number, wire
// type, value (the payload of a length-delimited field, the encoded
// varint or fixed value otherwise) and whole encoding.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v, raw []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errors.New("bad protobuf tag")
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return fmt.Errorf("bad protobuf field %d", num)
		}
		v := b[n : n+m]
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(v)
		}
		if err := fn(num, typ, v, b[:n+m]); err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}

func varint(v []byte) int64 {
	x, n := protowire.ConsumeVarint(v)
	if n < 0 {
		return 0
	}
	return int64(x)
}

// appendVarints decodes one varint or a packed run of them.
func appendVarints(out []int64, typ protowire.Type, v []byte) []int64 {
	if typ == protowire.VarintType {
		return append(out, varint(v))
	}
	for len(v) > 0 {
		x, n := protowire.ConsumeVarint(v)
		if n < 0 {
			break
		}
		out = append(out, int64(x))
		v = v[n:]
	}
	return out
}

func appendFloat32s(out []float32, typ protowire.Type, v []byte) []float32 {
	for len(v) >= 4 {
		x, _ := protowire.ConsumeFixed32(v)
		out = append(out, math.Float32frombits(x))
		v = v[4:]
	}
	return out
}

func appendFloat64s(out []float64, typ protowire.Type, v []byte) []float64 {
	for len(v) >= 8 {
		x, _ := protowire.ConsumeFixed64(v)
		out = append(out, math.Float64frombits(x))
		v = v[8:]
	}
	return out
}

// Bytes encodes the model: unchanged nodes, tensors and fields as they
// were read. The graph's pieces are sized first so that a large model is
// copied once, into a buffer of the right size.
func (m *Model) Bytes() []byte {
	pieces := m.Graph.pieces()
	glen := 0
	for _, p := range pieces {
		glen += p.size()
	}
	size := 0
	for _, f := range m.fields {
		if f.num == fModelGraph {
			size += protowire.SizeTag(fModelGraph) + protowire.SizeBytes(glen)
		} else {
			size += len(f.raw)
		}
	}
	out := make([]byte, 0, size)
	for _, f := range m.fields {
		if f.num != fModelGraph {
			out = append(out, f.raw...)
			continue
		}
		out = protowire.AppendTag(out, fModelGraph, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(glen))
		for _, p := range pieces {
			if p.num == 0 {
				out = append(out, p.b...)
			} else {
				out = appendMsg(out, p.num, p.b)
			}
		}
	}
	return out
}

// piece is one field of the graph: a message of field num, or (num 0)
// bytes already encoded with their tag.
type piece struct {
	num protowire.Number
	b   []byte
}

func (p piece) size() int {
	if p.num == 0 {
		return len(p.b)
	}
	return protowire.SizeTag(p.num) + protowire.SizeBytes(len(p.b))
}

func (g *Graph) pieces() []piece {
	var ps []piece
	for _, n := range g.Nodes {
		ps = append(ps, piece{fGraphNode, n.encode()})
	}
	for _, f := range g.rest {
		ps = append(ps, piece{0, f.raw})
	}
	for _, t := range g.Inits {
		ps = append(ps, piece{fGraphInit, t.encode()})
	}
	for _, list := range []struct {
		num protowire.Number
		vs  []*ValueInfo
	}{{fGraphInput, g.Inputs}, {fGraphOutput, g.Outputs}, {fGraphValueInfo, g.ValueInfo}} {
		for _, vi := range list.vs {
			ps = append(ps, piece{list.num, vi.raw})
		}
	}
	return ps
}

func appendMsg(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendPacked(b []byte, num protowire.Number, vs []int64) []byte {
	var p []byte
	for _, v := range vs {
		p = protowire.AppendVarint(p, uint64(v))
	}
	return appendMsg(b, num, p)
}

func (n *Node) encode() []byte {
	if n.raw != nil {
		return n.raw
	}
	var b []byte
	for _, in := range n.Inputs {
		b = appendString(b, fNodeInput, in)
	}
	for _, o := range n.Outputs {
		b = appendString(b, fNodeOutput, o)
	}
	if n.Name != "" {
		b = appendString(b, fNodeName, n.Name)
	}
	b = appendString(b, fNodeOp, n.Op)
	if n.Domain != "" {
		b = appendString(b, fNodeDomain, n.Domain)
	}
	for _, a := range n.Attrs {
		b = appendMsg(b, fNodeAttr, a.encode())
	}
	for _, f := range n.rest {
		b = append(b, f.raw...)
	}
	return b
}

func (a *Attr) encode() []byte {
	if a.raw != nil {
		return a.raw
	}
	b := appendString(nil, fAttrName, a.Name)
	b = appendVarint(b, fAttrType, int64(a.Type))
	switch a.Type {
	case attrFloat:
		b = protowire.AppendTag(b, fAttrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case attrInt:
		b = appendVarint(b, fAttrI, a.I)
	case attrString:
		b = appendString(b, fAttrS, a.S)
	case attrTensor:
		b = appendMsg(b, fAttrT, a.T.encode())
	case attrFloats:
		var p []byte
		for _, f := range a.Floats {
			p = protowire.AppendFixed32(p, math.Float32bits(f))
		}
		b = appendMsg(b, fAttrFloats, p)
	case attrInts:
		b = appendPacked(b, fAttrInts, a.Ints)
	}
	return b
}

func (t *Tensor) encode() []byte {
	if t.raw != nil {
		return t.raw
	}
	var b []byte
	if len(t.Dims) > 0 {
		b = appendPacked(b, fTensorDims, t.Dims)
	}
	b = appendVarint(b, fTensorDType, int64(t.DType))
	if t.Name != "" {
		b = appendString(b, fTensorName, t.Name)
	}
	return appendMsg(b, fTensorRaw, t.data)
}

// Attr returns the node's attribute of that name, or nil.
func (n *Node) Attr(name string) *Attr {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Int returns an int attribute or def.
func (n *Node) Int(name string, def int64) int64 {
	if a := n.Attr(name); a != nil {
		return a.I
	}
	return def
}

// Float returns a float attribute or def.
func (n *Node) Float(name string, def float32) float32 {
	if a := n.Attr(name); a != nil {
		return a.F
	}
	return def
}

// String returns a string attribute or def.
func (n *Node) String(name string, def string) string {
	if a := n.Attr(name); a != nil {
		return a.S
	}
	return def
}

// Ints returns an ints attribute or nil.
func (n *Node) Ints(name string) []int64 {
	if a := n.Attr(name); a != nil {
		return a.Ints
	}
	return nil
}

// Label names a node in messages: its name, else its first output.
func (n *Node) Label() string {
	if n.Name != "" || len(n.Outputs) == 0 {
		return n.Name
	}
	return n.Outputs[0]
}
