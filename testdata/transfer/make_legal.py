#!/usr/bin/python3
"""Makes the fixtures of dl4img's ONNX legalization (package onnxlegal):
small models, each exercising one rewrite or a block of a real backbone,
with PyTorch's outputs and gradients for one fixed input. Run once, outputs
committed (about 0.5 MB):

    /usr/bin/python3 testdata/transfer/make_legal.py   # from the repo root

Needs Debian's python3-torch (1.13), python3-torchvision and python3-onnx
(the nodes torch does not emit are written with onnx.helper). Weights are
random with a fixed seed.

Outputs, in testdata/transfer/legal/:
  NAME.onnx   one model per case, input "x", output "y" (see CASES below:
              torch's own export where torch emits the op, else a node
              written by hand with the attributes under test).
  ref.json    per case: the input dims, PyTorch's output (and its dims) and
              the gradient of sum(y * pattern(y)) with respect to x, as
              base64 little-endian float32; for ConvTranspose cases also
              the gradient with respect to the weights ("wgrad", named by
              "weight", with the layer's "groups"). The input and pattern are formulas the Go test
              computes too (inputValues, pattern in transfer/legal_test.go).
              The references are PyTorch functions of the same semantics
              (F.max_pool2d with ceil_mode, F.conv_transpose2d, ...), or,
              where PyTorch has no such function (ONNX's asymmetric linear
              Upsample, DCR DepthToSpace, an even LRN window), a few lines
              of torch tensor ops written from the ONNX definition.
  unsupported-attr.onnx  an AveragePool with dilations (AveragePool-19),
              which the legalization refuses: the one-line error's fixture.
  blocks.json for the backbone blocks (googlenet-block, mobilenetv3-block,
              convnext-mini and the Keras-style NHWC models): input size,
              layout and PyTorch's features at the classifier's input for
              two images (image() of make_backbones.py), as ref.json of
              backbones/.
"""
import base64
import json
import math
import os

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torchvision.models import convnext, mobilenetv3
from torchvision.models.googlenet import BasicConv2d, Inception

from make_backbones import image, randomize_bn  # the same images and batch-norm statistics

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "legal")
torch.manual_seed(7)


def input_values(n):
    """The test input: transfer/legal_test.go's inputValues."""
    k = np.arange(n, dtype=np.float64)
    return (np.sin(0.37 * k + 1.1) * 1.5 + 0.3 * np.cos(0.05 * k)).astype(np.float32)


def pattern(n):
    """The loss weights: transfer/legal_test.go's pattern."""
    k = np.arange(n, dtype=np.float64)
    return (np.sin(0.61 * k + 0.3) * np.cos(0.13 * k)).astype(np.float32)


def b64(t):
    return base64.b64encode(np.ascontiguousarray(t.detach().numpy(), dtype="<f4").tobytes()).decode()


REF = {}


def record(name, dims, fn, weight=None, groups=1):
    """Runs fn on the fixed input; records output and gradients."""
    x = torch.from_numpy(input_values(int(np.prod(dims))).reshape(dims)).requires_grad_(True)
    y = fn(x)
    (y * torch.from_numpy(pattern(y.numel())).reshape(y.shape)).sum().backward()
    r = {"dims": list(dims), "out_dims": list(y.shape), "output": b64(y), "grad": b64(x.grad)}
    if weight is not None:
        r["weight"], r["wgrad"], r["groups"] = weight[0], b64(weight[1].grad), groups
    REF[name] = r


def export(name, module, dims, opset=13):
    module.eval()
    x = torch.from_numpy(input_values(int(np.prod(dims))).reshape(dims))
    torch.onnx.export(module, x, os.path.join(OUT, name + ".onnx"), input_names=["x"], output_names=["y"],
                      opset_version=opset, do_constant_folding=True)
    record(name, dims, module)


