"""Read a shipped ONNX model's weights back into its PyTorch module: a checkpoint to continue from.

The repository keeps the shipped models as ONNX only (each under 20 MB, no PyTorch pickles), so a
later training phase starts here. The export (opset 17, `export.py`) leaves most weights under
their module names; the rest are recovered from the graph:

* a Linear layer becomes MatMul (weight transposed, an anonymous `onnx::MatMul_*` initializer)
  plus Add (the bias keeps its name): the MatMul node's name carries the module path
  (`/layers.0/attn/qkv/MatMul` -> `layers.0.attn.qkv`);
* Conv + BatchNorm (eval) pairs are folded into one Conv with anonymous weight and bias
  (`/dec16/dec16.0/Conv` -> module `dec16.0`, its BatchNorm `dec16.1`). The folded conv is put
  back as the conv's weight, and the BatchNorm becomes the identity plus the folded bias
  (running mean 0, running variance 1, weight sqrt(1 + eps)). Such a checkpoint computes exactly
  what the ONNX file computes, but its BatchNorm statistics are gone: continue it with
  `train.py --freeze-bn` (BatchNorm layers kept in eval mode, their affine parts still learn).

Every parameter and buffer of the module must be accounted for, and every ONNX initializer used;
the result is checked against the ONNX graph by `parity.ts`-style comparison in
`finish-model.ts` after export, and here by `--check FILE`: a raw float32 (B,1,128,128) input
is run through the rebuilt module and its output written beside it for onnxruntime to compare.

Usage:
  /usr/bin/python3 models/training/onnx_to_torch.py --card models/tnet.json --out runs/from-onnx/tnet.pt
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from common import build_model


def recover_state_dict(model: nn.Module, graph: onnx.GraphProto) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The module's state dict rebuilt from `graph`; and notes on what had to be reconstructed."""
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    used: set[str] = set()
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    notes: list[str] = []

    def put(key: str, value: np.ndarray) -> None:
        want = target[key]
        if tuple(value.shape) != tuple(want.shape):
            raise ValueError(f"{key}: ONNX gives shape {tuple(value.shape)}, the module has {tuple(want.shape)}")
        out[key] = torch.from_numpy(np.array(value, copy=True)).to(want.dtype)

    # 1. Everything exported under its own name.
    for key in target:
        if key in inits:
            put(key, inits[key])
            used.add(key)

    modules = dict(model.named_modules())

    def module_path(node_name: str) -> str:
        # "/layers.0/attn/qkv/MatMul" -> "layers.0.attn.qkv"; "/dec16/dec16.0/Conv" -> "dec16.0"
        parts = [p for p in node_name.split("/") if p][:-1]
        if not parts:
            raise ValueError(f"ONNX node {node_name!r} names no module")
        # Sequential children repeat their parent's name ("dec16/dec16.0"): the last part is the path.
        if len(parts) > 1 and parts[-1].split(".")[0] == parts[-2]:
            parts = parts[:-2] + parts[-1:]
        path = ".".join(parts)
        if path not in modules:
            raise ValueError(f"ONNX node {node_name!r}: no module {path!r} in the model")
        return path

    # 2. Linear weights: anonymous MatMul initializers (stored transposed).
    for node in graph.node:
        anonymous = [i for i in node.input if i.startswith("onnx::") and i in inits]
        if not anonymous:
            continue
        path = module_path(node.name)
        if node.op_type == "MatMul":
            (name,) = anonymous
            put(f"{path}.weight", inits[name].T)
            used.add(name)
        elif node.op_type == "Conv":
            # A conv with its BatchNorm folded in: the next Sequential child is that BatchNorm.
            parent, _, idx = path.rpartition(".")
            bn_path = f"{parent}.{int(idx) + 1}"
            bn = modules.get(bn_path)
            if not isinstance(bn, nn.BatchNorm2d):
                raise ValueError(f"ONNX node {node.name!r}: folded conv, but {bn_path!r} is not a BatchNorm2d")
            w_name, b_name = anonymous
            put(f"{path}.weight", inits[w_name])
            if f"{path}.bias" in target:
                raise ValueError(f"{path}: folded conv on a conv that has its own bias")
            n = inits[b_name].shape[0]
            put(f"{bn_path}.running_mean", np.zeros(n, np.float32))
            put(f"{bn_path}.running_var", np.ones(n, np.float32))
            put(f"{bn_path}.weight", np.full(n, np.sqrt(1 + bn.eps), np.float32))
            put(f"{bn_path}.bias", inits[b_name])
            used.update((w_name, b_name))
            notes.append(bn_path)
        else:
            raise ValueError(f"ONNX node {node.name!r} ({node.op_type}) holds anonymous weights this reader does not know")

    # 3. BatchNorm step counters are not in an inference graph; they only matter to momentum=None.
    for key, value in target.items():
        if key.endswith("num_batches_tracked") and key not in out:
            out[key] = torch.zeros_like(value)

    missing = [k for k in target if k not in out]
    unused = [k for k in inits if k not in used]
    if missing:
        raise ValueError(f"not found in the ONNX graph: {', '.join(missing)}")
    if unused:
        raise ValueError(f"ONNX initializers left over (the module does not match the graph): {', '.join(unused)}")
    return out, notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--card", required=True, help="the model card (models/tnet.json): names the ONNX file and the config")
    ap.add_argument("--out", required=True, help="checkpoint to write (train.py --init reads it)")
    ap.add_argument("--check", help="raw float32 (B,1,P,P) input file: write the module's output to FILE.torch.f32")
    args = ap.parse_args(argv)

    with open(args.card) as f:
        card = json.load(f)
    onnx_path = os.path.join(os.path.dirname(os.path.abspath(args.card)), card["file"])
    name = card["name"]
    config = card["architecture"]["config"]
    model = build_model(name, config)
    graph = onnx.load(onnx_path).graph
    try:
        state, folded = recover_state_dict(model, graph)
    except ValueError as err:
        print(f"error: {onnx_path}: {err}", file=sys.stderr)
        return 2
    model.load_state_dict(state)
    model.eval()
    print(f"{onnx_path}: {len(state)} tensors into {name}; {len(folded)} BatchNorm layers folded into their convs "
          f"(identity now: continue with train.py --freeze-bn): {', '.join(folded)}")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    ckpt = {
        "model": name, "config": model.config, "state_dict": model.state_dict(),
        "fromOnnx": {"file": onnx_path, "sha256": card.get("sha256"), "foldedBatchNorm": folded},
        "foldedBatchNorm": folded,
    }
    torch.save(ckpt, args.out + ".tmp")
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out}")

    if args.check:
        p = card["patchSize"]
        x = np.fromfile(args.check, dtype=np.float32)
        if x.size % (p * p):
            print(f"error: --check {args.check}: {x.size} floats are not whole {p}x{p} patches", file=sys.stderr)
            return 2
        with torch.no_grad():
            y = model(torch.from_numpy(x.reshape(-1, 1, p, p))).numpy().astype(np.float32)
        y.tofile(args.check + ".torch.f32")
        print(f"wrote {args.check}.torch.f32 ({y.shape[0]} patches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
