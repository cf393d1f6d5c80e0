#!/usr/bin/python3
"""OpenCV reference for ocr/formula/lines' extractor (same stages, same
parameters as lines.DefaultParams), to compare speed and box quality on
the same generated images.

    /usr/bin/python3 bench/formula_opencv.py DATASET_DIR [--out boxes.csv] [-n N]

DATASET_DIR is written by `dl4img gen formula` (N.png, boxes.csv). Prints
images/s for decoding (cv2.imread) and for the pipeline alone, single
process, and the share of ground-truth lines found with IoU >= 0.5 / 0.9.
Needs Debian's python3-opencv (apt-get install python3-opencv).
"""
import argparse
import csv
import os
import sys
import time

import cv2
import numpy as np

cv2.setNumThreads(1)  # one image per process, like the Go benchmark's one goroutine

# lines.DefaultParams
MEDIAN, DOWN, FLATTEN = 5, 4, 15
OPEN_W, OPEN_H, CLOSE_W, CLOSE_H = 15, 3, 3, 3
MIN_CONTRAST, MIN_AREA, MIN_HEIGHT, MIN_ASPECT = 24, 40, 4, 1.5
MAX_LINES, PAD, MIN_COMPONENT = 3, 0.3, 0.12
STRIP_H, STRIP_W, GAP, MARGIN = 81, 900, 12, 4


def background_threshold(img):
    hist = np.bincount(img.ravel(), minlength=256)
    mode = int(np.argmax(hist))
    cum = np.cumsum(hist)
    p25 = int(np.searchsorted(cum * 4, cum[-1]))  # first v with 4*acc >= total
    spread = max(mode - p25, 0)
    return max(mode - max(MIN_CONTRAST, 4 * spread), 0)


def merge_rows(blobs):
    """blobs: list of [x0, y0, x1, y1, area]; joins pieces of one line."""
    merged = True
    while merged:
        merged = False
        for i in range(len(blobs)):
            for j in range(i + 1, len(blobs)):
                a, b = blobs[i], blobs[j]
                ov = min(a[3], b[3]) - max(a[1], b[1])
                gap = max(a[0], b[0]) - min(a[2], b[2])
                ha, hb = a[3] - a[1], b[3] - b[1]
                if 2 * ov >= min(ha, hb) and gap <= 2 * max(ha, hb):
                    blobs[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]), a[4] + b[4]]
                    del blobs[j]
                    merged = True
                    break
            if merged:
                break
    return blobs


def refine(med, core):
    x0, y0, x1, y1 = core
    H, W = med.shape
    h = y1 - y0
    pad = max(int(PAD * h), 2 * DOWN)
    rx0, ry0, rx1, ry1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, W), min(y1 + pad, H)
    sub = med[ry0:ry1, rx0:rx1]
    _, mask = cv2.threshold(sub, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = int(MIN_COMPONENT * h * MIN_COMPONENT * h)
    lx0, ly0, lx1, ly1 = x0 - rx0, y0 - ry0, x1 - rx0, y1 - ry0
    box, count = None, 0
    for k in range(1, n):
        cx, cy, cw, ch, area = stats[k]
        if area < min_area or cx >= lx1 or cx + cw <= lx0 or cy >= ly1 or cy + ch <= ly0:
            continue
        b = (cx, cy, cx + cw, cy + ch)
        box = b if box is None else (min(box[0], b[0]), min(box[1], b[1]), max(box[2], b[2]), max(box[3], b[3]))
        count += 1
    if box is None:
        return None, 0
    s = 2 * DOWN
    bx0, by0 = max(box[0], lx0 - s), max(box[1], ly0 - s)
    bx1, by1 = min(box[2], lx1 + s), min(box[3], ly1 + s)
    if bx1 <= bx0 or by1 <= by0:
        return None, 0
    return (bx0 + rx0, by0 + ry0, bx1 + rx0, by1 + ry0), count


def extract(gray):
    med = cv2.medianBlur(gray, MEDIAN)
    H, W = gray.shape
    small = cv2.resize(med, ((W + DOWN - 1) // DOWN, (H + DOWN - 1) // DOWN), interpolation=cv2.INTER_AREA)
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (FLATTEN, FLATTEN))
    small = 255 - (cv2.morphologyEx(small, cv2.MORPH_CLOSE, k) - small)
    opened = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (OPEN_W, OPEN_H)))
    closed = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (CLOSE_W, CLOSE_H)))
    t = background_threshold(closed)
    _, mask = cv2.threshold(closed, t, 255, cv2.THRESH_BINARY_INV)
    # External contours' bounding rectangles = components' boxes.
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    pieces = [[s[0], s[1], s[0] + s[2], s[1] + s[3], s[4]] for s in stats[1:] if 8 * s[4] >= MIN_AREA]
    blobs = [b for b in merge_rows(pieces)
             if b[4] >= MIN_AREA and b[3] - b[1] >= MIN_HEIGHT and b[2] - b[0] >= MIN_ASPECT * (b[3] - b[1])]
    blobs.sort(key=lambda b: -b[4])
    boxes = []
    for b in blobs:
        if len(boxes) == MAX_LINES:
            break
        core = (b[0] * DOWN, b[1] * DOWN, min(b[2] * DOWN, W), min(b[3] * DOWN, H))
        box, cnt = refine(med, core)
        if box is not None and cnt >= 3:
            boxes.append(box)
    boxes.sort(key=lambda b: b[1])
    # Join the crops into the strip, as the Go pipeline does.
    inner = STRIP_H - 2 * MARGIN
    crops = []
    for x0, y0, x1, y1 in boxes:
        c = gray[y0:y1, x0:x1]
        crops.append(cv2.resize(c, (max(1, round(c.shape[1] * inner / c.shape[0])), inner), interpolation=cv2.INTER_AREA))
    if crops:
        parts = []
        for i, c in enumerate(crops):
            if i:
                parts.append(np.full((inner, GAP), 255, np.uint8))
            parts.append(c)
        joined = np.hstack(parts)
        if joined.shape[1] > STRIP_W - 2 * MARGIN:
            w = STRIP_W - 2 * MARGIN
            joined = cv2.resize(joined, (w, max(1, round(inner * w / joined.shape[1]))), interpolation=cv2.INTER_AREA)
    return boxes


