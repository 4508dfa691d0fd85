"""T-Net ("TransforCNN", arXiv 2302.04824): a ViT encoder with a CNN decoder.

Architecture (defaults = the paper's configuration):

* A 128x128x1 patch (x3 with `in_channels=3`: the slices above and below as channels of their
  own) is cut into 16x16 sub-patches -> an 8x8 grid of 64 tokens, each linearly
  embedded to 64 dims (done as a 16x16 stride-16 convolution, which is the same linear map
  and exports to ONNX as one Conv).
* Fourier-feature position encoding (Tancik et al. 2020): the 2-D token-centre coordinates
  in [0, 1]^2 are projected by a fixed, seeded random Gaussian matrix B, mapped to
  [sin(2*pi*vB), cos(2*pi*vB)], then linearly projected to the embedding width and added.
* 8 pre-norm transformer encoder layers (multi-head self-attention + GELU MLP).
* The outputs of every second layer (2, 4, 6, 8) are reshaped to 8x8x64 maps and used as
  skips by a CNN decoder that upsamples 8 -> 16 -> 32 -> 64 -> 128 (UNETR-style: layer 8 is
  the bottleneck, layers 6/4/2 are brought to 16/32/64 px by 1/2/3 stride-2 transposed
  convolutions, and a small conv stem on the raw image is the 128-px skip, because 16x16
  tokens alone cannot carry the 1-2 px detail of thin dendrite branches).
* 1x1 conv + sigmoid.

`forward` returns sigmoid probabilities (the ONNX contract); `forward_logits` returns logits
so training can use the numerically stable BCE-with-logits.

ONNX notes: no Python batch size is ever baked in; every reshape uses -1 for the batch
axis and only constants derived from the configuration (token count, width) elsewhere.
"""

from __future__ import annotations

import math

import torch
from torch import nn

IMG_SIZE = 128
PATCH_SIZE = 16
GRID = IMG_SIZE // PATCH_SIZE  # 8
TOKENS = GRID * GRID  # 64


class FourierPositionEncoding(nn.Module):
    """Fixed random Fourier features of the token grid, followed by a learned projection."""

    def __init__(self, dim: int, n_features: int, scale: float, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        b = torch.randn(2, n_features, generator=g) * scale
        # Token centres in [0, 1]^2, row-major to match the conv-embedding flatten order.
        c = (torch.arange(GRID, dtype=torch.float32) + 0.5) / GRID
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        coords = torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=1)  # (TOKENS, 2)
        proj = 2 * math.pi * coords @ b
        # Persistent so a checkpoint is self-describing even if the RNG ever changes.
        self.register_buffer("features", torch.cat([proj.sin(), proj.cos()], dim=1).unsqueeze(0))
        self.proj = nn.Linear(2 * n_features, dim)

    def forward(self) -> torch.Tensor:
        return self.proj(self.features)  # (1, TOKENS, dim); constant-folded in ONNX


