#!/usr/bin/python3
"""Makes the transfer package's test fixtures (run once; outputs committed).

    /usr/bin/python3 testdata/transfer/make_fixtures.py   # from the repo root

Needs Debian's python3-torch (1.13) and python3-pil; torch.onnx.export writes
the protobuf itself, so the python `onnx` package is not needed.

Outputs (in this directory, and a copy of tinycnn.onnx in transfer/assets):
  tinycnn.onnx      a small CNN in torchvision's style (NCHW input "input"
                    [batch,3,64,64], conv/BN/ReLU/max-pool blocks, global
                    average pool, flatten, Gemm "logits" with 8 classes),
                    pretrained for a few hundred steps on a generated
                    8-class texture/shape task so its pooled features mean
                    something (it is NOT an ImageNet model).
  ref_*.png         64x64 RGB images (no resize needed).
  ref_features.json PyTorch's pooled features (input of the Gemm) and conv
                    feature map shape for each ref image, after the
                    preprocessing: x/255, then (x-mean)/std with ImageNet's
                    mean/std.
"""
import json, math, os
import numpy as np
import torch
import torch.nn as nn
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
SIZE = 64
torch.manual_seed(7)
rng = np.random.default_rng(7)


class TinyCNN(nn.Module):
    def __init__(self, classes=8):
        super().__init__()
        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        self.features = nn.Sequential(
            *block(3, 16), nn.MaxPool2d(2),
            *block(16, 32), nn.MaxPool2d(2),
            *block(32, 64))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.fc(torch.flatten(x, 1))


def pretext_image(c):
    """An image of pretext class c (0..7): orientation x texture x blob."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    angle = (c % 4) * math.pi / 4 + rng.normal(0, 0.15)
    freq = rng.uniform(0.25, 0.6)
    wave = np.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)) + rng.uniform(0, 6.3))
    if c >= 4:  # spots instead of stripes
        wave = wave * np.sin(freq * (xx * math.sin(angle) - yy * math.cos(angle)))
    col1, col2 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    img = col1[None, None, :] * (wave[..., None] > 0) + col2[None, None, :] * (wave[..., None] <= 0)
    img += rng.normal(0, 0.08, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def to_input(img):  # HWC in [0,1] -> CHW normalized
    return torch.from_numpy(((img - MEAN) / STD).transpose(2, 0, 1).copy())


def main():
    m = TinyCNN()
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    m.train()
    for step in range(300):
        ys = rng.integers(0, 8, 32)
        xs = torch.stack([to_input(pretext_image(int(c))) for c in ys])
        loss = nn.functional.cross_entropy(m(xs), torch.from_numpy(ys))
        opt.zero_grad(); loss.backward(); opt.step()
        if step % 50 == 0:
            print("pretext step", step, "loss", float(loss))
    m.eval()
    torch.onnx.export(m, torch.zeros(1, 3, SIZE, SIZE), os.path.join(HERE, "tinycnn.onnx"),
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
    # The demo backbone embedded in the binary (transfer/assets, go:embed
    # cannot reach testdata); a test checks the two are identical.
    import shutil
    shutil.copyfile(os.path.join(HERE, "tinycnn.onnx"),
                    os.path.join(HERE, "..", "..", "transfer", "assets", "tinycnn.onnx"))
    ref = {"mean": MEAN.tolist(), "std": STD.tolist(), "size": SIZE, "images": {}}
    for i in range(2):
        img = (pretext_image(3 * i + 1) * 255).round().astype(np.uint8)
        name = "ref_%d.png" % i
        Image.fromarray(img).save(os.path.join(HERE, name))
        x = to_input(img.astype(np.float32) / 255)[None]
        with torch.no_grad():
            fmap = m.features(x)
            feat = torch.flatten(m.pool(fmap), 1)[0]
            logits = m.fc(feat[None])[0]
        ref["images"][name] = {"features": [float(v) for v in feat],
                               "logits": [float(v) for v in logits],
                               "fmap_shape": list(fmap.shape)}
    with open(os.path.join(HERE, "ref_features.json"), "w") as f:
        json.dump(ref, f, indent=1)


if __name__ == "__main__":
    main()
