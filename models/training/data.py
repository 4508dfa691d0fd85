"""Patch dataset loading, scan-level train/validation split and batch augmentation.

On-disk format (written by `xct-sentinel simulate --dataset DIR --patches N`):
  images.npy  float32 (N,128,128), normalised per slice (~0..1); (N,3,128,128) with
              `--input-channels 3`: the slices z-1, z, z+1 as channels
  masks.npy   uint8   (N,128,128), 1 = dendrite
  labels.npy  uint8   (N,128,128), 0 bg, 1 dendrite, 2 pit, 3 gas bubble (optional here)
  habits.npy  uint8   (N,128,128), a dendrite voxel's habit: 1 tree, 2 mossy, 3 needle (optional)
  index.json  {"patchSize", "count", "seeds", "normalization", "patches": [{"scanSeed", "z", "y", "x", "kind"}]}

The split is by scan seed, never by patch: neighbouring patches of one scan share
structures (the same dendrite crosses many slices), so a per-patch split would leak
training data into validation and flatter the metrics.

Augmentation follows the paper (rotations, flips, ~2% crops, shifts, zoom 0.8-1, +-5%
brightness/contrast) and runs in torch on whole batches, with the same geometry for image
and mask (bilinear for the image, nearest for the mask).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


class PatchDataset:
    """Memory-mapped patches plus their index; batches come out as torch tensors."""

    def __init__(self, root: str) -> None:
        self.root = root
        with open(os.path.join(root, "index.json")) as f:
            self.index = json.load(f)
        self.images = np.load(os.path.join(root, "images.npy"), mmap_mode="r")
        self.masks = np.load(os.path.join(root, "masks.npy"), mmap_mode="r")
        labels_path = os.path.join(root, "labels.npy")
        self.labels = np.load(labels_path, mmap_mode="r") if os.path.exists(labels_path) else None
        habits_path = os.path.join(root, "habits.npy")
        self.habits = np.load(habits_path, mmap_mode="r") if os.path.exists(habits_path) else None
        if self.images.ndim not in (3, 4):
            raise ValueError(f"{root}: images.npy has shape {self.images.shape}, expected (N,H,W) or (N,C,H,W)")
        self.channels = 1 if self.images.ndim == 3 else self.images.shape[1]
        plane = (self.images.shape[0], *self.images.shape[-2:])  # what masks, labels and habits hold
        if self.habits is not None and self.habits.shape != plane:
            raise ValueError(f"{root}: habits.npy shape {self.habits.shape} does not fit images.npy {self.images.shape}")
        n = self.images.shape[0]
        if self.masks.shape != plane or (self.labels is not None and self.labels.shape != plane):
            raise ValueError(f"{root}: images/masks/labels shapes differ")
        if len(self.index["patches"]) != n or self.index.get("count", n) != n:
            raise ValueError(f"{root}: index.json lists {len(self.index['patches'])} patches, images.npy has {n}")
        self.scan_seeds = np.array([p["scanSeed"] for p in self.index["patches"]])
        self.z = np.array([p.get("z", 0) for p in self.index["patches"]])
        self.kinds = [p.get("kind", "unknown") for p in self.index["patches"]]

    def __len__(self) -> int:
        return self.images.shape[0]

    def split(self, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """Indices of (train, val) patches, split by scan seed; plus a description of the split.

        With a single scan there is nothing to split by; then the top `val_fraction` of the
        z range is held out, which at least keeps validation slices away from training ones.
        """
        seeds = np.unique(self.scan_seeds)
        if len(seeds) >= 2:
            rng = np.random.default_rng(seed)
            n_val = min(len(seeds) - 1, max(1, round(len(seeds) * val_fraction)))
            val_seeds = np.sort(rng.choice(seeds, size=n_val, replace=False))
            is_val = np.isin(self.scan_seeds, val_seeds)
            info = {
                "by": "scanSeed",
                "trainSeeds": [int(s) for s in seeds if s not in val_seeds],
                "valSeeds": [int(s) for s in val_seeds],
            }
        else:
            cut = np.quantile(self.z, 1 - val_fraction)
            is_val = self.z > cut
            if not is_val.any() or is_val.all():  # degenerate z range: fall back to the tail
                is_val = np.arange(len(self)) >= len(self) * (1 - val_fraction)
            info = {"by": "z (only one scan seed)", "zCut": float(cut), "seed": int(seeds[0])}
        idx = np.arange(len(self))
        return idx[~is_val], idx[is_val], info

    def batch(self, indices: np.ndarray, with_labels: bool = False, with_habits: bool = False):
        """Tensors (B,C,H,W) float32 image, float32 mask [, int64 labels] [, float32 habits] for `indices`.

        Habits are 0 where the dataset has no habits.npy.
        """
        order = np.sort(indices)  # sorted reads are friendlier to the memory map
        img = torch.from_numpy(np.ascontiguousarray(self.images[order], dtype=np.float32))
        if img.ndim == 3:
            img = img.unsqueeze(1)
        mask = torch.from_numpy(np.ascontiguousarray(self.masks[order], dtype=np.float32)).unsqueeze(1)
        out = [img, mask]
        blank = lambda: np.zeros(img.shape[:1] + img.shape[2:], np.uint8)  # noqa: E731
        if with_labels:
            lab = self.labels[order] if self.labels is not None else blank()
            out.append(torch.from_numpy(np.ascontiguousarray(lab, dtype=np.int64)).unsqueeze(1))
        if with_habits:
            hab = self.habits[order] if self.habits is not None else blank()
            out.append(torch.from_numpy(np.ascontiguousarray(hab, dtype=np.float32)).unsqueeze(1))
        return tuple(out)

    def batches(self, indices: np.ndarray, batch_size: int, rng: np.random.Generator | None = None,
                drop_last: bool = False, with_labels: bool = False, with_habits: bool = False):
        """Iterate over `indices` in batches; shuffled when `rng` is given."""
        idx = rng.permutation(indices) if rng is not None else np.asarray(indices)
        # Dropping the ragged last batch keeps BatchNorm away from batches of one.
        stop = len(idx) - (len(idx) % batch_size if drop_last and len(idx) >= batch_size else 0)
        for i in range(0, stop, batch_size):
            yield self.batch(idx[i : i + batch_size], with_labels, with_habits)


@dataclass
class AugmentConfig:
    """The paper's augmentations; ranges are fractions of the patch side or of intensity."""

    rot90: bool = True  # random multiples of 90 degrees; with the flip covers all 8 symmetries
    flip: bool = True
    affine_p: float = 0.8  # probability a patch gets the crop/zoom/shift warp at all
    crop: float = 0.02  # crop up to this fraction off each side, then resize back
    zoom: tuple[float, float] = (0.8, 1.0)  # fraction of the side that is kept (zoom in)
    shift: float = 0.05  # translation up to this fraction of the side
    brightness: float = 0.05  # multiplicative, +-5%
    contrast: float = 0.05  # about the patch mean, +-5%
    # With the neighbouring slices as channels (z-1, z, z+1): swap them, i.e. look at the scan
    # upside down in z. The simulator leans needles either way in z, so this is a true symmetry.
    zflip: bool = True