class Attention(nn.Module):
    """Multi-head self-attention written out so every reshape keeps the batch axis dynamic."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x).reshape(-1, TOKENS, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, TOKENS, head_dim)
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(-1, TOKENS, self.dim)
        return self.out(y)


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 conv + BatchNorm + ReLU, the decoder's basic unit."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def up(cin: int, cout: int) -> nn.ConvTranspose2d:
    """x2 upsampling; a transposed conv (not Resize) keeps the ONNX graph plain."""
    return nn.ConvTranspose2d(cin, cout, 2, stride=2)


class SkipProjection(nn.Module):
    """Bring an 8x8 token map up by `steps` doublings to `cout` channels (UNETR-style)."""

    def __init__(self, cin: int, cout: int, steps: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        for _ in range(steps):
            layers += [up(c, cout), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            c = cout
        layers.append(nn.Conv2d(cout, cout, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TNet(nn.Module):
    """T-Net; defaults are the paper's configuration (width 64, depth 8)."""

    def __init__(
        self,
        width: int = 64,
        depth: int = 8,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        decoder_channels: tuple[int, int, int, int] = (128, 64, 32, 16),
        fourier_features: int = 32,
        fourier_scale: float = 3.0,
        fourier_seed: int = 0,
        image_skip: bool = True,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if depth < 4 or depth % 4:
            raise ValueError("depth must be a positive multiple of 4 (four evenly spaced skips)")
        self.config = dict(
            width=width,
            depth=depth,
            heads=heads,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            decoder_channels=list(decoder_channels),
            fourier_features=fourier_features,
            fourier_scale=fourier_scale,
            fourier_seed=fourier_seed,
            image_skip=image_skip,
        )
        # Only named when not 1, so the config of every one-channel checkpoint and card stays as it was.
        if in_channels != 1:
            self.config["in_channels"] = in_channels
        self.in_channels = in_channels
        self.width = width
        # Default depth 8 -> skips after layers 2, 4, 6, 8 (1-based), i.e. every depth/4 layers.
        self.skip_layers = [depth * (i + 1) // 4 for i in range(4)]

        self.embed = nn.Conv2d(in_channels, width, PATCH_SIZE, stride=PATCH_SIZE)
        self.pos = FourierPositionEncoding(width, fourier_features, fourier_scale, fourier_seed)
        self.layers = nn.ModuleList([EncoderLayer(width, heads, mlp_ratio, dropout) for _ in range(depth)])
        # The pre-norm residual stream is unnormalised; normalise each tapped output.
        self.skip_norms = nn.ModuleList([nn.LayerNorm(width) for _ in range(4)])

        c16, c32, c64, c128 = decoder_channels
        self.bottleneck = conv_block(width, c16)  # layer-8 map at 8x8
        self.up16, self.skip16, self.dec16 = up(c16, c16), SkipProjection(width, c16, 1), conv_block(2 * c16, c16)
        self.up32, self.skip32, self.dec32 = up(c16, c32), SkipProjection(width, c32, 2), conv_block(2 * c32, c32)
        self.up64, self.skip64, self.dec64 = up(c32, c64), SkipProjection(width, c64, 3), conv_block(2 * c64, c64)
        self.up128 = up(c64, c128)
        self.stem = conv_block(in_channels, c128) if image_skip else None
        self.dec128 = conv_block(2 * c128 if image_skip else c128, c128)
        self.head = nn.Conv2d(c128, 1, 1)

    def _to_map(self, tokens: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        # (B, TOKENS, C) -> (B, C, 8, 8); token order is row-major, as produced by the embedding.
        return norm(tokens).transpose(1, 2).reshape(-1, self.width, GRID, GRID)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).reshape(-1, self.width, TOKENS).transpose(1, 2) + self.pos()
        skips = []
        for i, layer in enumerate(self.layers, start=1):
            t = layer(t)
            if i in self.skip_layers:
                skips.append(self._to_map(t, self.skip_norms[len(skips)]))
        s2, s4, s6, s8 = skips

        d = self.bottleneck(s8)
        d = self.dec16(torch.cat([self.up16(d), self.skip16(s6)], dim=1))
        d = self.dec32(torch.cat([self.up32(d), self.skip32(s4)], dim=1))
        d = self.dec64(torch.cat([self.up64(d), self.skip64(s2)], dim=1))
        d = self.up128(d)
        if self.stem is not None:
            d = torch.cat([d, self.stem(x)], dim=1)
        return self.head(self.dec128(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward_logits(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":
    torch.set_num_threads(2)
    for kw in ({}, {"width": 128, "depth": 12, "heads": 8}):
        m = TNet(**kw)
        y = m(torch.rand(2, 1, IMG_SIZE, IMG_SIZE))
        print(f"T-Net {m.config['width']}x{m.config['depth']}: {count_parameters(m):,} parameters, out {tuple(y.shape)}")
