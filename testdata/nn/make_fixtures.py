#!/usr/bin/python3
"""Generate PyTorch reference fixtures for the Go package dl4img/nn.

Run once (Debian: apt-get install python3-torch) from the repo root:

    /usr/bin/python3 testdata/nn/make_fixtures.py

It writes small JSON files next to this script. Go tests read them; they
never run Python. Inputs are drawn in float32 and the reference is computed
in float64 from those exact values, so Go's float32 results can be compared
with a relative tolerance and float64 results almost exactly.

Layouts are converted to the Go package's conventions: activations NHWC,
conv kernels [kh, kw, cIn, cOut], GRU kernels [in, 3*hidden] (torch's
weight_ih transposed, gate order r, z, n), CTC logits batch-major.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240601)


def f32(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def enc(a):
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        data = [int(v) for v in a.ravel()]
    else:
        # float32 values round-trip exactly with 9 significant digits.
        data = [float("%.9g" % v) for v in a.astype(np.float32).ravel()] if a.dtype == np.float32 \
            else [float("%.17g" % v) for v in a.ravel()]
    return {"shape": list(a.shape), "data": data}


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def write(name, cases):
    path = os.path.join(HERE, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"generator": "make_fixtures.py", "torch": torch.__version__, "cases": cases}, f,
                  separators=(",", ":"))
    os.replace(tmp, path)
    print(name, os.path.getsize(path), "bytes")


def same_pad(n, k, s):
    out = (n + s - 1) // s
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv_cases():
    cases = []
    specs = [  # name, B, H, W, C, F, k, s, padding
        ("k3s1same", 2, 7, 6, 3, 4, 3, 1, "same"),
        ("k3s2same", 2, 7, 8, 3, 5, 3, 2, "same"),
        ("k3s1valid", 1, 6, 7, 2, 3, 3, 1, "valid"),
        ("k5s2valid", 2, 9, 11, 3, 2, 5, 2, "valid"),
        ("k1s1", 2, 4, 5, 6, 3, 1, 1, "valid"),
        ("k2s2valid", 1, 6, 7, 3, 4, 2, 2, "valid"),
        ("k4s1same", 1, 6, 5, 2, 3, 4, 1, "same"),
    ]
    for name, B, H, W, C, Fo, k, s, pad in specs:
        x = f32(B, H, W, C)
        w = f32(k, k, C, Fo, scale=0.5)
        b = f32(Fo)
        xt = t64(x, True)
        wt = t64(w, True)
        bt = t64(b, True)
        xin = xt.permute(0, 3, 1, 2)
        if pad == "same":
            ph, pw = same_pad(H, k, s), same_pad(W, k, s)
            xin = F.pad(xin, (pw[0], pw[1], ph[0], ph[1]))
        y = F.conv2d(xin, wt.permute(3, 2, 0, 1), bt, stride=s).permute(0, 2, 3, 1)
        gy = f32(*y.shape)
        (y * t64(gy)).sum().backward()
        cases.append({"name": name, "kernel": k, "stride": s, "padding": pad,
                      "x": enc(x), "w": enc(w), "b": enc(b), "y": enc(y.detach().numpy()),
                      "gy": enc(gy), "dx": enc(xt.grad.numpy()), "dw": enc(wt.grad.numpy()),
                      "db": enc(bt.grad.numpy())})
    write("conv2d.json", cases)


def pool_cases():
    cases = []
    for name, shape, size in [("p2odd", (2, 5, 7, 3), 2), ("p2even", (1, 6, 8, 4), 2), ("p3", (1, 7, 6, 2), 3)]:
        x = f32(*shape)
        xt = t64(x, True)
        y = F.max_pool2d(xt.permute(0, 3, 1, 2), size).permute(0, 2, 3, 1)
        gy = f32(*y.shape)
        (y * t64(gy)).sum().backward()
        cases.append({"name": name, "size": size, "x": enc(x), "y": enc(y.detach().numpy()), "gy": enc(gy),
                      "dx": enc(xt.grad.numpy())})
    write("maxpool.json", cases)


def convt_cases():
    cases = []
    specs = [  # name, B, H, W, C, F, k, s, p, op
        ("k2s2p0", 2, 3, 4, 3, 4, 2, 2, 0, 0),
        ("k4s2p1", 2, 4, 3, 3, 2, 4, 2, 1, 0),
        ("k3s2p1op1", 1, 3, 5, 2, 3, 3, 2, 1, 1),
        ("k3s1p1", 1, 4, 4, 2, 2, 3, 1, 1, 0),
        ("k5s3p2op2", 1, 3, 2, 2, 2, 5, 3, 2, 2),
    ]
    for name, B, H, W, C, Fo, k, s, p, op in specs:
        x = f32(B, H, W, C)
        w = f32(k, k, C, Fo, scale=0.5)  # Go layout [k, k, cIn, cOut]
        b = f32(Fo)
        xt, wt, bt = t64(x, True), t64(w, True), t64(b, True)
        y = F.conv_transpose2d(xt.permute(0, 3, 1, 2), wt.permute(2, 3, 0, 1), bt, stride=s, padding=p,
                               output_padding=op).permute(0, 2, 3, 1)
        gy = f32(*y.shape)
        (y * t64(gy)).sum().backward()
        cases.append({"name": name, "kernel": k, "stride": s, "padding": p, "output_padding": op,
                      "x": enc(x), "w": enc(w), "b": enc(b), "y": enc(y.detach().numpy()), "gy": enc(gy),
                      "dx": enc(xt.grad.numpy()), "dw": enc(wt.grad.numpy()), "db": enc(bt.grad.numpy())})
    write("convtranspose.json", cases)


def gru_cases():
    cases = []
    B, T, I, H = 2, 6, 5, 4
    for name, mode in [("forward", "forward"), ("backward", "backward"), ("forward_h0", "forward_h0"),
                       ("bi_concat", "concat"), ("bi_sum", "sum")]:
        bidir = mode in ("concat", "sum")
        gru = torch.nn.GRU(I, H, batch_first=True, bidirectional=bidir).double()
        x = f32(B, T, I)
        h0 = f32(B, H) if mode == "forward_h0" else np.zeros((B, H), np.float32)
        # Re-draw the weights as float32 values so Go sees the exact same numbers.
        ws = {}
        for pname, prm in gru.named_parameters():
            v = f32(*prm.shape, scale=0.4)
            with torch.no_grad():
                prm.copy_(torch.tensor(v, dtype=torch.float64))
            ws[pname] = v
        xt = t64(x, True)
        if mode == "backward":
            out, _ = gru(torch.flip(xt, [1]), t64(h0)[None])
            y = torch.flip(out, [1])
        elif bidir:
            out, _ = gru(xt)
            y = out if mode == "concat" else out[..., :H] + out[..., H:]
        else:
            y, _ = gru(xt, t64(h0)[None])
        gy = f32(*y.shape)
        (y * t64(gy)).sum().backward()
        case = {"name": name, "mode": mode, "hidden": H, "x": enc(x), "h0": enc(h0), "y": enc(y.detach().numpy()),
                "gy": enc(gy), "dx": enc(xt.grad.numpy())}
        for sfx in ["", "_reverse"] if bidir else [""]:
            d = "backward" if sfx else "forward"
            case[d] = {"kernel": enc(ws["weight_ih_l0" + sfx].T), "recurrent_kernel": enc(ws["weight_hh_l0" + sfx].T),
                       "bias_input": enc(ws["bias_ih_l0" + sfx]), "bias_recurrent": enc(ws["bias_hh_l0" + sfx]),
                       "d_kernel": enc(dict(gru.named_parameters())["weight_ih_l0" + sfx].grad.numpy().T)}
        cases.append(case)
    write("gru.json", cases)


def ctc_cases():
    cases = []
    specs = [  # name, B, T, V, blank, label lens, input lens
        ("small_blank0", 3, 12, 6, 0, [4, 2, 0], [12, 9, 5]),
        ("repeats_blank0", 2, 10, 4, 0, [5, 3], [10, 10]),
        ("keras_blank_last", 2, 10, 5, 4, [3, 4], [10, 8]),
        ("long_T256", 2, 256, 8, 0, [30, 50], [256, 200]),
    ]
    for name, B, T, V, blank, llens, ilens in specs:
        logits = f32(B, T, V, scale=2.0)
        L = max(llens) if max(llens) > 0 else 1
        labels = np.zeros((B, L), np.int32)
        for b, n in enumerate(llens):
            choices = [c for c in range(V) if c != blank]
            if name.startswith("repeats"):
                seq = [choices[0], choices[0], choices[1], choices[1], choices[1]][:n]
            else:
                seq = list(rng.choice(choices, size=n))
            labels[b, :n] = seq
            labels[b, n:] = blank  # padding value is irrelevant
        lt = t64(logits, True)
        lp = F.log_softmax(lt, -1).permute(1, 0, 2)  # torch wants [T, B, V]
        loss = F.ctc_loss(lp, torch.tensor(labels, dtype=torch.long), torch.tensor(ilens), torch.tensor(llens),
                          blank=blank, reduction="none", zero_infinity=False)
        loss.sum().backward()
        cases.append({"name": name, "blank": blank, "logits": enc(logits), "labels": enc(labels),
                      "input_lens": enc(np.array(ilens, np.int32)), "label_lens": enc(np.array(llens, np.int32)),
                      "loss": enc(loss.detach().numpy()), "dlogits": enc(lt.grad.numpy())})
    write("ctc.json", cases)


if __name__ == "__main__":
    torch.manual_seed(0)
    conv_cases()
    pool_cases()
    convt_cases()
    gru_cases()
    ctc_cases()
