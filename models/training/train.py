"""Train T-Net or the U-Net baseline on a simulated XCT patch dataset.

Usage (always the Debian interpreter, which has PyTorch):
  /usr/bin/python3 models/training/train.py --model tnet --data DATA --out RUNS \
      [--epochs N] [--batch 16] [--lr X] [--time-budget-min M] [--seed 0] \
      [--width 64 --depth 8 --heads 4]   # T-Net size; defaults are the paper's

Loss is binary cross-entropy (the paper's best), plus `--dice-weight` times a soft Dice loss
pooled over the batch when that is above 0 (the metric the daemon is judged on), optimiser AdamW, learning rate linear
warm-up then cosine decay. The cosine follows whichever runs out first, the epochs or the
time budget, so a time-budgeted run still ends on a low learning rate. Training stops at
the time budget (keeping room for the last validation). After every epoch the model is
validated on held-out *scans*; the checkpoint with the best foreground Dice is kept.

Writes OUT/<model>.pt (state dict + config) and OUT/<model>.train.json (a record of the run,
rewritten after every epoch so a killed run still leaves one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from common import build_model, count_parameters, hardware
from data import AugmentConfig, PatchDataset, augment

DEFAULT_LR = {"tnet": 5e-4, "unet": 1e-3}
DEFAULT_EPOCHS = 30  # when neither --epochs nor --time-budget-min is given


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["tnet", "unet"])
    ap.add_argument("--data", required=True, help="dataset directory (images.npy, masks.npy, index.json)")
    ap.add_argument("--out", required=True, help="output directory for <model>.pt and <model>.train.json")
    ap.add_argument("--epochs", type=int, default=None,
                    help=f"default {DEFAULT_EPOCHS}, or unlimited when --time-budget-min is given")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (tnet 5e-4, unet 1e-3)")
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--warmup-steps", type=int, default=200)
    ap.add_argument("--time-budget-min", type=float, default=None, help="wall-clock budget for the whole run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", help="start from this checkpoint's weights (same model and config): continue a run")
    ap.add_argument("--keep-epochs", action="store_true",
                    help="also keep every epoch's weights as <model>.epoch<N>.pt: a phase selected on one "
                         "validation score can be judged afterwards on the held-out and alert scans")
    ap.add_argument("--in-channels", type=int, default=None,
                    help="T-Net input channels (default: the dataset's). From a one-channel --init, 3 starts "
                         "the first layers as that model on the blend (see --init-blend-weight)")
    ap.add_argument("--input-lr-scale", type=float, default=1.0,
                    help="learning rate of the layers that read the image (embed, stem's first conv) times this: "
                         "after inflating to 3 channels, that is where what is new has to be learnt")
    ap.add_argument("--init-blend-weight", type=float, default=0.075,
                    help="with a one-channel --init and 3 input channels: the neighbours' share w, so the new "
                         "first layers are the old ones times (w, 1-2w, w), the daemon's blend")
    ap.add_argument("--val-fraction", type=float, default=0.2, help="fraction of scan seeds held out")
    ap.add_argument("--max-val", type=int, default=0, help="validate on at most this many patches (0 = all)")
    ap.add_argument("--dice-weight", type=float, default=0.0,
                    help="add this times a soft Dice loss (pooled over the batch) to the cross-entropy")
    ap.add_argument("--needle-weight", type=float, default=1.0,
                    help="cross-entropy weight of a needle voxel (habits.npy habit 3) against 1 for the rest")
    ap.add_argument("--select-needle-weight", type=float, default=0.0,
                    help="keep the checkpoint with the best val Dice + this x val needle voxel recall (default: Dice alone)")
    ap.add_argument("--epoch-patches", type=int, default=0,
                    help="an epoch is this many training patches drawn at random (0: all of them), so a short phase still validates")
    ap.add_argument("--freeze-bn", action="store_true",
                    help="keep BatchNorm layers in eval mode (their affine parts still learn): needed to continue "
                         "a checkpoint read back from ONNX (onnx_to_torch.py), whose BatchNorm statistics were folded away")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    g = ap.add_argument_group("T-Net size (defaults = paper config)")
    g.add_argument("--width", type=int, default=64, help="token embedding width")
    g.add_argument("--depth", type=int, default=8, help="transformer layers (multiple of 4)")
    g.add_argument("--heads", type=int, default=4, help="attention heads")
    return ap.parse_args(argv)


@torch.no_grad()
def evaluate(model: torch.nn.Module, ds: PatchDataset, idx: np.ndarray, batch: int, device: torch.device) -> dict:
    """Validation loss and metrics at threshold 0.5.

    dice/iou: foreground, pooled over all validation pixels (the selection criterion).
    mIoU/mDSC: the paper's patch means -- per patch, the average over both classes
    (dendrite, not dendrite) of IoU (Dice); a class absent from truth and prediction scores 1.
    confounderFpRate: fraction of pit and bubble pixels predicted as dendrite.
    """
    model.eval()
    loss_sum, n_pix = 0.0, 0
    tp_all = fp_all = fn_all = 0
    miou, mdsc = [], []
    conf_fp = conf_n = 0
    habit_tp = {1: 0, 2: 0, 3: 0}
    habit_n = {1: 0, 2: 0, 3: 0}
    for img, mask, lab, hab in ds.batches(idx, batch, with_labels=True, with_habits=True):
        img, mask = img.to(device), mask.to(device)
        logits = model.forward_logits(img)
        loss_sum += F.binary_cross_entropy_with_logits(logits, mask, reduction="sum").item()
        n_pix += mask.numel()
        pred = (logits > 0).flatten(1).cpu()  # sigmoid(x) > 0.5  <=>  x > 0
        truth = mask.flatten(1).cpu() > 0.5
        tp = (pred & truth).sum(1).double()
        fp = (pred & ~truth).sum(1).double()
        fn = (~pred & truth).sum(1).double()
        tn = (~pred & ~truth).sum(1).double()
        tp_all += tp.sum().item()
        fp_all += fp.sum().item()
        fn_all += fn.sum().item()

        def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
            return torch.where(den > 0, num / den.clamp(min=1), torch.ones_like(num))

        miou.append(((ratio(tp, tp + fp + fn) + ratio(tn, tn + fp + fn)) / 2).numpy())
        mdsc.append(((ratio(2 * tp, 2 * tp + fp + fn) + ratio(2 * tn, 2 * tn + fp + fn)) / 2).numpy())
        conf = lab.flatten(1) >= 2
        conf_fp += (pred & conf).sum().item()
        conf_n += conf.sum().item()
        hab = hab.flatten(1)
        for code in habit_tp:
            sel = hab == code
            habit_tp[code] += (pred & sel).sum().item()
            habit_n[code] += sel.sum().item()
    den = 2 * tp_all + fp_all + fn_all
    return {
        "loss": loss_sum / max(n_pix, 1),
        "dice": 2 * tp_all / den if den else 1.0,
        "iou": tp_all / (tp_all + fp_all + fn_all) if den else 1.0,
        "mIoU": float(np.concatenate(miou).mean()) if miou else float("nan"),
        "mDSC": float(np.concatenate(mdsc).mean()) if mdsc else float("nan"),
        "confounderFpRate": conf_fp / conf_n if conf_n else None,
        # Share of each habit's truth voxels predicted dendrite (None without habits.npy).
        **{f"{name}Recall": (habit_tp[code] / habit_n[code] if habit_n[code] else None)
           for code, name in ((1, "tree"), (2, "mossy"), (3, "needle"))},
        "patches": int(len(idx)),
    }


def training_loss(logits: torch.Tensor, mask: torch.Tensor, dice_weight: float,
                  voxel_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy (weighted per voxel if `voxel_weight`), plus `dice_weight` x (1 - soft Dice) pooled over the batch."""
    loss = F.binary_cross_entropy_with_logits(logits, mask, weight=voxel_weight)
    if dice_weight > 0:
        p = torch.sigmoid(logits)
        soft_dice = (2 * (p * mask).sum() + 1) / (p.sum() + mask.sum() + 1)
        loss = loss + dice_weight * (1 - soft_dice)
    return loss


