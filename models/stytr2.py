"""StyTr² (Deng et al., CVPR 2022): transformer style transfer with content-aware positional encoding,
extended to blend K styles in one pass.

    content ─ patch embed ─┬─ CAPE ─┐
                           └────────┴─ content encoder ─┐
    style_k ─ patch embed ─── style encoder ────────────┴─ decoder (content queries, style keys/values)
                                                            └─ CNN decoder (mirror of VGG19 to relu4_1) ─ image

Layer semantics follow the published release, so its weights convert (models/convert.py):
post-norm blocks; positions are added to queries and keys, never to values; the style side has no
positions; each decoder layer attends to the style tokens *twice* (the release's first attention is
named `self_attn` but reads the style memory) before its MLP. The VGG encoder (`self.encoder`) only
serves the training losses; the forward pass never calls it.

Blending K styles: the decoder attends to the union of the K styles' tokens, each style's keys with the
bias log(w_k) - logsumexp_k(logits over its own keys), so style k receives exactly w_k of every query's
attention mass and, within it, its own softmax; the attention output is then sum_k w_k attn_k, computed
that way (K small attentions, zero weights skipped). A plain log(w_k) bias would give style k a share
proportional to w_k times its partition function, which depends on its token count (image size) and on
how well its keys match each query, so equal weights would not mean equal influence. Weights (1, 0) give
the single-style output. alpha < 1 adds the content itself as one more style with weight
1 - alpha (alpha = 0 is the self-reconstruction the identity loss trains). A width other than the CNN
decoder's input (512) gets a 1x1 projection (`to_grid`), which the release does not have.

Letters: b - batch, n - content tokens, m - style tokens, k - styles, d - width, nh - heads, e - head width.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from . import functional as Fn
from .contract import Capabilities, per_image_alpha
from .decoder import Decoder, DecoderConfig
from .registry import register_model
from .vgg import EncoderConfig, VGGEncoder, tap_channels, tap_stride

LOSS_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass
class StyTr2Config:
    """StyTr² transformer + CNN decoder. Defaults are the published model's sizes."""

    width: int = 512  # token width (d_model)
    heads: int = 8  # attention heads; width must divide by it
    encoder_depth: int = 3  # layers of the content encoder and of the style encoder each
    decoder_depth: int = 3  # transformer decoder layers
    mlp_ratio: float = 4.0  # MLP hidden width / width (published: 2048 / 512)
    dropout: float = 0.1  # on attention weights, attention outputs and MLPs (training only)
    patch: int = 8  # patch size = token stride; the CNN decoder upsamples by the same factor
    cape_grid: int = 18  # CAPE pools the content embedding to cape_grid x cape_grid
    decoder: DecoderConfig = field(default_factory=lambda: DecoderConfig(arch="vgg19", from_tap="relu4_1"))
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(name="vgg16-hed"))  # losses only
    loss_taps: tuple[str, ...] = LOSS_TAPS  # taps the loss encoder returns


@dataclass
class StyleTokens:
    """One encoded style image: its style-encoder tokens (m, d). Reusable for any content."""

    tokens: torch.Tensor

    def to(self, device: torch.device | str) -> "StyleTokens":
        return StyleTokens(self.tokens.to(device))

    def cpu_copy(self) -> "StyleTokens":
        """A float32 CPU copy, detached (usable outside the inference mode it was made in)."""
        return StyleTokens(self.tokens.detach().float().cpu().clone())


@dataclass
class ContentTokens:
    """An encoded content image (`StyTr2Model.encode_content`), reusable for any styles and weights."""

    grid: torch.Tensor  # (b, d, h, w) patch embedding (the content's own style memory comes from it, alpha < 1)
    tokens: torch.Tensor  # (b, n, d) content-encoder output
    pos: torch.Tensor  # (b, n, d) CAPE positions
    size: tuple[int, int]  # (h, w) of the image before padding to the patch


def _mlp(cfg: StyTr2Config) -> nn.Module:
    # timm is imported here, not at module import: the registry imports this file on every lookup.
    from timm.layers import Mlp

    return Mlp(cfg.width, int(cfg.width * cfg.mlp_ratio), act_layer=nn.ReLU, drop=cfg.dropout)


