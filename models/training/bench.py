"""Measure training and inference speed of the models on this machine.

Times full optimiser steps (forward + BCE + backward + AdamW step) and eval-mode forward
passes on random 128x128 batches, so one can plan how long a training run takes:
epoch seconds ~= training patches / train patches-per-second.

Usage: /usr/bin/python3 models/training/bench.py [--batch 16] [--steps 5] [--threads 2] [--large]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from common import build_model, count_parameters, hardware


def bench(name: str, config: dict, batch: int, steps: int, device: torch.device) -> dict:
    model = build_model(name, config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, 128, 128, device=device)
    y = (torch.rand(batch, 1, 128, 128, device=device) > 0.9).float()

    def train_step() -> None:
        loss = F.binary_cross_entropy_with_logits(model.forward_logits(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(fn, n: int) -> float:
        fn()  # warm-up: allocator, kernel selection
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t) / n

    model.train()
    step_s = timed(train_step, steps)
    model.eval()
    with torch.no_grad():
        infer_s = timed(lambda: model(x), steps)
    return {
        "model": name, "config": model.config, "parameters": count_parameters(model), "batch": batch,
        "trainStepSeconds": step_s, "trainPatchesPerSecond": batch / step_s,
        "inferBatchSeconds": infer_s, "inferPatchesPerSecond": batch / infer_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--large", action="store_true", help="also time T-Net width 128, depth 12")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    print(f"hardware: {hardware(device)['summary']}")
    runs = [("tnet", {}), ("unet", {})]
    if args.large:
        runs.append(("tnet", {"width": 128, "depth": 12, "heads": 8}))
    for name, cfg in runs:
        r = bench(name, cfg, args.batch, args.steps, device)
        print(
            f"{name:4s} {cfg or '(default)'}: {r['parameters']:,} params | train step (batch {r['batch']}) "
            f"{r['trainStepSeconds'] * 1000:.0f} ms = {r['trainPatchesPerSecond']:.1f} patches/s | "
            f"eval forward {r['inferBatchSeconds'] * 1000:.0f} ms = {r['inferPatchesPerSecond']:.1f} patches/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
