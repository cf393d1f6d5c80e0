#!/usr/bin/env bash
# The CPU engine's benchmark table: training steps of the three book nets
# and ONNX backbones' forward passes (and a ResNet-50 fine-tuning step), on
# dl4img's Go backend + oneDNN and in Debian's PyTorch 1.13 CPU with the
# same thread count, the two interleaved, ROUNDS (2) rounds of STEPS (3)
# timed steps after one warm-up each. Prints the markdown table of
# README.md's "The CPU engine" (median over rounds), the machine's vector
# extension and load; the raw JSON lines go to OUT (bin/engine-bench.jsonl).
#
#   bash bench/engine.sh          # from the repo root, after make build (~15 min on 2 cores)
#
# Run it on an otherwise idle machine: both sides use every core, and
# anything else running skews the one being timed at that moment.
set -euo pipefail
steps=${STEPS:-3}
rounds=${ROUNDS:-2}
dir=${ONNX_DIR:-bin/onnx}
out=${OUT:-bin/engine-bench.jsonl}
py=${PYTHON:-/usr/bin/python3}
dl=./bin/dl4img
nets=${NETS:-captcha-cnn crnn fcn}
backbones=${BACKBONES:-resnet18 resnet50 mobilenetv2 inceptionv3}
mkdir -p "$dir" "$(dirname "$out")"
: >"$out"
for b in $backbones; do
  [ -f "$dir/$b.onnx" ] || "$py" bench/torch_ref.py --nets "$b" --steps 1 --batch 1 --export "$dir" >/dev/null 2>&1
done
for r in $(seq "$rounds"); do
  for n in $nets; do
    "$py" bench/torch_ref.py --nets "$n" --steps "$steps" --json 2>/dev/null >>"$out"
    "$dl" bench "$n" --backend go --steps "$steps" --json | "$py" -c 'import json,sys; r=json.load(sys.stdin); r.pop("engine",None); print(json.dumps(r))' >>"$out"
  done
  for b in $backbones; do
    "$py" bench/torch_ref.py --nets "$b" --steps "$steps" --json 2>/dev/null >>"$out"
    "$dl" bench onnx --backend go --batch 16 --steps "$steps" --json "$dir/$b.onnx" | "$py" -c 'import json,sys; r=json.load(sys.stdin); r.pop("engine",None); print(json.dumps(r))' >>"$out"
  done
  "$py" bench/torch_ref.py --nets resnet50 --steps "$steps" --finetune 3 --json 2>/dev/null >>"$out"
  "$dl" bench onnx --backend go --batch 16 --steps "$steps" --finetune 3 --json "$dir/resnet50.onnx" | "$py" -c 'import json,sys; r=json.load(sys.stdin); r.pop("engine",None); print(json.dumps(r))' >>"$out"
done
isa=$(grep -o -m1 'avx512f' /proc/cpuinfo || grep -o -m1 'avx2' /proc/cpuinfo || echo "no AVX2")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), ${isa^^}; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" - "$out" <<'PY'
import json, os, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = "%s (%d)" % (r.get("net") or os.path.basename(r["model"]).removesuffix(".onnx"), r["batch"])
    if r.get("finetune_layers"):
        key = "resnet50 fine-tuning, last 3 convs + head (16)"
    side = "torch" if str(r.get("backend", "")).startswith("torch") else "dl4img"
    secs = (r.get("median_step_ns") or r.get("median_batch_ns")) / 1e9
    rows.setdefault(key, {}).setdefault(side, []).append((secs, r.get("peak_rss_bytes", 0) / 2**30))
print("| net or backbone (batch) | PyTorch s/step | dl4img s/step | speed ratio | PyTorch peak RSS | dl4img peak RSS | RSS ratio |")
print("|---|---|---|---|---|---|---|")
for key, sides in rows.items():
    if "torch" not in sides or "dl4img" not in sides:
        continue
    t = statistics.median(s for s, _ in sides["torch"]); d = statistics.median(s for s, _ in sides["dl4img"])
    tm = max(m for _, m in sides["torch"]); dm = max(m for _, m in sides["dl4img"])
    print(f"| {key} | {t:.3f} | {d:.3f} | {t/d:.2f}× | {tm:.2f} GiB | {dm:.2f} GiB | {dm/tm:.2f}× |")
PY
