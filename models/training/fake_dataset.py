"""Write a tiny fake patch dataset in the simulator's exact on-disk format.

Only for smoke tests and speed measurements of the training code: the real training
data comes from `xct-sentinel simulate --dataset DIR --patches N`. The fake patches are
crudely phantom-like (dark Li electrode band, brighter electrolyte, dark branched
"dendrites", dark voids as pits and bubbles, Gaussian noise) so that losses and metrics
move in a sensible direction, but they make no claim to physical realism.

Usage: /usr/bin/python3 models/training/fake_dataset.py --out /tmp/fake --patches 64
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

PATCH = 128
KINDS = ("dendrite", "pit", "bubble", "background")


def _disk(img: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:PATCH, 0:PATCH]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def make_patch(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One (image, labels) pair; labels use 0 bg, 1 dendrite, 2 pit, 3 bubble."""
    labels = np.zeros((PATCH, PATCH), np.uint8)
    img = np.full((PATCH, PATCH), 0.7, np.float32)  # electrolyte
    li_top = int(rng.integers(10, 40))  # Li electrode occupies rows [0, li_top)
    img[:li_top] = 0.3
    if kind == "dendrite":
        # A random walk of disks growing from the interface into the electrolyte.
        for _ in range(int(rng.integers(1, 3))):
            y, x = float(li_top), float(rng.uniform(20, PATCH - 20))
            r = float(rng.uniform(1.5, 3.5))
            for _ in range(int(rng.integers(10, 40))):
                labels[_disk(img, y, x, r)] = 1
                y += float(rng.uniform(0.5, 2.5))
                x += float(rng.normal(0, 1.5))
                if y >= PATCH:
                    break
    elif kind == "pit":
        labels[_disk(img, rng.uniform(3, li_top - 3), rng.uniform(10, PATCH - 10), rng.uniform(2, 6))] = 2
    elif kind == "bubble":
        labels[_disk(img, rng.uniform(li_top + 10, PATCH - 10), rng.uniform(10, PATCH - 10), rng.uniform(3, 10))] = 3
    img[labels == 1] = 0.3
    img[labels >= 2] = 0.02
    img += rng.normal(0, 0.05, img.shape).astype(np.float32)
    return img.astype(np.float32), labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--patches", type=int, default=64)
    ap.add_argument("--scans", type=int, default=4, help="distinct fake scan seeds")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    n = args.patches
    images = np.zeros((n, PATCH, PATCH), np.float32)
    labels = np.zeros((n, PATCH, PATCH), np.uint8)
    seeds = [1000 + s for s in range(args.scans)]
    patches = []
    for i in range(n):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        images[i], labels[i] = make_patch(rng, kind)
        patches.append({"scanSeed": seeds[i % args.scans], "z": i // args.scans, "y": 0, "x": 0, "kind": kind})

    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "images.npy"), images)
    np.save(os.path.join(args.out, "masks.npy"), (labels == 1).astype(np.uint8))
    np.save(os.path.join(args.out, "labels.npy"), labels)
    index = {
        "patchSize": PATCH,
        "count": n,
        "seeds": seeds,
        "normalization": {"method": "fake", "note": "written by fake_dataset.py for smoke tests"},
        "patches": patches,
    }
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f)
    print(f"wrote {n} fake patches from {args.scans} scans to {args.out}")


if __name__ == "__main__":
    main()