def iou(a, b):
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--out", help="write the found boxes (filename,line,x,y,w,h)")
    ap.add_argument("-n", type=int, default=0, help="first N images only")
    a = ap.parse_args()
    truth = {}
    with open(os.path.join(a.dir, "boxes.csv")) as f:
        for r in csv.DictReader(f):
            x, y, w, h = (int(r[k]) for k in "xywh")
            truth.setdefault(r["filename"], []).append((x, y, x + w, y + h))
    names = sorted(truth, key=lambda s: int(s.split(".")[0]))
    if a.n:
        names = names[:a.n]
    c0 = time.process_time()
    t0 = time.perf_counter()
    imgs = [cv2.imread(os.path.join(a.dir, n), cv2.IMREAD_GRAYSCALE) for n in names]
    t_dec = time.perf_counter() - t0
    c1 = time.process_time()
    t0 = time.perf_counter()
    found = [extract(g) for g in imgs]
    t_ext = time.perf_counter() - t0
    c2 = time.process_time()
    lines = f50 = f90 = wrong = 0
    for n, boxes in zip(names, found):
        gt = truth[n]
        lines += len(gt)
        wrong += len(boxes) != len(gt)
        for g in gt:
            best = max((iou(g, b) for b in boxes), default=0)
            f50 += best >= 0.5
            f90 += best >= 0.9
    print(f"opencv {cv2.__version__}: {len(names)} images, decode {len(names)/t_dec:.1f} images/s, "
          f"pipeline {len(names)/t_ext:.1f} images/s ({1000*t_ext/len(names):.1f} ms/image), single thread")
    print(f"opencv: CPU seconds (user+sys): decode {c1-c0:.2f} s ({1000*(c1-c0)/len(names):.1f} ms/image), "
          f"pipeline {c2-c1:.2f} s ({1000*(c2-c1)/len(names):.1f} ms/image)")
    per = (c2 - c0) / len(names)
    cores = os.cpu_count()
    print(f"opencv: whole pipeline (read + decode + extract) {1000*per:.1f} CPU-ms/image = {1/per:.1f} images/s per core; "
          f"100k images on {cores} cores ≈ {1e5*per/cores/3600:.2f} h")
    print(f"lines {lines}: IoU>=0.5 {f50} ({100*f50/lines:.2f}%), IoU>=0.9 {f90} ({100*f90/lines:.2f}%), "
          f"images with wrong line count {wrong}")
    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["filename", "line", "x", "y", "w", "h"])
            for n, boxes in zip(names, found):
                for i, (x0, y0, x1, y1) in enumerate(boxes):
                    w.writerow([n, i, x0, y0, x1 - x0, y1 - y0])


if __name__ == "__main__":
    sys.exit(main())