def augment(img: torch.Tensor, mask: torch.Tensor, cfg: AugmentConfig, g: torch.Generator):
    """Randomly augment a batch (B,C,H,W); the mask gets exactly the image's geometry."""
    b = img.shape[0]
    img, mask = img.clone(), mask.clone()

    if cfg.zflip and img.shape[1] == 3:
        sel = torch.rand(b, generator=g) < 0.5
        if sel.any():
            img[sel] = img[sel].flip(1)

    if cfg.rot90:
        k = torch.randint(0, 4, (b,), generator=g)
        for r in (1, 2, 3):
            sel = k == r
            if sel.any():
                img[sel] = torch.rot90(img[sel], r, (2, 3))
                mask[sel] = torch.rot90(mask[sel], r, (2, 3))
    if cfg.flip:
        sel = torch.rand(b, generator=g) < 0.5
        if sel.any():
            img[sel] = img[sel].flip(3)
            mask[sel] = mask[sel].flip(3)

    # Crop + zoom + shift in one affine warp: the sampled region's side is s (in units of
    # the patch side) and its centre is moved by t; reflection padding fills what a shift
    # pushes past the border, identically for image and mask.
    sel = torch.rand(b, generator=g) < cfg.affine_p
    n = int(sel.sum())
    if n:
        u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g)  # noqa: E731
        s = u(*cfg.zoom) * u(1 - 2 * cfg.crop, 1.0)
        slack = 1 - s  # how far the region can move without leaving the patch
        tx = u(-1, 1) * slack + u(-1, 1) * 2 * cfg.shift
        ty = u(-1, 1) * slack + u(-1, 1) * 2 * cfg.shift
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = s, s, tx, ty
        grid = F.affine_grid(theta, [n, 1, *img.shape[2:]], align_corners=False)
        img[sel] = F.grid_sample(img[sel], grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        mask[sel] = F.grid_sample(mask[sel], grid, mode="nearest", padding_mode="reflection", align_corners=False)

    if cfg.brightness or cfg.contrast:
        c = 1 + cfg.contrast * (2 * torch.rand(b, 1, 1, 1, generator=g) - 1)
        br = 1 + cfg.brightness * (2 * torch.rand(b, 1, 1, 1, generator=g) - 1)
        mean = img.mean(dim=(2, 3), keepdim=True)
        img = ((img - mean) * c + mean) * br
    return img, mask

