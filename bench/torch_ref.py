#!/usr/bin/python3
"""PyTorch CPU reference for `dl4img bench` / nn/netbench.

Runs the same three networks as nn/netbench/nets.go (same layer sizes, same
batch sizes, Adam lr 1e-3, synthetic data), with 2 threads, and prints one
line per net (or JSON with --json): median training-step time, achieved
GFLOP/s (same FLOP count formula as netbench) and peak RSS.

    /usr/bin/python3 bench/torch_ref.py [--nets captcha-cnn,crnn,fcn] [--steps 5] [--threads 2] [--json]
        [--batch N] [--device cpu|cuda] [--warmup N]

The torchvision backbones (resnet18, resnet50, mobilenetv2, inceptionv3) are
timed as `dl4img bench onnx` times them: forward passes of batch 16 (no
grad) at 224x224 (299x299 for inceptionv3), reporting images/s; with
--finetune N, training steps of their last N convolutions (batch norm
frozen, as dl4img's export folds it) and a dense head with binary
cross-entropy and Adam. Weights are torchvision's random initialization
with a fixed seed (nothing is downloaded); --export DIR writes exactly the
timed model to DIR/NET.onnx, so `dl4img bench onnx DIR/NET.onnx` runs the
same weights:

    /usr/bin/python3 bench/torch_ref.py --nets resnet50,mobilenetv2 --export bin/onnx

Requires torch (Debian python3-torch 1.13 here; scripts/gpu-check.sh runs it
with the GPU machine's CUDA build, reporting peak GPU memory too). Layout is NCHW, PyTorch's native
format; results are comparable as time per step, not bit for bit.
"""
import argparse
import json
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CAPTCHA_H, CAPTCHA_W, CAPTCHA_CHARS, CAPTCHA_CLASSES = 80, 170, 4, 36
CRNN_H, CRNN_W, CRNN_CLASSES, CRNN_MAXLABEL = 50, 200, 37, 8
FCN_SIZE, FCN_CLASSES, FCN_L2 = 256, 2, 1e-4


class CaptchaCNN(nn.Module):
    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for c in (32, 64, 128, 256):
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                       nn.MaxPool2d(2)]
            cin = c
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(0.25)
        self.heads = nn.ModuleList([nn.Linear(256 * 5 * 10, CAPTCHA_CLASSES) for _ in range(CAPTCHA_CHARS)])

    def forward(self, x):
        x = self.drop(torch.flatten(self.features(x), 1))
        return torch.stack([h(x) for h in self.heads], 1)


def conv_bn_relu(cin, c):
    return [nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c, eps=1e-3, momentum=0.01), nn.ReLU()]