def hand(name, op, dims, ref, attrs=None, inits=(), opset=13, extra_inputs=()):
    """A one-node model: x (and initializers, or "" for absent optional
    inputs) → op → y."""
    x = torch.from_numpy(input_values(int(np.prod(dims))).reshape(dims))
    with torch.no_grad():
        out_dims = list(ref(x).shape)
    init_protos = [numpy_helper.from_array(v, n) for n, v in inits]
    node = helper.make_node(op, ["x"] + list(extra_inputs), ["y"], name=name + "_node", **(attrs or {}))
    g = helper.make_graph([node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)], init_protos)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    onnx.save(m, os.path.join(OUT, name + ".onnx"))
    record(name, dims, ref)


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def same_pads(n, k, s, d=1, upper=True):
    out = -(-n // s)
    total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


def sum_count_avg(x, k, s, pads):
    """Average pooling that excludes the padding from the count."""
    xp = F.pad(x, pads)
    ones = F.pad(torch.ones_like(x), pads)
    return F.avg_pool2d(xp, k, s) / F.avg_pool2d(ones, k, s)


def pooling_cases():
    d = (2, 3, 10, 10)
    export("maxpool_ceil", nn.MaxPool2d(3, 2, ceil_mode=True), d)
    # The last window would start in the end padding: PyTorch drops it.
    export("maxpool_ceil_drop", nn.MaxPool2d(2, 2, padding=1, ceil_mode=True), (2, 3, 9, 9))
    export("avgpool_ceil_exclude", nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False), d)
    hand("avgpool_ceil_include", "AveragePool", d,
         lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True),
         dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1))
    hand("avgpool_include", "AveragePool", d, lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=True),
         dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=1))
    hand("maxpool_nostrides", "MaxPool", d, lambda x: F.max_pool2d(x, 3, 1, 1),
         dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    hand("avgpool_nostrides", "AveragePool", d, lambda x: F.avg_pool2d(x, 2, 1), dict(kernel_shape=[2, 2]))
    p = same_pads(9, 3, 2)
    hand("maxpool_same_upper", "MaxPool", (2, 3, 9, 9),
         lambda x: F.max_pool2d(F.pad(x, (p[0], p[1], p[0], p[1]), value=-math.inf), 3, 2),
         dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"))
    p = same_pads(10, 4, 3, upper=False)
    hand("avgpool_same_lower", "AveragePool", d, lambda x: sum_count_avg(x, 4, 3, (p[0], p[1], p[0], p[1])),
         dict(kernel_shape=[4, 4], strides=[3, 3], auto_pad="SAME_LOWER"))
    export("maxpool_dilated", nn.MaxPool2d(3, 2, 1, dilation=2), d)
    # torch exports AdaptiveMaxPool2d(1) as a MaxPool over the whole map.
    hand("globalmaxpool", "GlobalMaxPool", d, lambda x: x.amax(dim=(2, 3), keepdim=True))


def conv_cases():
    d = (2, 3, 9, 9)
    w = np.random.RandomState(1).randn(4, 3, 3, 3).astype(np.float32) * 0.3
    wt = torch.from_numpy(w)
    p = same_pads(9, 3, 2)
    hand("conv_same_upper", "Conv", d, lambda x: F.conv2d(F.pad(x, (p[0], p[1], p[0], p[1])), wt, stride=2),
         dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"), inits=[("w", w)], extra_inputs=["w"])
    hand("conv_valid", "Conv", d, lambda x: F.conv2d(x, wt, stride=2),
         dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="VALID"), inits=[("w", w)], extra_inputs=["w"])


def conv_transpose_cases():
    d = (2, 4, 5, 5)
    cases = [
        ("convtranspose_unet", nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1)),
        ("convtranspose_outpad", nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)),
        ("convtranspose_dilated_groups", nn.ConvTranspose2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2)),
        ("convtranspose_k2_nobias", nn.ConvTranspose2d(4, 3, 2, stride=2, bias=False)),
        ("convtranspose_rect", nn.ConvTranspose2d(4, 3, (3, 2), stride=(2, 3), padding=(1, 0))),
        ("convtranspose_crop", nn.ConvTranspose2d(4, 3, 2, stride=2, padding=2)),
    ]
    for name, ct in cases:
        with torch.no_grad():
            ct.weight.uniform_(-0.5, 0.5)
        m = Lambda(ct)
        m.eval()
        x = torch.from_numpy(input_values(int(np.prod(d))).reshape(d))
        torch.onnx.export(m, x, os.path.join(OUT, name + ".onnx"), input_names=["x"], output_names=["y"],
                          opset_version=13, do_constant_folding=False)
        ct.zero_grad()
        record(name, d, ct, weight=(weight_name(name), ct.weight), groups=ct.groups)
    # output_shape and auto_pad, which torch never writes: the full
    # transposed convolution, cropped as the spec's total_padding says.
    w = np.random.RandomState(2).uniform(-0.5, 0.5, (4, 3, 3, 3)).astype(np.float32)
    wt = torch.from_numpy(w).requires_grad_(True)
    full = lambda x: F.conv_transpose2d(x, wt, stride=2)  # 11x11 for 5x5
    # output_shape 10: total 1, NOTSET puts it at the start (begin 1, end 0).
    hand("convtranspose_output_shape", "ConvTranspose", d, lambda x: full(x)[:, :, 1:, 1:],
         dict(kernel_shape=[3, 3], strides=[2, 2], output_shape=[10, 10]), inits=[("w", w)], extra_inputs=["w"])
    REF["convtranspose_output_shape"].update(wgrad_of("convtranspose_output_shape", d, lambda x: full(x)[:, :, 1:, 1:], wt))
    # SAME_UPPER: output 10, total 1 at the end.
    hand("convtranspose_same_upper", "ConvTranspose", d, lambda x: full(x)[:, :, :10, :10],
         dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"), inits=[("w", w)], extra_inputs=["w"])
    REF["convtranspose_same_upper"].update(wgrad_of("convtranspose_same_upper", d, lambda x: full(x)[:, :, :10, :10], wt))


def weight_name(name):
    m = onnx.load(os.path.join(OUT, name + ".onnx"))
    for n in m.graph.node:
        if n.op_type == "ConvTranspose":
            return n.input[1]
    raise ValueError(name)


def wgrad_of(name, dims, fn, w):
    w.grad = None
    x = torch.from_numpy(input_values(int(np.prod(dims))).reshape(dims))
    y = fn(x)
    (y * torch.from_numpy(pattern(y.numel())).reshape(y.shape)).sum().backward()
    return {"weight": "w", "wgrad": b64(w.grad), "groups": 1}


def activation_cases():
    d = (2, 3, 6, 6)
    export("hardsigmoid", nn.Hardsigmoid(), d)
    export("hardswish", nn.Hardswish(), d, opset=14)
    export("leakyrelu", nn.LeakyReLU(0.1), d)
    prelu = nn.PReLU(3)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([0.25, -0.5, 1.5]))
    export("prelu", prelu, d)
    hand("clip_attrs", "Clip", d, lambda x: x.clamp(-0.5, 0.75), dict(min=-0.5, max=0.75), opset=6)
    hand("dropout_inference", "Dropout", d, lambda x: x * 1.0)