class Attention(nn.Module):
    """Multi-head attention whose queries, keys and values come from separate inputs, over the union
    of K key/value sets, style k receiving w_k of the attention mass (see the module docstring)."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q, self.k, self.v = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def _split(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        return rearrange(x, "b n (nh e) -> b nh n e", nh=self.heads).expand(batch, -1, -1, -1)

    def forward(self, query: torch.Tensor, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor],
                weights: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            query: (b, n, d).
            keys, values: K tensors (b or 1, m_k, d); style k's keys and values.
            weights: (k, b or 1, n or 1) non-negative, summing to 1 over k; None for K = 1.

        Returns:
            (b, n, d).
        """
        b = query.shape[0]
        q = self._split(self.q(query), b)  # (b, nh, n, e)
        ks = [self._split(self.k(x), b) for x in keys]  # (b, nh, m_k, e)
        vs = [self._split(self.v(x), b) for x in values]
        p = self.dropout if self.training else 0.0
        if len(ks) == 1:
            out = F.scaled_dot_product_attention(q, ks[0], vs[0], dropout_p=p)
        else:  # sum_k w_k softmax_k(q K_k) V_k == union softmax with per-style lse bias
            w = rearrange(weights, "k b n -> k b 1 n 1")
            out = sum(w[i] * F.scaled_dot_product_attention(q, k, v, dropout_p=p)
                      for i, (k, v) in enumerate(zip(ks, vs)) if bool((weights[i] > 0).any()))
        return self.out(rearrange(out, "b nh n e -> b n (nh e)"))


class EncoderLayer(nn.Module):
    """Post-norm self-attention block; positions (if any) join the queries and keys, not the values."""

    def __init__(self, cfg: StyTr2Config):
        super().__init__()
        self.attn = Attention(cfg.width, cfg.heads, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.width), nn.LayerNorm(cfg.width)
        self.mlp = _mlp(cfg)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        qk = x if pos is None else x + pos
        x = self.norm1(x + self.drop(self.attn(qk, [qk], [x])))
        return self.norm2(x + self.mlp(x))


class DecoderLayer(nn.Module):
    """Content queries (+ CAPE) attend twice to the style tokens, then an MLP; post-norm."""

    def __init__(self, cfg: StyTr2Config):
        super().__init__()
        self.attn1 = Attention(cfg.width, cfg.heads, cfg.dropout)
        self.attn2 = Attention(cfg.width, cfg.heads, cfg.dropout)
        self.drop1, self.drop2 = nn.Dropout(cfg.dropout), nn.Dropout(cfg.dropout)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(cfg.width) for _ in range(3))
        self.mlp = _mlp(cfg)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, styles: Sequence[torch.Tensor],
                weights: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + self.drop1(self.attn1(x + pos, styles, styles, weights)))
        x = self.norm2(x + self.drop2(self.attn2(x + pos, styles, styles, weights)))
        return self.norm3(x + self.mlp(x))


class TransformerEncoder(nn.Module):
    """encoder_depth EncoderLayers: tokens (b, n, d) (+ positions) -> (b, n, d)."""

    def __init__(self, cfg: StyTr2Config):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_depth))

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, pos)
        return x


class TransformerDecoder(nn.Module):
    """decoder_depth DecoderLayers + a final LayerNorm: content tokens (b, n, d) -> stylised (b, n, d)."""

    def __init__(self, cfg: StyTr2Config):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_depth))
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, styles: Sequence[torch.Tensor],
                weights: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, pos, styles, weights)
        return self.norm(x)


