"""HED edge detector (Xie & Tu, 2015) on the VGG16 encoder: five side outputs + a fusion layer.
Used only to measure how much structure a stylisation keeps (an output training never optimises)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vgg import EncoderConfig, VGGEncoder

HED_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


class HED(nn.Module):
    """RGB [0, 1] (b, 3, h, w) -> fused edge probability (b, 1, h, w)."""

    def __init__(self, encoder_config: EncoderConfig):
        super().__init__()
        self.encoder = VGGEncoder(encoder_config, HED_TAPS)
        for i, c in enumerate((64, 128, 256, 512, 512), start=1):
            setattr(self, f"dsn{i}", nn.Conv2d(c, 1, 1))
        self.fuse = nn.Conv2d(5, 1, 1)
        self.requires_grad_(False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(image)
        size = image.shape[-2:]
        sides = [F.interpolate(getattr(self, f"dsn{i}")(feats[t]), size=size, mode="bilinear", align_corners=False)
                 for i, t in enumerate(HED_TAPS, start=1)]
        return torch.sigmoid(self.fuse(torch.cat(sides, dim=1)))
