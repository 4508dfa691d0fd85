"""Export a trained checkpoint to ONNX and write a parity fixture for the Node runtime.

Usage:
  /usr/bin/python3 models/training/export.py --checkpoint RUNS/tnet.pt --onnx models/tnet.onnx [--data DATA]

The ONNX contract the daemon relies on:
  input  `image` float32 (N,1,128,128), normalised like the training patches
  output `prob`  float32 (N,1,128,128), sigmoid probabilities of "dendrite"
  opset 17, dynamic batch axis N on both.

No ONNX runtime exists for Python here, so the dynamic batch is guarded two ways: the
model is traced at one batch size and the trace re-run at others (any Python-int batch
size baked in by the tracer shows up as an error or a mismatch), and the exported graph
is scanned for Reshape targets with a fixed leading dimension.

Writes next to the checkpoint: <model>.parity-input.npy (4,1,128,128) and
<model>.parity-output.npy (torch's eval-mode output) so a Node test can check that
onnxruntime-node agrees within 1e-4, plus <model>.export.json (file, sha256, size, I/O).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from common import load_checkpoint

TRACE_BATCH = 3  # an odd size, so a baked-in batch is easy to tell from the others
CHECK_BATCHES = (1, 2, 5)
PARITY_SEED = 1234


def input_channels(model: torch.nn.Module) -> int:
    """Planes per patch the model takes: 1, or 3 for a T-Net with the neighbouring slices as channels."""
    return int(getattr(model, "in_channels", 1))


def check_trace_is_batch_agnostic(model: torch.nn.Module) -> None:
    """Trace at TRACE_BATCH, then run the trace at other batch sizes against eager mode."""
    g = torch.Generator().manual_seed(0)
    c = input_channels(model)
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.rand(TRACE_BATCH, c, 128, 128, generator=g), check_trace=False)
        for b in CHECK_BATCHES:
            x = torch.rand(b, c, 128, 128, generator=g)
            diff = (traced(x) - model(x)).abs().max().item()
            if diff > 1e-5:
                raise RuntimeError(f"trace disagrees with eager mode at batch {b} (max |diff| {diff:g})")


def check_onnx(path: str, channels: int = 1) -> onnx.ModelProto:
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    for value, name, c in ((m.graph.input[0], "image", channels), (m.graph.output[0], "prob", 1)):
        dims = value.type.tensor_type.shape.dim
        if value.name != name or value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise RuntimeError(f"graph I/O {value.name!r} is not float32 {name!r}")
        if not dims[0].dim_param or [d.dim_value for d in dims[1:]] != [c, 128, 128]:
            raise RuntimeError(f"{name} has shape {dims}, expected (N,{c},128,128) with symbolic N")
    # Any Reshape whose target is a constant must not pin the batch axis.
    consts = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    for node in m.graph.node:
        if node.op_type == "Reshape" and node.input[1] in consts:
            shape = consts[node.input[1]].tolist()
            if shape and shape[0] not in (-1, 0):
                raise RuntimeError(f"Reshape {node.name} has a fixed leading dimension: {shape}")
    return m


def parity_input(data: str | None, channels: int = 1) -> tuple[np.ndarray, str]:
    """Four realistic patches (one of each kind where possible) or, without data, random ones."""
    rng = np.random.default_rng(PARITY_SEED)
    if data:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from data import PatchDataset

        ds = PatchDataset(data)
        picks: list[int] = []
        for kind in ("dendrite", "pit", "bubble", "background"):
            cand = [i for i, k in enumerate(ds.kinds) if k == kind and i not in picks]
            if cand:
                picks.append(int(rng.choice(cand)))
        rest = [i for i in range(len(ds)) if i not in picks]
        picks += [int(i) for i in rng.choice(rest, size=min(4 - len(picks), len(rest)), replace=False)]
        x = np.stack([np.asarray(ds.images[i], dtype=np.float32) for i in picks])
        if x.ndim == 3:
            x = x[:, None]
        if x.shape[0] == 4 and x.shape[1] == channels:
            return np.ascontiguousarray(x), f"dataset {os.path.abspath(data)} patches {picks}"
    # Electrolyte-like grey with noise and a dark band, in the normalised range.
    x = (0.7 + 0.05 * rng.standard_normal((4, channels, 128, 128))).astype(np.float32)
    x[:, :, :30] -= 0.4
    return x, f"synthetic random (seed {PARITY_SEED})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="OUT/<model>.pt written by train.py")
    ap.add_argument("--onnx", required=True, help="where to write the .onnx file")
    ap.add_argument("--data", help="dataset directory to draw the 4 parity patches from")
    ap.add_argument("--max-mb", type=float, default=20.0, help="fail if the file is larger (0 = no limit)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    model, ckpt = load_checkpoint(args.checkpoint)
    name = ckpt["model"]
    check_trace_is_batch_agnostic(model)
    channels = input_channels(model)

    os.makedirs(os.path.dirname(os.path.abspath(args.onnx)), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model,
            torch.rand(TRACE_BATCH, channels, 128, 128),
            args.onnx,
            opset_version=17,
            input_names=["image"],
            output_names=["prob"],
            dynamic_axes={"image": {0: "N"}, "prob": {0: "N"}},
            do_constant_folding=True,
        )
    m = check_onnx(args.onnx, channels)
    size = os.path.getsize(args.onnx)
    with open(args.onnx, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    if args.max_mb and size > args.max_mb * 2**20:
        print(f"error: {args.onnx} is {size / 2**20:.1f} MiB, over the {args.max_mb} MiB limit", file=sys.stderr)
        return 1

    x, source = parity_input(args.data, channels)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy().astype(np.float32)
    base = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), name)
    np.save(base + ".parity-input.npy", x)
    np.save(base + ".parity-output.npy", y)
    info = {
        "model": name,
        "onnx": os.path.abspath(args.onnx),
        "sha256": sha,
        "bytes": size,
        "opset": 17,
        "ops": sorted({n.op_type for n in m.graph.node}),
        "input": {"name": "image", "shape": ["N", channels, 128, 128], "dtype": "float32"},
        "output": {"name": "prob", "shape": ["N", 1, 128, 128], "dtype": "float32", "meaning": "sigmoid probability"},
        "config": ckpt["config"],
        "checkpointEpoch": ckpt.get("epoch"),
        "checkpointMetrics": ckpt.get("metrics"),
        "parity": {
            "input": base + ".parity-input.npy",
            "output": base + ".parity-output.npy",
            "source": source,
            "tolerance": 1e-4,
        },
    }
    with open(base + ".export.json", "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(f"wrote {args.onnx} ({size / 2**20:.2f} MiB, sha256 {sha[:12]}...), ops {info['ops']}")
    print(f"parity fixture {base}.parity-{{input,output}}.npy from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