class PatchEmbed(nn.Module):
    """RGB [0, 1] (b, 3, H, W) -> token grid (b, d, H/p, W/p) by a p x p conv of stride p."""

    def __init__(self, width: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(3, width, patch, stride=patch)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(image)


class CAPE(nn.Module):
    """Content-aware positional encoding: average-pool the content embedding to a fixed grid, a 1x1
    conv, then bilinear resize to the token grid. Positions follow content, not absolute size."""

    def __init__(self, width: int, grid: int):
        super().__init__()
        self.grid = grid
        self.proj = nn.Conv2d(width, width, 1)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """(b, d, h, w) token grid -> (b, d, h, w) positions."""
        pos = self.proj(F.adaptive_avg_pool2d(grid, self.grid))
        return F.interpolate(pos, size=grid.shape[-2:], mode="bilinear", align_corners=False)


WEIGHTS_HELP = ("no StyTr² weights are installed (looked for {where}); convert the published release with "
                "'stylemix weights convert stytr2 --vgg vgg_normalised.pth --decoder decoder_iter_160000.pth "
                "--transformer transformer_iter_160000.pth --embedding embedding_iter_160000.pth -o weights/{name}', "
                "or train one with 'stylemix train --model stytr2 --config training/configs/stytr2-small.json --out "
                "runs/stytr2' and export it there")


@register_model("stytr2", StyTr2Config, weights_help=WEIGHTS_HELP,
                recipes={"stytr2": "stylemix.training.stytr2_task:RECIPE"})
class StyTr2Model(nn.Module):
    """One content image + K weighted styles -> one stylised image, in one forward pass.

    Implements `contract.StyleModel`. Its codes are style tokens, so saved statistics codes, the style bank,
    tiling with whole-image statistics and multi-modal transfer do not apply (see `capabilities`); its VGG
    encoder only scores training losses, so no encoder can be chosen at load time.
    """

    capabilities = Capabilities()

    def __init__(self, config: StyTr2Config):
        super().__init__()
        c = config
        if c.width % c.heads:
            raise ValueError(f"width {c.width} must be divisible by heads {c.heads}")
        if tap_stride(c.decoder.from_tap) != c.patch or c.decoder.skips:
            raise ValueError(f"the CNN decoder must start at a tap of stride {c.patch} (the patch) without skips, "
                             f"got from_tap={c.decoder.from_tap!r}, skips={c.decoder.skips}")
        self.config = c
        self.embed = PatchEmbed(c.width, c.patch)
        self.cape = CAPE(c.width, c.cape_grid)
        self.content_encoder = TransformerEncoder(c)
        self.style_encoder = TransformerEncoder(c)
        self.transformer_decoder = TransformerDecoder(c)
        for name, p in self.named_parameters():  # the release's init: Xavier for every matrix
            if p.dim() > 1 and not name.startswith("embed."):
                nn.init.xavier_uniform_(p)
        grid_channels = tap_channels(c.decoder.arch, c.decoder.from_tap)
        self.to_grid = nn.Identity() if grid_channels == c.width else nn.Conv2d(c.width, grid_channels, 1)
        self.decoder = Decoder(c.decoder)
        self.encoder = VGGEncoder(c.encoder, tuple(c.loss_taps))  # frozen; losses only

    @property
    def stride(self) -> int:
        """Inputs are padded to multiples of this (the patch) and cropped back."""
        return self.config.patch

    # -- pieces (training reuses them) ---------------------------------------------------------
    def pad(self, image: torch.Tensor) -> torch.Tensor:
        """Pad (b, 3, h, w) on the bottom/right to multiples of the patch (reflect where possible)."""
        p, (h, w) = self.config.patch, image.shape[-2:]
        ph, pw = -h % p, -w % p
        if not (ph or pw):
            return image
        return F.pad(image, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")

    def embed_grid(self, image: torch.Tensor) -> torch.Tensor:
        """(b, 3, h, w) -> token grid (b, d, ceil(h/p), ceil(w/p))."""
        return self.embed(self.pad(image))

    def style_memory(self, grid: torch.Tensor) -> torch.Tensor:
        """Token grid (b, d, h, w) -> style tokens (b, m, d) (no positions)."""
        return self.style_encoder(rearrange(grid, "b d h w -> b (h w) d"))

    def content_memory(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token grid (b, d, h, w) -> (content tokens (b, n, d), CAPE positions (b, n, d))."""
        pos = rearrange(self.cape(grid), "b d h w -> b (h w) d")
        return self.content_encoder(rearrange(grid, "b d h w -> b (h w) d"), pos), pos

    def transfer(self, content: torch.Tensor, pos: torch.Tensor, styles: Sequence[torch.Tensor],
                 weights: torch.Tensor | None = None) -> torch.Tensor:
        """Content tokens (b, n, d) + K style memories (b or 1, m_k, d) with weights (k, b|1, n|1) -> (b, n, d)."""
        return self.transformer_decoder(content, pos, styles, weights)

    def decode(self, tokens: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
        """Tokens (b, n, d) on a (h, w) grid -> RGB (b, 3, h*p, w*p), not clamped."""
        grid = self.to_grid(rearrange(tokens, "b (h w) d -> b d h w", h=grid_size[0], w=grid_size[1]))
        return self.decoder(grid.to(next(self.decoder.parameters()).dtype))

    def loss_features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """VGG features {tap: (b, c, h, w)} of RGB [0, 1] images, for the losses."""
        return self.encoder(image)

    # -- inference -----------------------------------------------------------------------------
    def style_code(self, image: torch.Tensor) -> list[StyleTokens]:
        """One StyleTokens per image of the batch (b, 3, h, w); any size."""
        memory = self.style_memory(self.embed_grid(image))
        return [StyleTokens(m) for m in memory]

    def check_codes(self, codes: Sequence[object]) -> None:
        """Every code must be StyleTokens of this model's width (statistics codes suit AdaIN models only)."""
        for i, c in enumerate(codes):
            if not isinstance(c, StyleTokens) or c.tokens.shape[-1] != self.config.width:
                got = f"{type(c).__name__}" + (f" of width {c.tokens.shape[-1]}" if isinstance(c, StyleTokens) else "")
                raise ValueError(f"style {i + 1} is a {got}; this StyTr² model needs style images (or StyleTokens "
                                 f"of width {self.config.width} it encoded); statistics codes only suit AdaIN models")

    def encode_content(self, images: torch.Tensor) -> ContentTokens:
        """The contract's content encoding: (b, 3, h, w) RGB [0, 1], any size -> ContentTokens."""
        grid = self.embed_grid(images)
        tokens, pos = self.content_memory(grid)
        return ContentTokens(grid, tokens, pos, (images.shape[-2], images.shape[-1]))

    def blend_weights(self, weights: torch.Tensor, k: int, grid_size: tuple[int, int],
                      alpha: float | torch.Tensor) -> torch.Tensor:
        """Weights -> (k + [alpha < 1], b|1, n|1) attention shares.

        Args:
            weights: (k,) normalised, (k, b) one blend per output image, or (k, b, 1, h, w) spatial (resized
                to the token grid).
            alpha: in [0, 1], one per output image with (k, b) weights; alpha < 1 appends the content itself
                as one more style with weight 1 - alpha (alpha = 0: the trained reconstruction).
        """
        if weights.dim() in (2, 5) and weights.shape[0] != k:
            raise ValueError(f"got {'spatial ' if weights.dim() == 5 else ''}weights for {weights.shape[0]} styles, "
                             f"but {k} styles")
        if weights.dim() == 5:
            w = rearrange(Fn.resize_weights(weights, grid_size), "k b 1 h w -> k b (h w)")
        elif weights.dim() == 2:
            w = weights.float()[..., None]  # (k, b, 1)
        else:
            w = Fn.validate_weights(weights, k)[:, None, None]
        a = per_image_alpha(alpha, weights.shape[1] if weights.dim() == 2 else 1)[None, :, None].to(w)  # (1, b|1, 1)
        if bool((a < 1).any()):
            w = torch.cat([w * a, (1.0 - a) * torch.ones_like(w[:1])])
        return w

    def stylize(self, content: ContentTokens, codes: Sequence[StyleTokens], weights: torch.Tensor,
                alpha: float | torch.Tensor = 1.0) -> torch.Tensor:
        """The contract's stylisation: the transformer decoder attends to the K styles' tokens, then the CNN
        decoder paints.

        Args:
            content: `encode_content`'s ContentTokens.
            codes: K StyleTokens (`style_code`), shared by the batch.
            weights: (k,) normalised, (k, n) one blend per output image (content of batch 1), or (k, b, 1, h, w).
            alpha: content/style trade-off in [0, 1]; one per image with (k, n) weights.

        Returns:
            (b or n, 3, h, w) stylised images in [0, 1], of the content's size before padding.
        """
        self.check_codes(codes)
        size = (content.grid.shape[-2], content.grid.shape[-1])
        tokens, pos = content.tokens, content.pos
        wts = self.blend_weights(weights, len(codes), size, alpha).to(tokens.device)
        if weights.dim() == 2:  # n output images from one content
            tokens, pos = tokens.expand(weights.shape[1], -1, -1), pos.expand(weights.shape[1], -1, -1)
        styles = [c.tokens.to(tokens)[None] for c in codes]
        if len(wts) > len(codes):  # alpha < 1: the content is one more style
            styles.append(self.style_memory(content.grid))
        live = [i for i in range(len(styles)) if bool((wts[i] > 0).any())]  # zero weights: no attention at all
        styles, wts = [styles[i] for i in live], wts[live]
        out = self.transfer(tokens, pos, styles, wts if len(styles) > 1 else None)
        h, w = content.size
        return self.decode(out, size)[..., :h, :w].clamp(0, 1)

    def forward(self, content: torch.Tensor, codes: Sequence[StyleTokens],
                weights: Sequence[float] | torch.Tensor | None = None, alpha: float = 1.0) -> torch.Tensor:
        """Args:
            content: (b, 3, h, w) RGB [0, 1], any size (padded to the patch, cropped back).
            codes: K encoded styles (`style_code`), shared by the batch.
            weights: K blend weights, or (k, b, 1, h, w) spatial weights; None = equal.
            alpha: content/style trade-off in [0, 1].

        Returns:
            (b, 3, h, w) stylised images in [0, 1].
        """
        if not (isinstance(weights, torch.Tensor) and weights.dim() == 5):
            weights = Fn.validate_weights(weights, len(codes))
        return self.stylize(self.encode_content(content), codes, weights, alpha)
