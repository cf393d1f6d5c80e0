#!/usr/bin/python3
"""Makes the ONNX backbone fixtures: small networks with the op mix of the
exports people bring (run once; outputs committed).

    /usr/bin/python3 testdata/transfer/make_backbones.py   # from the repo root

Needs Debian's python3-torch (1.13), python3-torchvision and python3-onnx
(to write the Keras-style model's padding as tf2onnx does). Weights are
random with a fixed seed (batch-norm statistics too, so folding them into
the convolutions matters); full-size weights are never committed.

Outputs, in testdata/transfer/backbones/:
  resnet-mini.onnx       torchvision's ResNet-50 op mix: 7x7/2 stem, 3x3/2
                         max pool, Bottleneck blocks (1x1, 3x3 with stride,
                         1x1 downsample with stride), global average pool, Gemm.
  mobilenetv2-mini.onnx  torchvision's MobileNetV2 (width 0.25, fewer
                         blocks): depthwise 3x3 convs (group = channels),
                         ReLU6 (Clip), inverted residuals.
  inceptionv3-mini.onnx  torchvision's Inception3 blocks at 299x299: 3x3/2
                         valid stem, InceptionA (5x5, 3x3 average pool with
                         padding) and InceptionC (1x7 and 7x1 convs), Concat.
  keras-nhwc-mini.onnx   what tf2onnx writes for a Keras model: an NHWC
                         input transposed to NCHW, "same" padding of stride-2
                         convs as asymmetric Conv pads (0,0,1,1), separable
                         convs (depthwise + pointwise) as in Xception.
  unsupported-op.onnx    a conv followed by Det, an op the ONNX import lacks
                         (the error must name the op and the node).
  ref.json               for each model: its input size and layout, and
                         PyTorch's pooled features (the input of the last
                         Gemm) for two images given by a formula that the Go
                         test computes too (image()).
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import mobilenetv2
from torchvision.models.inception import BasicConv2d, InceptionA, InceptionC
from torchvision.models.resnet import Bottleneck

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "backbones")
torch.manual_seed(11)


def image(n, size):
    """Image n (HWC float32) of the fixtures: a smooth formula, the same in
    transfer/backbones_test.go."""
    h, w, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    v = np.sin(0.37 * h + 0.11 * w * (c + 1) + 1.3 * n) * np.cos(0.05 * (h - w))
    return v.astype(np.float32)


def randomize_bn(m):
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)


class ResNetMini(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        def down(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.layers = nn.Sequential(
            Bottleneck(8, 4, downsample=down(8, 16, 1)),
            Bottleneck(16, 4),
            Bottleneck(16, 8, stride=2, downsample=down(16, 32, 2)),
            Bottleneck(32, 16, stride=2, downsample=down(32, 64, 2)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def features(self, x):
        return torch.flatten(self.pool(self.layers(self.stem(x))), 1)

    def forward(self, x):
        return self.fc(self.features(x))


class MobileNetV2Mini(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = mobilenetv2.MobileNetV2(num_classes=10, width_mult=0.25, inverted_residual_setting=[
            [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2], [6, 64, 1, 2]])

    def features(self, x):
        x = self.net.features(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)

    def forward(self, x):
        return self.net(x)


class InceptionMini(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(BasicConv2d(3, 8, kernel_size=3, stride=2), BasicConv2d(8, 8, kernel_size=3),
                                  BasicConv2d(8, 16, kernel_size=3, padding=1), nn.MaxPool2d(3, 2),
                                  BasicConv2d(16, 16, kernel_size=1), nn.MaxPool2d(3, 2))
        self.a = InceptionA(16, pool_features=8)
        self.c = InceptionC(232, channels_7x7=8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(768, 10)

    def features(self, x):
        return torch.flatten(self.pool(self.c(self.a(self.stem(x)))), 1)

    def forward(self, x):
        return self.fc(self.features(x))


class KerasNHWCMini(nn.Module):
    """Xception/MobileNet-style Keras net as tf2onnx writes it."""
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 2)          # "same", stride 2: Pad (0,1,0,1) first
        self.bn1 = nn.BatchNorm2d(8, eps=1e-3)
        self.dw = nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False)
        self.pw = nn.Conv2d(8, 16, 1)
        self.conv2 = nn.Conv2d(16, 24, 3, 2)
        self.fc = nn.Linear(24, 5)

    def features(self, x):
        x = x.permute(0, 3, 1, 2)
        x = F.relu(self.bn1(self.conv1(F.pad(x, (0, 1, 0, 1)))))
        x = F.relu(self.pw(self.dw(x)))
        x = F.relu(self.conv2(F.pad(x, (0, 1, 0, 1))))
        return x.mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


MODELS = [("resnet-mini", ResNetMini, 224, "NCHW"), ("mobilenetv2-mini", MobileNetV2Mini, 224, "NCHW"),
          ("inceptionv3-mini", InceptionMini, 299, "NCHW"), ("keras-nhwc-mini", KerasNHWCMini, 96, "NHWC")]


def pads_into_convs(path):
    """torch exports F.pad as a Pad whose pads it computes with Slice and
    Reshape ops; tf2onnx writes asymmetric "same" padding into the Conv
    itself. Rewrite each Pad that feeds a Conv that way (bottom/right 1)."""
    import onnx
    from onnx import helper
    m = onnx.load(path)
    nodes = list(m.graph.node)
    pads = {n.output[0]: n for n in nodes if n.op_type == "Pad"}
    for n in nodes:
        if n.op_type == "Conv" and n.input[0] in pads:
            pad = pads[n.input[0]]
            n.input[0] = pad.input[0]
            for a in list(n.attribute):
                if a.name == "pads":
                    n.attribute.remove(a)
            n.attribute.append(helper.make_attribute("pads", [0, 0, 1, 1]))
            m.graph.node.remove(pad)
    # Drop the nodes that only computed the pads.
    used = {i for n in m.graph.node for i in n.input} | {o.name for o in m.graph.output}
    changed = True
    while changed:
        changed = False
        for n in list(m.graph.node):
            if not any(o in used for o in n.output):
                m.graph.node.remove(n)
                changed = True
        used = {i for n in m.graph.node for i in n.input} | {o.name for o in m.graph.output}
    onnx.checker.check_model(m)
    onnx.save(m, path)


def unsupported_op(path):
    import onnx
    from onnx import TensorProto, helper
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.linspace(-1, 1, 108, dtype=np.float32).tolist())
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Det", ["c"], ["d"], name="weird_det"),
             helper.make_node("GlobalAveragePool", ["d"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["out"], name="flat")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 4])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


def main():
    os.makedirs(OUT, exist_ok=True)
    unsupported_op(os.path.join(OUT, "unsupported-op.onnx"))
    ref = {}
    for name, cls, size, layout in MODELS:
        m = cls()
        randomize_bn(m)
        m.eval()
        imgs = np.stack([image(n, size) for n in range(2)])  # NHWC
        x = torch.from_numpy(imgs if layout == "NHWC" else imgs.transpose(0, 3, 1, 2).copy())
        torch.onnx.export(m, x[:1], os.path.join(OUT, name + ".onnx"), input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=13)
        if name == "keras-nhwc-mini":
            pads_into_convs(os.path.join(OUT, name + ".onnx"))
        with torch.no_grad():
            feats = m.features(x)
        ref[name] = {"size": size, "layout": layout, "features": feats.tolist()}
        print(name, tuple(feats.shape), os.path.getsize(os.path.join(OUT, name + ".onnx")), "bytes")
    with open(os.path.join(OUT, "ref.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
