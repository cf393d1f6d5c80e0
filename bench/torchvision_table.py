#!/usr/bin/python3
"""Exports torchvision's classification architectures (random weights, fixed
seed: nothing is downloaded) to ONNX and writes, next to each, PyTorch's
features at the classifier's input for two fixed images and PyTorch's own
forward images/s. `bash bench/backbones.sh table DIR` then runs dl4img on
the same files (BenchmarkTorchvisionBackbones) and prints the README's table.

    /usr/bin/python3 bench/torchvision_table.py DIR [--nets a,b] [--batch 4] [--steps 2] [--threads 2]
    ... | /usr/bin/python3 bench/torchvision_table.py --markdown   # "table {json}" lines → the table

DIR gets NET.onnx (full size: 5 MB to 550 MB; keep it out of the
repository) and NET.json: {"net", "size", "opset", "cut", "features" (two
images), "torch_images_per_s", "torch_batch"} or {"net", "export_error"}
when torch.onnx.export itself fails. The images are image() of
testdata/transfer/make_backbones.py (transfer.fixtureImage in Go), fed as
they are (no preprocessing) in NCHW.

The features are the input of the last nn.Linear (what the classifier
sees; dl4img's automatic cut); SqueezeNet has no Linear (its classifier is
a 1x1 convolution and a global pool), so there they are the model's output,
the global pool dl4img falls back to.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision

# One per architecture family torchvision 0.14 ships (the smallest), plus
# the variants the README's other tables use. --nets all exports every
# classification model instead.
DEFAULT = ("alexnet,convnext_tiny,densenet121,efficientnet_b0,efficientnet_v2_s,googlenet,inception_v3,maxvit_t,"
           "mnasnet0_5,mobilenet_v2,mobilenet_v3_small,mobilenet_v3_large,regnet_x_400mf,regnet_y_400mf,resnet18,"
           "resnet50,resnext50_32x4d,shufflenet_v2_x0_5,squeezenet1_0,squeezenet1_1,swin_t,swin_v2_t,vgg11,vgg16_bn,"
           "vit_b_16,wide_resnet50_2")


def image(n, size):
    h, w, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    v = np.sin(0.37 * h + 0.11 * w * (c + 1) + 1.3 * n) * np.cos(0.05 * (h - w))
    return v.astype(np.float32)


def build(net):
    torch.manual_seed(1)
    kw = {}
    if net in ("googlenet", "inception_v3"):
        kw = dict(aux_logits=False, init_weights=True)
    return getattr(torchvision.models, net)(weights=None, **kw).eval()


def all_nets():
    from torchvision.models import list_models
    import torchvision.models as M
    skip = ("vit_h_14", "regnet_y_128gf")  # over 2 GB: ONNX protobuf's limit without external data
    return [n for n in list_models(module=M) if n not in skip]


def markdown(lines):
    """The README's table from BenchmarkTorchvisionBackbones' "table {json}"
    lines."""
    print("| architecture | loads | features | max difference from PyTorch | dl4img images/s | PyTorch images/s | rewritten for the import (besides Identity) |")
    print("|---|---|---|---|---|---|---|")
    rows = {}
    for line in lines:
        if "table {" in line:
            r = json.loads(line[line.index("table {") + len("table "):])
            rows[r["net"]] = r
    for r in rows.values():
        if "error" in r:
            print("| %s | no: %s | | | | | |" % (r["net"], r["error"].replace("|", "\\|")))
            continue
        print("| %s | yes | %d | %.1e | %.2f | %.2f | %s |" % (r["net"], r["features"], r["max_rel_diff"], r["images_per_s"],
                                                           r["torch_images_per_s"], r["rewrites"] or "—"))


def main():
    if sys.argv[1:] == ["--markdown"]:
        markdown(sys.stdin)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--nets", default=DEFAULT)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.dir, exist_ok=True)
    nets = all_nets() if args.nets == "all" else args.nets.split(",")
    for net in nets:
        out = {"net": net}
        model = build(net)
        size = 299 if net == "inception_v3" else 224
        out["size"] = size
        path = os.path.join(args.dir, net + ".onnx")
        x1 = torch.zeros(1, 3, size, size)
        for opset in (13, 17):
            try:
                torch.onnx.export(model, x1, path, input_names=["input"], output_names=["logits"],
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset)
                out["opset"] = opset
                out.pop("export_error", None)
                break
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                out["export_error"] = "torch.onnx.export (opset %d): %s" % (opset, str(e).splitlines()[0][:200])
        if "export_error" in out:
            if os.path.exists(path):
                os.remove(path)
        else:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            seen = []
            if linears:
                out["cut"] = "input of the last Linear"
                linears[-1].register_forward_pre_hook(lambda m, inp: seen.append(inp[0]))
            else:
                out["cut"] = "model output (global pool)"
            x = torch.from_numpy(np.stack([image(n, size) for n in range(2)]).transpose(0, 3, 1, 2).copy())
            with torch.no_grad():
                y = model(x)
            f = seen[-1] if linears else y
            out["features"] = f.reshape(2, -1).tolist()
            xb = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(2))
            times = []
            with torch.no_grad():
                for i in range(args.steps + 1):
                    t0 = time.perf_counter()
                    model(xb)
                    if i > 0:
                        times.append(time.perf_counter() - t0)
            out["torch_images_per_s"] = args.batch / statistics.median(times)
            out["torch_batch"] = args.batch
            out["onnx_bytes"] = os.path.getsize(path)
        tmp = os.path.join(args.dir, net + ".json.tmp")
        with open(tmp, "w") as fh:
            json.dump(out, fh)
        os.replace(tmp, os.path.join(args.dir, net + ".json"))
        print(net, out.get("export_error", "exported, %d features" % len(out.get("features", [[]])[0])),
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
