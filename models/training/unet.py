"""U-Net baseline for 128x128x1 patches (the paper's comparison model).

Four 2x2 max-pool downsamplings with channels 16 -> 32 -> 64 -> 128 -> 256 (bottleneck at
8x8), each level two 3x3 conv + BatchNorm + ReLU; the decoder mirrors it with stride-2
transposed convolutions and skip concatenation; 1x1 conv + sigmoid.

`forward` returns probabilities (the ONNX contract), `forward_logits` logits for training.
"""

from __future__ import annotations

import torch
from torch import nn

from tnet import conv_block, count_parameters, up


class UNet(nn.Module):
    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128, 256)) -> None:
        super().__init__()
        self.config = dict(channels=list(channels))
        self.down = nn.ModuleList()
        cin = 1
        for c in channels:
            self.down.append(conv_block(cin, c))
            cin = c
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList()
        self.dec = nn.ModuleList()
        for c_deep, c in zip(channels[:0:-1], channels[-2::-1]):
            self.ups.append(up(c_deep, c))
            self.dec.append(conv_block(2 * c, c))
        self.head = nn.Conv2d(channels[0], 1, 1)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()  # the bottleneck output is x itself
        for upconv, block in zip(self.ups, self.dec):
            x = block(torch.cat([upconv(x), skips.pop()], dim=1))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward_logits(x))


if __name__ == "__main__":
    torch.set_num_threads(2)
    m = UNet()
    y = m(torch.rand(2, 1, 128, 128))
    print(f"U-Net: {count_parameters(m):,} parameters, out {tuple(y.shape)}")
