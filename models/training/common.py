"""Shared helpers for the training scripts: model registry, checkpoints, hardware string."""

from __future__ import annotations

import os
import platform

import torch
from torch import nn

from tnet import TNet, count_parameters
from unet import UNet

MODELS = {"tnet": TNet, "unet": UNet}

__all__ = ["MODELS", "build_model", "count_parameters", "load_checkpoint", "hardware", "cpu_model"]


def build_model(name: str, config: dict | None = None) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    cfg = dict(config or {})
    for key in ("decoder_channels", "channels"):  # JSON round-trips tuples as lists
        if key in cfg:
            cfg[key] = tuple(cfg[key])
    return MODELS[name](**cfg)


def load_checkpoint(path: str) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint written by train.py describes; returns (model, checkpoint)."""
    ckpt = torch.load(path, map_location="cpu")
    model = build_model(ckpt["model"], ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device) -> dict:
    info = {
        "cpu": cpu_model(),
        "cpuCount": os.cpu_count(),
        "torchThreads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    info["summary"] = (
        f"{info.get('gpu', info['cpu'])}, {info['torchThreads']} torch threads, torch {info['torch']}"
    )
    return info
