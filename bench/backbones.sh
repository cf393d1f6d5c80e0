#!/usr/bin/env bash
# ONNX backbones and the reference nets on dl4img's Go backend and in
# PyTorch CPU (2 threads), side by side in one run, same weights: the
# torchvision models are exported by bench/torch_ref.py from exactly the
# model it times. Prints one JSON line per measurement to stdout.
#
#   bash bench/backbones.sh [ONNX_DIR]     # from the repo root, after make build
#
# Needs Debian's python3-torch and python3-torchvision. Steps: STEPS (3)
# timed after one warm-up; NETS overrides the backbone list.
set -euo pipefail
dir=${1:-bin/onnx}
steps=${STEPS:-3}
nets=${NETS:-resnet18 resnet50 mobilenetv2 inceptionv3}
py=${PYTHON:-/usr/bin/python3}
dl=./bin/dl4img
mkdir -p "$dir"
for n in $nets; do
  [ -f "$dir/$n.onnx" ] || "$py" bench/torch_ref.py --nets "$n" --steps 1 --batch 1 --export "$dir" >/dev/null 2>&1
  "$py" bench/torch_ref.py --nets "$n" --steps "$steps" --json 2>/dev/null
  "$dl" bench onnx --backend go --batch 16 --steps "$steps" --json "$dir/$n.onnx"
done
"$py" bench/torch_ref.py --nets resnet50 --steps "$steps" --finetune 3 --json 2>/dev/null
"$dl" bench onnx --backend go --batch 16 --steps "$steps" --finetune 3 --json "$dir/resnet50.onnx"
for n in captcha-cnn crnn fcn; do
  "$py" bench/torch_ref.py --nets "$n" --steps "$steps" --json 2>/dev/null
  "$dl" bench "$n" --backend go --steps "$steps" --json
done