class CRNN(nn.Module):
    def __init__(self):
        super().__init__()
        layers, cin = [], 1
        for c in (32, 64, 128):
            layers += conv_bn_relu(cin, c) + conv_bn_relu(c, c) + [nn.MaxPool2d(2)]
            cin = c
        self.features = nn.Sequential(*layers)
        self.dense = nn.Linear(128 * (CRNN_H // 8), 128)
        self.gru1 = nn.GRU(128, 128, batch_first=True, bidirectional=True)
        self.gru2 = nn.GRU(256, 128, batch_first=True, bidirectional=True)
        self.out = nn.Linear(256, CRNN_CLASSES)

    def forward(self, x):
        x = self.features(x)  # [b, 128, 6, 25]
        b, c, h, w = x.shape
        x = x.permute(0, 3, 2, 1).reshape(b, w, h * c)
        x = F.relu(self.dense(x))
        x, _ = self.gru1(x)
        x, _ = self.gru2(x)
        return self.out(x)  # [b, T, 37]


class FCN(nn.Module):
    def __init__(self):
        super().__init__()
        c = lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.ReLU()]
        self.enc = nn.Sequential(*c(3, 32), *c(32, 32), nn.MaxPool2d(2), *c(32, 64), *c(64, 64), nn.MaxPool2d(2),
                                 *c(64, 128))
        self.up1 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.cls = nn.Conv2d(32, FCN_CLASSES, 1)

    def forward(self, x):
        x = self.enc(x)
        x = F.relu(self.up1(x))
        x = F.relu(self.up2(x))
        return self.cls(x)


def conv_flops(h, w, k, cin, cout):
    return 2 * h * w * k * k * cin * cout


def train_flops(net, batch):
    """Same formula as trainFLOPs in nn/netbench/nets.go."""
    f = 0
    if net == "captcha-cnn":
        h, w, cin = CAPTCHA_H, CAPTCHA_W, 3
        for c in (32, 64, 128, 256):
            f += conv_flops(h, w, 3, cin, c) + conv_flops(h, w, 3, c, c)
            h, w, cin = h // 2, w // 2, c
        f += CAPTCHA_CHARS * 2 * h * w * cin * CAPTCHA_CLASSES
    elif net == "crnn":
        h, w, cin = CRNN_H, CRNN_W, 1
        for c in (32, 64, 128):
            f += conv_flops(h, w, 3, cin, c) + conv_flops(h, w, 3, c, c)
            h, w, cin = h // 2, w // 2, c
        t = w
        f += 2 * t * h * cin * 128
        f += 2 * 2 * t * (128 + 128) * 3 * 128 + 2 * 2 * t * (256 + 128) * 3 * 128
        f += 2 * t * 256 * CRNN_CLASSES
    elif net == "fcn":
        s = FCN_SIZE
        f += conv_flops(s, s, 3, 3, 32) + conv_flops(s, s, 3, 32, 32)
        f += conv_flops(s // 2, s // 2, 3, 32, 64) + conv_flops(s // 2, s // 2, 3, 64, 64)
        f += conv_flops(s // 4, s // 4, 3, 64, 128)
        f += conv_flops(s // 4, s // 4, 4, 128, 64) + conv_flops(s // 2, s // 2, 4, 64, 32)
        f += conv_flops(s, s, 1, 32, FCN_CLASSES)
    return 3 * f * batch


def make(net, batch, device):
    g = torch.Generator().manual_seed(42)
    if net == "captcha-cnn":
        model = CaptchaCNN()
        x = torch.rand(batch, 3, CAPTCHA_H, CAPTCHA_W, generator=g).to(device)
        y = torch.randint(0, CAPTCHA_CLASSES, (batch, CAPTCHA_CHARS), generator=g).to(device)

        def loss_fn(out):
            return F.cross_entropy(out.reshape(-1, CAPTCHA_CLASSES), y.reshape(-1))
        params = model.parameters()
    elif net == "crnn":
        model = CRNN()
        x = torch.rand(batch, 1, CRNN_H, CRNN_W, generator=g).to(device)
        labels = torch.randint(0, CRNN_CLASSES - 1, (batch, CRNN_MAXLABEL), generator=g).to(device)
        lab_lens = torch.randint(4, CRNN_MAXLABEL + 1, (batch,), generator=g).to(device)

        def loss_fn(out):
            lp = F.log_softmax(out, -1).permute(1, 0, 2)
            in_lens = torch.full((batch,), lp.shape[0], dtype=torch.long, device=device)
            return F.ctc_loss(lp, labels, in_lens, lab_lens, blank=CRNN_CLASSES - 1, reduction="mean")
        params = model.parameters()
    else:
        model = FCN()
        x = torch.rand(batch, 3, FCN_SIZE, FCN_SIZE, generator=g).to(device)
        y = torch.randint(0, FCN_CLASSES, (batch, FCN_SIZE, FCN_SIZE), generator=g).to(device)

        def loss_fn(out):
            l2 = FCN_L2 * (model.up1.weight.pow(2).sum() + model.up2.weight.pow(2).sum())
            return F.cross_entropy(out, y) + l2
        params = model.parameters()
    model.to(device)
    return model, x, loss_fn, torch.optim.Adam(params, lr=1e-3)


def run(net, batch, steps, device="cpu", warmup=1):
    model, x, loss_fn, opt = make(net, batch, device)
    model.train()
    cuda = device.startswith("cuda")
    times, cpu, loss = [], [], None
    for i in range(steps + warmup):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad()
        loss = loss_fn(model(x))
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if i >= warmup:
            times.append(dt)
            cpu.append(dc)
    med = statistics.median(times)
    flops = train_flops(net, batch)
    r = {"net": net, "backend": "torch-%s-%s" % (device, torch.__version__), "batch": batch, "steps": steps,
         "median_step_ns": int(med * 1e9), "median_step_cpu_ns": int(statistics.median(cpu) * 1e9), "flops_per_step": flops, "gflops": flops / med / 1e9,
         "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
         "final_loss": float(loss)}
    if cuda:
        r["device"] = torch.cuda.get_device_name()
        r["peak_gpu_bytes"] = torch.cuda.max_memory_reserved()
    return r


BACKBONES = {"resnet18": 224, "resnet50": 224, "mobilenetv2": 224, "inceptionv3": 299}


def backbone(net):
    import torchvision
    torch.manual_seed(1)
    if net == "mobilenetv2":
        return torchvision.models.mobilenet_v2(weights=None)
    if net == "inceptionv3":
        return torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    return getattr(torchvision.models, net)(weights=None)


def run_backbone(net, batch, steps, warmup, finetune, export):
    model = backbone(net).eval()
    size = BACKBONES[net]
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2))
    if export:
        os.makedirs(export, exist_ok=True)
        path = os.path.join(export, net + ".onnx")
        torch.onnx.export(model, x[:1], path, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
    if finetune:
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-finetune:]
        for p in model.parameters():
            p.requires_grad_(False)
        for c in convs:
            for p in c.parameters():
                p.requires_grad_(True)
        # The features under the classifier, as dl4img cuts them.
        model.fc = nn.Identity() if hasattr(model, "fc") else model.fc
        if net == "mobilenetv2":
            model.classifier = nn.Identity()
        with torch.no_grad():
            head = nn.Linear(model(x[:1]).shape[1], 1)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad] + list(head.parameters()), 1e-4)
        y = (torch.arange(batch) % 2).float()[:, None]

        def step():
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(head(model(x)), y)
            loss.backward()
            opt.step()
    else:
        def step():
            with torch.no_grad():
                model(x)
    times, cpu = [], []
    for i in range(steps + warmup):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    r = {"model": net, "backend": "torch-cpu-%s" % torch.__version__, "batch": batch, "size": size, "steps": steps,
         "median_batch_ns": int(med * 1e9), "median_batch_cpu_ns": int(statistics.median(cpu) * 1e9),
         "images_per_s": batch / med, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if finetune:
        r["finetune_layers"] = finetune
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", default="captcha-cnn,crnn,fcn")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=0, help="0 = 32 (8 for fcn)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cudnn autotuning on, as XLA autotunes)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--finetune", type=int, default=0, help="backbones: time training of the last N convs instead")
    ap.add_argument("--export", default="", help="backbones: write the timed model to DIR/NET.onnx")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    for net in args.nets.split(","):
        if net in BACKBONES:
            r = run_backbone(net, args.batch or 16, args.steps, args.warmup, args.finetune, args.export)
            if args.json:
                print(json.dumps(r), flush=True)
            else:
                what = "fine-tune %d" % args.finetune if args.finetune else "forward"
                print("%-12s %s batch %3d at %d²: %7.2f images/s  median batch %8.3f s  cpu %8.3f s  peak RSS %6.0f MiB"
                      " (torch %s, %d threads)" % (net, what, r["batch"], r["size"], r["images_per_s"],
                                                   r["median_batch_ns"] / 1e9, r["median_batch_cpu_ns"] / 1e9,
                                                   r["peak_rss_bytes"] / 2**20, torch.__version__,
                                                   torch.get_num_threads()), flush=True)
            continue
        batch = args.batch or (8 if net == "fcn" else 32)
        r = run(net, batch, args.steps, args.device, args.warmup)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print("%-12s batch %3d  median step %8.3f s  cpu %8.3f s  %6.1f GFLOP/s  peak RSS %6.0f MiB  (torch %s, %d threads)" % (
                net, batch, r["median_step_ns"] / 1e9, r["median_step_cpu_ns"] / 1e9, r["gflops"], r["peak_rss_bytes"] / 2**20, torch.__version__,
                torch.get_num_threads()), flush=True)


if __name__ == "__main__":
    main()