def norm_cases():
    d = (2, 7, 5, 5)
    hand("lrn", "LRN", d, lambda x: F.local_response_norm(x, 5, alpha=0.01, beta=0.75, k=2.0),
         dict(size=5, alpha=0.01, beta=0.75, bias=2.0))

    def lrn_even(x, size=4, alpha=0.02, beta=0.6, bias=1.5):
        # ONNX's window: c - floor((size-1)/2) .. c + ceil((size-1)/2).
        lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
        sq = F.pad(x * x, (0, 0, 0, 0, lo, hi))
        s = sum(sq[:, i:i + x.shape[1]] for i in range(size))
        return x / (bias + alpha / size * s) ** beta
    hand("lrn_even", "LRN", d, lrn_even, dict(size=4, alpha=0.02, beta=0.6, bias=1.5))
    inorm = nn.InstanceNorm2d(7, affine=True)
    with torch.no_grad():
        inorm.weight.uniform_(0.5, 1.5)
        inorm.bias.uniform_(-0.5, 0.5)
    export("instancenorm", inorm, d)


def layout_cases():
    export("depthtospace_crd", nn.PixelShuffle(2), (2, 8, 3, 4))

    def dcr(x, b=2):
        n, c, h, w = x.shape
        return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)
    hand("depthtospace_dcr", "DepthToSpace", (2, 8, 3, 4), dcr, dict(blocksize=2, mode="DCR"))

    def s2d(x, b=2):
        n, c, h, w = x.shape
        return x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)
    hand("spacetodepth", "SpaceToDepth", (2, 3, 6, 4), s2d, dict(blocksize=2))
    # torch's F.pad computes its pads with shape arithmetic (a reversing
    # Slice the import misreads); replicate padding is Pad mode=edge.
    export("pad_computed", Lambda(lambda x: F.pad(x, (1, 2, 0, 3))), (2, 3, 5, 5))
    export("pad_edge", Lambda(lambda x: F.pad(x, (2, 1, 1, 0), mode="replicate")), (2, 3, 5, 5))
    export("slice_reversed", Lambda(lambda x: torch.flip(x, [3])), (2, 3, 4, 5))


