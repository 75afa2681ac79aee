"""ONNX export of a statistics model (the AdaIN family, made for adain-fast): the Stylizer's one-image path as one
graph that runs wherever an ONNX runtime does, without PyTorch.

    inputs   content                 float32 (1, 3, H, W)   RGB in [0, 1]; H, W free, each at least MIN_SIDE
             mean_<tap>, std_<tap>   float32 (K, C_tap)     the K styles' StyleCodes, stacked (K free); one pair per
                                                            tap mixing reads (`code_taps`): the decoder's, in the
                                                            encoder's order (s1, s2, s4, s8 for adain-fast), then
                                                            a style hint's VGG taps (relu1_1, ...) if it has one
             weights                 float32 (K,)           normalised blend weights (non-negative, summing to 1)
             alpha                   float32 ()             content/style trade-off in [0, 1]
    output   image                   float32 (1, 3, H, W)   in [0, 1]

Inside is `Stylizer.stylize` of one image at its own size (what it does up to 512 px, or at any size with
style_scale=None): the 32 px reflected frame and the padding to the stride (`models.canvas.Frame`), the model's own
`encode_content`, `mix_stats` and `decode`, the crop, and alpha 0 giving the content itself. Left to the caller:
reading and resizing images, checking weights and alpha, and the codes. A model dir's styles.safetensors holds its
codes for the built-in style names (`<name>.mean.<tap>`, `<name>.std.<tap>`, see models/io.py); new ones come from
`Stylizer.encode_style` + `styles.save_style`. Run with onnxruntime and numpy only:

    import numpy as np, onnxruntime as ort
    from safetensors.numpy import load_file
    codes, names = load_file("weights/adain-fast/styles.safetensors"), ["baroque-01", "symbolism-02"]
    session = ort.InferenceSession("fast.onnx")
    feed = {i.name: np.stack([codes[f"{n}.{i.name.replace('_', '.', 1)}"] for n in names])
            for i in session.get_inputs() if i.name.startswith(("mean_", "std_"))}
    feed.update(content=photo, weights=np.float32([0.3, 0.7]), alpha=np.array(0.8, np.float32))  # photo (1, 3, H, W)
    image = session.run(None, feed)[0]

Letters: k - styles, c - channels, h/w - height/width.
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch
from torch import nn

from ..models.io import atomic_write
from ..models.mixing import StatisticsMixing
from ..models.registry import require_capability
from ..models.canvas import Frame

ONNX_PACKAGES = ("onnx", "onnxscript")  # torch.onnx.export's dynamo exporter; onnxruntime then runs the file
INSTALL_HINT = "pip install 'stylemix[onnx]' (or: pip install onnx onnxscript onnxruntime)"
OPSET = 18
# Reflection needs a side longer than the frame: the Stylizer replicates below that, a branch on the size that
# the exported graph fixes at the example's (a smaller side fails in the runtime's Pad, naming the limit).
MIN_SIDE = Frame((0, 0)).pad + 1
# The example the graph is traced with. Odd sides give an odd canvas (side + 2 * 32), so the traced branches
# are the general ones: pad_to_multiple pads (a zero-size pad is a copy), reflection is possible. Two styles,
# because export fixes an example dimension of size 1 as a constant.
EXAMPLE_SIZE, EXAMPLE_STYLES = (MIN_SIDE + 4, MIN_SIDE + 12), 2


class StylizeGraph(nn.Module):
    """content (1, 3, h, w), {tap: (k, c)} means, {tap: (k, c)} stds, weights (k,), alpha () -> (1, 3, h, w).

    Args:
        model: a model of the AdaIN family (`mixing.StatisticsMixing`: adain, adain-fast), in eval mode.
    """

    def __init__(self, model: StatisticsMixing):
        super().__init__()
        self.model = model
        self.taps = model.code_taps  # a StyleCode's order, used taps only (a style hint's VGG taps too)

    def forward(self, content: torch.Tensor, means: dict[str, torch.Tensor], stds: dict[str, torch.Tensor],
                weights: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        frame = Frame((content.shape[-2], content.shape[-1]))
        feats = self.model.encode_content(frame.apply(content, self.model.stride))
        out = self.model.decode(self.model.mix_stats(feats, means, stds, weights, alpha)).clamp(0, 1)
        return torch.where(alpha == 0, content, frame.crop(out))  # alpha 0: the content itself, as the Stylizer


def input_names(taps: tuple[str, ...]) -> list[str]:
    """The graph's inputs in order: content, mean_<tap>..., std_<tap>..., weights, alpha."""
    return ["content", *(f"mean_{t}" for t in taps), *(f"std_{t}" for t in taps), "weights", "alpha"]


def require_onnx() -> None:
    """ImportError naming the missing packages and how to install them, before any work."""
    missing = [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise ImportError(f"ONNX export needs the package(s) {', '.join(missing)}: {INSTALL_HINT}")


def export_onnx(model: StatisticsMixing, path: str | Path) -> Path:
    """Write `model`'s one-image stylisation as an ONNX graph (see the module docstring), atomically.

    Uses torch.onnx.export's dynamo exporter (torch.export), the supported one; H, W and K are dynamic.

    Args:
        model: a model of the AdaIN family (capabilities.style_bank) on the CPU, float32, e.g.
            `pretrained.load_model('adain-fast')[0]`.
        path: the .onnx file to write (one file, weights inside); its folder is created.

    Returns:
        The path written.

    Raises:
        ImportError when onnx or onnxscript is missing; ValueError for a model without statistics codes.
    """
    require_onnx()
    require_capability(model, "style_bank", "ONNX export (styles enter the graph as per-tap statistics)")
    graph = StylizeGraph(model).eval()
    k, taps, g = EXAMPLE_STYLES, graph.taps, torch.Generator().manual_seed(0)  # the global RNG is left alone
    stats = {t: torch.rand(k, model.tap_channels(t), generator=g) for t in taps}
    example = (torch.rand(1, 3, *EXAMPLE_SIZE, generator=g), stats, {t: v + 0.5 for t, v in stats.items()},
               torch.full((k,), 1.0 / k), torch.tensor(0.5))
    per_style = {t: {0: "K"} for t in taps}
    shapes = ({2: "H", 3: "W"}, per_style, per_style, {0: "K"}, None)  # names: Dim.DYNAMIC, kept in the file
    with torch.no_grad(), warnings.catch_warnings():
        # torch.onnx names each axis once and warns that the other inputs' "K" (one shared size) is not renamed
        warnings.filterwarnings("ignore", message="# The axis name: .* will not be used")
        program = torch.onnx.export(graph, example, dynamo=True, dynamic_shapes=shapes, input_names=input_names(taps),
                                    output_names=["image"], opset_version=OPSET, verbose=False)
    program.model.metadata_props.update({
        "stylemix.encoder": str(model.encoder_name),  # codes must come from this encoder
        "stylemix.taps": ",".join(taps), "stylemix.min_side": str(MIN_SIDE)})
    atomic_write(path, lambda tmp: program.save(tmp, external_data=False))
    return Path(path)