def lr_at(step: int, progress: float, peak: float, warmup: int, floor: float = 0.01) -> float:
    """Linear warm-up over `warmup` steps, then cosine from `peak` to `floor * peak` over progress 0..1."""
    warm = min(1.0, (step + 1) / max(1, warmup))
    cos = 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return peak * warm * (floor + (1 - floor) * cos)


def write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def atomic_write(path: str, write) -> None:
    """Write via a temporary file so a reader (or a kill) never sees half a file."""
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


def inflate_input_channels(state: dict, w: float) -> dict:
    """A one-channel T-Net's weights for three input channels (z-1, z, z+1).

    The layers that read the image (the token embedding and the stem's first conv) get their
    weights times (w, 1-2w, w) on the three channels. The input planes are scaled by the blended
    slice's range (the daemon's `neighbourChannels`), so the new model computes exactly what the
    old one computed on the blend: it starts where the shipped model is.
    """
    out = dict(state)
    shares = torch.tensor([w, 1 - 2 * w, w]).view(1, 3, 1, 1)
    for key in ("embed.weight", "stem.0.weight"):
        if key in out:
            weight = out[key]
            if weight.shape[1] != 1:
                raise ValueError(f"{key} has {weight.shape[1]} input channels, expected 1")
            out[key] = weight * shares
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    aug_gen = torch.Generator().manual_seed(args.seed)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)

    ds = PatchDataset(args.data)
    train_idx, val_idx, split = ds.split(args.val_fraction, args.seed)
    if args.max_val and len(val_idx) > args.max_val:
        val_idx = np.sort(rng.choice(val_idx, args.max_val, replace=False))
    if len(train_idx) == 0 or len(val_idx) == 0:
        print(f"error: split left {len(train_idx)} train / {len(val_idx)} val patches", file=sys.stderr)
        return 2

    channels = args.in_channels or ds.channels
    if channels != ds.channels:
        print(f"error: --in-channels {channels}, but {args.data} has {ds.channels}-channel images", file=sys.stderr)
        return 2
    if channels != 1 and args.model != "tnet":
        print("error: only tnet takes more than one input channel", file=sys.stderr)
        return 2
    config = {"width": args.width, "depth": args.depth, "heads": args.heads} if args.model == "tnet" else {}
    if channels != 1:
        config["in_channels"] = channels
    model = build_model(args.model, config).to(device)
    config = model.config  # the full config, defaults included
    previous = None
    init_ckpt = None
    inflate_used = False
    if args.init:
        init = init_ckpt = torch.load(args.init, map_location="cpu")
        init_config = dict(init.get("config") or {})
        inflate = init.get("model") == args.model and init_config.get("in_channels", 1) == 1 and channels == 3 \
            and init_config == {k: v for k, v in config.items() if k != "in_channels"}
        if init.get("model") != args.model or (init_config != config and not inflate):
            print(f"error: --init {args.init} holds {init.get('model')} {init.get('config')}, not {args.model} {config}", file=sys.stderr)
            return 2
        state = init["state_dict"]
        if inflate:
            inflate_used = True
            state = inflate_input_channels(state, args.init_blend_weight)
            print(f"init: one-channel {args.init} inflated to 3 channels as the blend "
                  f"({args.init_blend_weight}, {1 - 2 * args.init_blend_weight}, {args.init_blend_weight})")
        model.load_state_dict(state)
        # Keep the earlier run's record so the model card can report the whole training.
        prev_json = os.path.join(os.path.dirname(os.path.abspath(args.init)), f"{args.model}.train.json")
        if os.path.exists(prev_json):
            with open(prev_json) as f:
                prev = json.load(f)
            previous = {k: prev.get(k) for k in ("wallTimeSeconds", "epochsDone", "steps", "best", "hardware", "hyperparameters", "previousRun")}
        previous = {"checkpoint": os.path.abspath(args.init), **(previous or {})}
        if init.get("fromOnnx"):
            previous["fromOnnx"] = init["fromOnnx"]
    n_params = count_parameters(model)
    peak_lr = args.lr if args.lr is not None else DEFAULT_LR[args.model]
    input_layers = {"embed.weight", "embed.bias", "stem.0.weight"}
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if n not in input_layers], "scale": 1.0},
        {"params": [p for n, p in named if n in input_layers], "scale": args.input_lr_scale},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=peak_lr, weight_decay=args.weight_decay)
    aug_cfg = AugmentConfig()
    budget_s = args.time_budget_min * 60 if args.time_budget_min else None
    epochs = args.epochs if args.epochs is not None else (10**9 if budget_s else DEFAULT_EPOCHS)
    epoch_size = min(args.epoch_patches, len(train_idx)) if args.epoch_patches > 0 else len(train_idx)
    steps_per_epoch = max(1, epoch_size // args.batch)
    if args.needle_weight != 1 and ds.habits is None:
        print(f"error: --needle-weight needs {args.data}/habits.npy (simulate --dataset writes it)", file=sys.stderr)
        return 2
    bn_layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if init_ckpt is not None and init_ckpt.get("foldedBatchNorm") and not args.freeze_bn:
        print(f"error: --init {args.init} was read back from ONNX, its BatchNorm statistics folded away: "
              "continue it with --freeze-bn", file=sys.stderr)
        return 2

    def score(metrics: dict) -> float:
        """What the kept checkpoint is best at: val Dice, plus the needle term if asked for."""
        return metrics["dice"] + args.select_needle_weight * (metrics.get("needleRecall") or 0.0)
    total_steps = epochs * steps_per_epoch

    hw = hardware(device)
    print(f"{args.model}: {n_params:,} parameters, config {config}")
    print(f"data {args.data}: {len(train_idx)} train / {len(val_idx)} val patches, split {split}")
    print(f"hardware: {hw['summary']}; lr {peak_lr}, batch {args.batch}, "
          f"epochs {args.epochs or '-'}, budget {args.time_budget_min or '-'} min")

    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, f"{args.model}.pt")
    json_path = os.path.join(args.out, f"{args.model}.train.json")
    history: list[dict] = []
    best: dict | None = None
    step, epoch, lr = 0, 0, peak_lr
    val_seconds = None  # measured at the first validation; estimated until then
    train_patch_s = None
    stop = False

    def record(status: str) -> None:
        rec = {
            "model": args.model,
            "status": status,
            "config": config,
            "parameters": n_params,
            "data": os.path.abspath(args.data),
            "datasetSeeds": ds.index.get("seeds"),
            "normalization": ds.index.get("normalization"),
            "split": split,
            "trainPatches": int(len(train_idx)),
            "valPatches": int(len(val_idx)),
            "hyperparameters": {
                "loss": ("bce" if args.needle_weight == 1 else f"bce(needle voxels x{args.needle_weight})")
                + ("" if args.dice_weight <= 0 else f"+{args.dice_weight}*softdice"),
                "freezeBatchNorm": args.freeze_bn, "epochPatches": args.epoch_patches or None,
                "inputChannels": channels, "inputLrScale": args.input_lr_scale,
                **({"inflatedFrom1Channel": {"blendWeight": args.init_blend_weight}} if inflate_used else {}),
                "selection": "valDice" if not args.select_needle_weight else f"valDice+{args.select_needle_weight}*valNeedleRecall",
                "optimizer": "AdamW", "schedule": "warmup+cosine", "peakLr": peak_lr,
                "weightDecay": args.weight_decay, "warmupSteps": args.warmup_steps, "batch": args.batch,
                "epochs": args.epochs, "timeBudgetMin": args.time_budget_min, "seed": args.seed,
                "valFraction": args.val_fraction, "augment": None if args.no_augment else vars(aug_cfg),
            },
            "epochsDone": epoch,
            "previousRun": previous,
            "steps": step,
            "wallTimeSeconds": round(time.monotonic() - t_start, 1),
            "trainPatchesPerSecond": train_patch_s,
            "hardware": hw,
            "best": best,
            "finalLr": lr,
            "history": history,
            "checkpoint": os.path.abspath(ckpt_path),
        }
        atomic_write(json_path, lambda p: write_text(p, json.dumps(rec, indent=2) + "\n"))

    def save_best(metrics: dict) -> None:
        nonlocal best
        best = {"epoch": epoch, "score": score(metrics), **{f"val{k[0].upper()}{k[1:]}": v for k, v in metrics.items()}}
        ckpt = {
            "model": args.model, "config": config, "state_dict": model.state_dict(),
            "epoch": epoch, "metrics": best, "split": split, "parameters": n_params,
            **({"foldedBatchNorm": init_ckpt["foldedBatchNorm"]} if init_ckpt and init_ckpt.get("foldedBatchNorm") else {}),
        }
        atomic_write(ckpt_path, lambda p: torch.save(ckpt, p))

    if init_ckpt is not None:
        # Where the phase starts, measured as every epoch is: it stays the kept checkpoint unless beaten.
        start = evaluate(model, ds, val_idx, args.batch * 2, device)
        history.append({"epoch": 0, "steps": 0, **{f"val{k[0].upper()}{k[1:]}": v for k, v in start.items()}})
        save_best(start)
        print(f"start   | val dice {start['dice']:.4f} mIoU {start['mIoU']:.4f} needle recall "
              f"{start['needleRecall'] if start['needleRecall'] is None else round(start['needleRecall'], 4)}", flush=True)

    while epoch < epochs and not stop:
        model.train()
        if args.freeze_bn:
            for m in bn_layers:
                m.eval()
        t_epoch = time.monotonic()
        loss_sum, seen = 0.0, 0
        epoch_idx = rng.choice(train_idx, epoch_size, replace=False) if epoch_size < len(train_idx) else train_idx
        for img, mask, hab in ds.batches(epoch_idx, args.batch, rng=rng, drop_last=True, with_habits=True):
            if not args.no_augment:
                # The habit map travels with the mask, so it gets exactly the same geometry.
                img, both = augment(img, torch.cat([mask, hab], 1), aug_cfg, aug_gen)
                mask, hab = both[:, :1], both[:, 1:]
            img, mask = img.to(device, non_blocking=True), mask.to(device, non_blocking=True)
            weight = None
            if args.needle_weight != 1:
                weight = (1 + (args.needle_weight - 1) * (hab == 3).float()).to(device, non_blocking=True)
            elapsed = time.monotonic() - t_start
            progress = step / total_steps
            if budget_s:
                progress = max(progress, elapsed / budget_s)
            lr = lr_at(step, progress, peak_lr, args.warmup_steps)
            for group in opt.param_groups:
                group["lr"] = lr * group["scale"]
            loss = training_loss(model.forward_logits(img), mask, args.dice_weight, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item() * img.shape[0]
            seen += img.shape[0]
            if budget_s:
                # Stop early enough that the final validation still fits in the budget.
                per_patch = (time.monotonic() - t_epoch) / seen
                est_val = val_seconds if val_seconds is not None else per_patch * len(val_idx) / 3
                if time.monotonic() - t_start + est_val >= budget_s:
                    stop = True
                    break
        train_s = time.monotonic() - t_epoch
        train_patch_s = round(seen / train_s, 2) if seen else train_patch_s
        epoch += 1

        t_val = time.monotonic()
        val = evaluate(model, ds, val_idx, args.batch * 2, device)
        val_seconds = time.monotonic() - t_val
        row = {
            "epoch": epoch, "steps": step, "trainLoss": loss_sum / max(seen, 1), "trainPatches": seen,
            "lr": lr, "epochSeconds": round(train_s + val_seconds, 1), "trainPatchesPerSecond": train_patch_s,
            **{f"val{k[0].upper()}{k[1:]}": v for k, v in val.items()},
        }
        history.append(row)
        improved = best is None or score(val) > best["score"]
        if improved:
            save_best(val)
        if args.keep_epochs:
            snapshot = {"model": args.model, "config": config, "state_dict": model.state_dict(), "epoch": epoch,
                        "metrics": {f"val{k[0].upper()}{k[1:]}": v for k, v in val.items()}, "split": split,
                        "parameters": n_params,
                        **({"foldedBatchNorm": init_ckpt["foldedBatchNorm"]} if init_ckpt and init_ckpt.get("foldedBatchNorm") else {})}
            atomic_write(os.path.join(args.out, f"{args.model}.epoch{epoch}.pt"), lambda p: torch.save(snapshot, p))
        conf = val["confounderFpRate"]
        needle = val["needleRecall"]
        print(
            f"epoch {epoch:3d} | train loss {row['trainLoss']:.4f} | val loss {val['loss']:.4f} "
            f"dice {val['dice']:.4f} mIoU {val['mIoU']:.4f} mDSC {val['mDSC']:.4f} "
            f"conf-fp {'-' if conf is None else f'{conf:.4f}'} needle {'-' if needle is None else f'{needle:.4f}'} | lr {lr:.2e} | "
            f"{train_patch_s} patches/s | {time.monotonic() - t_start:.0f} s{' *' if improved else ''}",
            flush=True,
        )
        record("running")

    record("done")
    print(f"best epoch {best['epoch']}: val dice {best['valDice']:.4f}, mIoU {best['valMIoU']:.4f}; "
          f"wrote {ckpt_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