def resize_cases():
    d = (2, 3, 5, 6)
    export("upsample_nearest_opset9", nn.Upsample(scale_factor=2, mode="nearest"), d, opset=9)

    def asym_linear(x, s=2):
        # ONNX Upsample-9 linear: x_original = x_resized / scale, edge-clamped.
        for axis in (2, 3):
            n = x.shape[axis]
            src = torch.arange(n * s, dtype=torch.float64) / s
            i0 = src.floor().long().clamp(0, n - 1)
            i1 = (i0 + 1).clamp(0, n - 1)
            t = (src - src.floor()).float()
            shape = [1] * 4
            shape[axis] = n * s
            t = t.reshape(shape)
            x = x.index_select(axis, i0) * (1 - t) + x.index_select(axis, i1) * t
        return x
    hand("upsample_linear", "Upsample", d, asym_linear, dict(mode="linear"),
         inits=[("scales", np.array([1, 1, 2, 2], np.float32))], extra_inputs=["scales"], opset=9)
    export("resize_nearest", nn.Upsample(scale_factor=2, mode="nearest"), d)
    export("resize_nearest_size", Lambda(lambda x: F.interpolate(x, size=(7, 9), mode="nearest")), d)
    export("resize_bilinear", nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), d)
    export("resize_bilinear_size", Lambda(lambda x: F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=False)), d)
    export("resize_bilinear_corners", nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), d)
    export("resize_bicubic", nn.Upsample(scale_factor=2, mode="bicubic", align_corners=False), d)


class UNetDecoder(nn.Module):
    """An encoder level and two decoder levels as U-Net/FCN exports have
    them: MaxPool down, ConvTranspose up (k2 s2 and k4 s2 p1), skip
    Concat, bilinear upsampling, a 1x1 classifier."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.bottom = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.up1 = nn.ConvTranspose2d(16, 16, 2, stride=2)
        self.dec1 = nn.Sequential(nn.Conv2d(32, 8, 3, padding=1), nn.LeakyReLU(0.1))
        self.up2 = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)
        self.dec2 = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        b = self.bottom(e2)
        d1 = self.dec1(torch.cat([self.up1(b), e2], 1))
        d2 = self.dec2(torch.cat([self.up2(d1), e1], 1))
        return F.interpolate(self.head(d2), scale_factor=2, mode="bilinear", align_corners=False)


class GoogLeNetBlock(nn.Module):
    """torchvision GoogLeNet's stem and first Inception module: every
    MaxPool with ceil_mode=True, on sizes where it matters."""

    def __init__(self):
        super().__init__()
        C = BasicConv2d
        self.stem = nn.Sequential(C(3, 16, kernel_size=7, stride=2, padding=3), nn.MaxPool2d(3, 2, ceil_mode=True),
                                  C(16, 16, kernel_size=1), C(16, 24, kernel_size=3, padding=1),
                                  nn.MaxPool2d(3, 2, ceil_mode=True))
        self.a = Inception(24, 8, 8, 12, 4, 6, 6)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.fc = nn.Linear(32, 10)

    def features(self, x):
        x = self.pool(self.a(self.stem(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x):
        return self.fc(self.features(x))


class MobileNetV3Block(nn.Module):
    """torchvision's MobileNetV3 with a short setting: Hardswish, squeeze-
    and-excitation with Hardsigmoid, and its classifier (Linear, Hardswish,
    Dropout, Linear), so the features are after the first Linear."""

    def __init__(self):
        super().__init__()
        cfg = mobilenetv3.InvertedResidualConfig
        setting = [cfg(16, 3, 16, 16, True, "RE", 2, 1, 0.5), cfg(16, 3, 36, 24, False, "RE", 2, 1, 0.5),
                   cfg(24, 5, 48, 24, True, "HS", 1, 1, 0.5), cfg(24, 3, 64, 32, True, "HS", 2, 1, 0.5)]
        self.net = mobilenetv3.MobileNetV3(setting, last_channel=48, num_classes=10)

    def features(self, x):
        c = self.net.classifier
        x = torch.flatten(self.net.avgpool(self.net.features(x)), 1)
        return c[1](c[0](x))

    def forward(self, x):
        return self.net(x)


class ConvNeXtMini(nn.Module):
    """torchvision's ConvNeXt with two small stages: its classifier is
    LayerNorm2d, Flatten, Linear, so the features are the normalized pool."""

    def __init__(self):
        super().__init__()
        cfg = convnext.CNBlockConfig
        self.net = convnext.ConvNeXt([cfg(16, 32, 1), cfg(32, None, 1)], num_classes=10)
        with torch.no_grad():
            for m in self.net.modules():
                if isinstance(m, nn.LayerNorm):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.3, 0.3)
                if isinstance(m, convnext.CNBlock):
                    m.layer_scale.uniform_(0.5, 1.0)

    def features(self, x):
        c = self.net.classifier
        return c[1](c[0](self.net.avgpool(self.net.features(x))))

    def forward(self, x):
        return self.net(x)


class KerasWriter:
    """Writes an ONNX graph the way tf2onnx writes a Keras model (NHWC
    input, a Transpose to NCHW, Keras' own ops) while computing the same
    model in PyTorch for the reference: each method does both."""

    def __init__(self, name, size):
        self.name, self.nodes, self.inits, self.k = name, [], [], 0
        self.rng = np.random.RandomState(len(name))
        self.size = size

    def fresh(self, op):
        self.k += 1
        return "%s_%d" % (op.lower(), self.k)

    def node(self, op, inputs, **attrs):
        out = self.fresh(op)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def init(self, arr):
        name = self.fresh("w")
        self.inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    def begin(self, x):
        return self.node("Transpose", ["input"], perm=[0, 3, 1, 2]), x.permute(0, 3, 1, 2)

    def conv(self, h, cin, cout, k, s=1, pad=None, same=False, groups=1, bias=True):
        """Conv; pad: explicit (begin, end) per axis, or same=True for
        auto_pad=SAME_UPPER as tf2onnx writes when it cannot know sizes."""
        name, t = h
        w = (self.rng.randn(cout, cin // groups, k, k) * (1.5 / math.sqrt(cin // groups * k * k))).astype(np.float32)
        b = (self.rng.randn(cout) * 0.1).astype(np.float32)
        ins = [name, self.init(w)] + ([self.init(b)] if bias else [])
        attrs = dict(kernel_shape=[k, k], strides=[s, s], group=groups)
        if same:
            attrs["auto_pad"] = "SAME_UPPER"
            p = same_pads(t.shape[2], k, s)
            tp = F.pad(t, (p[0], p[1], p[0], p[1]))
        else:
            p = pad or (0, 0)
            attrs["pads"] = [p[0], p[0], p[1], p[1]]
            tp = F.pad(t, (p[0], p[1], p[0], p[1]))
        y = F.conv2d(tp, torch.from_numpy(w), torch.from_numpy(b) if bias else None, stride=s, groups=groups)
        return self.node("Conv", ins, **attrs), y

    def bn(self, h, c, scale=True):
        """Keras BatchNormalization: epsilon 1e-3, momentum 0.99 (which the
        import refuses: dropped in inference), gamma 1 when scale=False."""
        name, t = h
        g = self.rng.uniform(0.5, 1.5, c) if scale else np.ones(c)
        b, mu, var = self.rng.uniform(-0.2, 0.2, c), self.rng.uniform(-0.2, 0.2, c), self.rng.uniform(0.5, 1.5, c)
        ins = [name] + [self.init(a) for a in (g, b, mu, var)]
        y = F.batch_norm(t, *(torch.from_numpy(a.astype(np.float32)) for a in (mu, var, g, b)), eps=1e-3)
        return self.node("BatchNormalization", ins, epsilon=1e-3, momentum=0.99), y

    def relu(self, h):
        return self.node("Relu", [h[0]]), F.relu(h[1])

    def pad(self, h, p):
        """ZeroPadding2D: a Pad node with constant pads, NCHW."""
        pads = self.init(np.array([0, 0, p, p, 0, 0, p, p], np.int64))
        return self.node("Pad", [h[0], pads], mode="constant"), F.pad(h[1], (p, p, p, p))

    def maxpool(self, h, k, s, same=False):
        name, t = h
        if same:
            p = same_pads(t.shape[2], k, s)
            y = F.max_pool2d(F.pad(t, (p[0], p[1], p[0], p[1]), value=-math.inf), k, s)
            return self.node("MaxPool", [name], kernel_shape=[k, k], strides=[s, s], auto_pad="SAME_UPPER"), y
        return self.node("MaxPool", [name], kernel_shape=[k, k], strides=[s, s]), F.max_pool2d(t, k, s)

    def avgpool_same(self, h, k, s):
        """Keras AveragePooling2D(padding="same"): the padding is not
        counted (TensorFlow's rule)."""
        name, t = h
        p = same_pads(t.shape[2], k, s)
        y = sum_count_avg(t, k, s, (p[0], p[1], p[0], p[1]))
        return self.node("AveragePool", [name], kernel_shape=[k, k], strides=[s, s], auto_pad="SAME_UPPER",
                         count_include_pad=0), y

    def add(self, a, b):
        return self.node("Add", [a[0], b[0]]), a[1] + b[1]

    def concat(self, hs):
        return self.node("Concat", [h[0] for h in hs], axis=1), torch.cat([h[1] for h in hs], 1)

    def head(self, h, c, classes=5, nhwc_mean=True):
        """GlobalAveragePooling2D then Dense(softmax): ReduceMean over the
        NHWC spatial axes after a Transpose back, or GlobalAveragePool and
        Flatten; MatMul, Add, Softmax."""
        name, t = h
        if nhwc_mean:
            back = self.node("Transpose", [name], perm=[0, 2, 3, 1])
            feat = self.node("ReduceMean", [back], axes=[1, 2], keepdims=0)
        else:
            feat = self.node("Flatten", [self.node("GlobalAveragePool", [name])], axis=1)
        w = (self.rng.randn(c, classes) * 0.1).astype(np.float32)
        logits = self.node("Add", [self.node("MatMul", [feat, self.init(w)]), self.init(np.zeros(classes))])
        self.nodes.append(helper.make_node("Softmax", [logits], ["probs"], name="softmax", axis=-1))
        return t.mean(dim=(2, 3))

    def save(self, features_fn):
        s = self.size
        g = helper.make_graph(self.nodes, self.name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", s, s, 3])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 5])], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx-style")
        m.ir_version = 7
        onnx.checker.check_model(m)
        onnx.save(m, os.path.join(OUT, self.name + ".onnx"))
        return features_fn


def keras_resnet50(x):
    """ResNet50 as Keras builds it: ZeroPadding2D(3) then a valid 7x7/2
    conv, ZeroPadding2D(1) then a valid 3x3/2 max pool, bottlenecks with the
    stride in their first 1x1 conv, BN epsilon 1.001e-5 in Keras (1e-3 here,
    as everywhere in this writer), GAP, Dense."""
    k = KerasWriter("keras-resnet50-mini", 64)
    h = k.begin(x)
    h = k.relu(k.bn(k.conv(k.pad(h, 3), 3, 8, 7, 2), 8))
    h = k.maxpool(k.pad(h, 1), 3, 2)

    def block(h, cin, f, s):
        sc = k.bn(k.conv(h, cin, 4 * f, 1, s), 4 * f)
        y = k.relu(k.bn(k.conv(h, cin, f, 1, s), f))
        y = k.relu(k.bn(k.conv(y, f, f, 3, pad=(1, 1)), f))
        y = k.bn(k.conv(y, f, 4 * f, 1), 4 * f)
        return k.relu(k.add(y, sc))
    h = block(h, 8, 4, 1)
    h = block(h, 16, 8, 2)
    return k, k.head(h, 32)


def keras_inceptionv3(x):
    """InceptionV3 as Keras builds it: valid strided stem convs without bias
    and BN with scale=False, a "same" conv, a valid 3x3/2 max pool, a mixed
    block whose pool branch is AveragePooling2D(3, strides=1, "same")."""
    k = KerasWriter("keras-inceptionv3-mini", 75)

    def cbr(h, cin, cout, kk, s=1, same=False):
        return k.relu(k.bn(k.conv(h, cin, cout, kk, s, same=same, bias=False), cout, scale=False))
    h = k.begin(x)
    h = cbr(h, 3, 8, 3, 2)
    h = cbr(h, 8, 8, 3)
    h = cbr(h, 8, 16, 3, same=True)
    h = k.maxpool(h, 3, 2)
    b1 = cbr(h, 16, 8, 1)
    b5 = cbr(cbr(h, 16, 6, 1), 6, 8, 5, same=True)
    b3 = cbr(cbr(cbr(h, 16, 8, 1), 8, 12, 3, same=True), 12, 12, 3, same=True)
    bp = cbr(k.avgpool_same(h, 3, 1), 16, 4, 1)
    h = k.concat([b1, b5, b3, bp])
    return k, k.head(h, 32)


def keras_xception(x):
    """Xception as Keras builds it: a valid 3x3/2 stem, separable convs
    (depthwise group=channels then pointwise, "same"), a "same" 3x3/2 max
    pool, a strided 1x1 residual, GlobalAveragePool then Flatten."""
    k = KerasWriter("keras-xception-mini", 71)
    h = k.begin(x)
    h = k.relu(k.bn(k.conv(h, 3, 8, 3, 2, bias=False), 8))

    def sep(h, cin, cout):
        return k.conv(k.conv(h, cin, cin, 3, same=True, groups=cin, bias=False), cin, cout, 1, bias=False)
    res = k.bn(k.conv(h, 8, 16, 1, 2, same=True, bias=False), 16)
    y = k.relu(k.bn(sep(h, 8, 16), 16))
    y = k.bn(sep(y, 16, 16), 16)
    y = k.maxpool(y, 3, 2, same=True)
    h = k.add(y, res)
    return k, k.head(h, 16, nhwc_mean=False)


def blocks():
    out = {}
    for name, cls, size, opset in [("googlenet-block", GoogLeNetBlock, 67, 13), ("mobilenetv3-block", MobileNetV3Block, 64, 14),
                                   ("convnext-mini", ConvNeXtMini, 64, 13)]:
        m = cls()
        randomize_bn(m)
        m.eval()
        x = torch.from_numpy(np.stack([image(n, size) for n in range(2)]).transpose(0, 3, 1, 2).copy())
        torch.onnx.export(m, x[:1], os.path.join(OUT, name + ".onnx"), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset)
        with torch.no_grad():
            out[name] = {"size": size, "layout": "NCHW", "features": m.features(x).tolist()}
    for fn in (keras_resnet50, keras_inceptionv3, keras_xception):
        k0 = fn.__name__
        size = {"keras_resnet50": 64, "keras_inceptionv3": 75, "keras_xception": 71}[k0]
        x = torch.from_numpy(np.stack([image(n, size) for n in range(2)]))
        with torch.no_grad():
            k, feats = fn(x)
        k.save(None)
        out[k.name] = {"size": size, "layout": "NHWC", "features": feats.tolist()}
    # The U-Net decoder: no classifier, the whole output is compared.
    unet = UNetDecoder()
    with torch.no_grad():
        for mod in unet.modules():
            if isinstance(mod, nn.ConvTranspose2d):
                mod.weight.uniform_(-0.3, 0.3)
    d = (1, 3, 16, 16)
    x = torch.from_numpy(input_values(int(np.prod(d))).reshape(d))
    torch.onnx.export(unet.eval(), x, os.path.join(OUT, "unet_decoder.onnx"), input_names=["x"], output_names=["y"],
                      opset_version=13)
    # Fine-tuning the decoder trains the second ConvTranspose through the
    # rewritten kernel, the Concat, the Resize and the head.
    record("unet_decoder", d, unet, weight=("up2.weight", unet.up2.weight), groups=1)
    with open(os.path.join(OUT, "blocks.json"), "w") as f:
        json.dump(out, f)


def unsupported_attr():
    """An op the import has with an attribute the legalization refuses:
    AveragePool-19's dilations (the error must name node, op and
    attribute)."""
    pool = helper.make_node("AveragePool", ["input"], ["p"], name="dilated_avg", kernel_shape=[3, 3],
                            dilations=[2, 2])
    flat = helper.make_node("Flatten", ["p"], ["out"], name="flat")
    g = helper.make_graph([pool, flat], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2028])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    m.ir_version = 8
    onnx.save(m, os.path.join(OUT, "unsupported-attr.onnx"))


def main():
    os.makedirs(OUT, exist_ok=True)
    unsupported_attr()
    for f in (pooling_cases, conv_cases, conv_transpose_cases, activation_cases, norm_cases, layout_cases,
              resize_cases, blocks):
        f()
    with open(os.path.join(OUT, "ref.json"), "w") as f:
        json.dump(REF, f, indent=0, sort_keys=True)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print("%d cases, %d bytes in %s" % (len(REF), total, OUT))


if __name__ == "__main__":
    main()
