"""`stylemix video IN -s A.jpg:0.7 -s B.jpg:0.3 -o OUT.mp4`: the CLI over Stylizer.stylize_video.

IN and OUT are video files (.mp4 .mov .mkv .webm .avi), animated GIF/WebP, or folders of frames. Styles
over time: `--keyframe 0:A=1 --keyframe 5s:B=1` (names are the styles' file stems or built-in names).
Every input is checked (styles, keyframes, the clip, the output) before the model loads.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..cli import UsageError
from . import add_model_options, add_style_and_output_options


def add_parser(sub) -> None:
    p = sub.add_parser("video", help="stylise a video (or GIF, or folder of frames) without flicker",
                       description="Stylise a clip with weighted styles, or styles keyframed over time. Frames are "
                                   "tied together by smoothed content statistics and optical flow (--temporal).")
    p.add_argument("input", metavar="IN", help="video file (.mp4 .mov .mkv .webm .avi), animated GIF/WebP, or a "
                                               "folder of frames (sorted by name)")
    add_style_and_output_options(
        p, style_metavar="PATH_OR_NAME[:WEIGHT]",
        style_help="a style image, saved style code (.safetensors) or built-in style name, with an optional weight "
                   "(a.jpg:0.6); repeat to blend. Weights default to 1 and are normalised",
        output_help="output video (.mp4 .mov .mkv .webm .avi; an existing file is replaced), animated .gif/.webp, "
                    "or a new folder for PNG frames")
    p.add_argument("-k", "--keyframe", action="append", default=[], metavar="TIME:NAME=W[,NAME=W...]",
                   help="style weights at a moment: TIME is a frame index (12) or seconds (5s, 1.5s), NAME a style's "
                        "file stem or built-in name; unnamed styles get 0. Weights between keyframes are "
                        "interpolated linearly, held before the first and after the last. Repeat, in time order")
    p.add_argument("--temporal", choices=("both", "stats", "flow", "none"), default="both",
                   help="flicker suppression: smoothed content statistics ('stats'), the previous frame warped by "
                        "optical flow ('flow'), both, or none (every frame on its own) (default: both)")
    p.add_argument("--alpha", type=float, default=1.0, help="stylisation strength in [0, 1] (default: 1.0)")
    p.add_argument("--fps", type=float, default=None,
                   help="resample to this constant frame rate (needed for variable-frame-rate clips); the rate of a "
                        "folder of frames (default: the clip's own; 24 for folders)")
    p.add_argument("--max-size", type=int, default=0,
                   help="downscale frames to this long side in pixels, 0 = keep the size; frames over 4K UHD "
                        "(8.3 MP) are scaled down to it (default: 0)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames (a preview)")
    p.add_argument("--no-audio", action="store_true", help="do not copy the input's audio (default: copied)")
    p.add_argument("--style-size", type=int, default=512, help="long side of style images in pixels (default: 512)")
    p.add_argument("--style-scale", type=float, default=1.0, metavar="S",
                   help="stroke size: the model paints at a long side of 512/S px, lifted to full size guided by the "
                        "frame; 0 = paint at full resolution (default: 1)")
    p.add_argument("--preserve-color", choices=("luminance", "match", "histogram"), default=None,
                   help="keep the content's colours, as in 'stylemix stylize' (default: off)")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ...models.functional import check_alpha
    from .. import video as V
    from ..api import Stylizer
    from .stylize import parse_style_spec

    specs = [parse_style_spec(s) for s in args.style]
    sources = [s for s, _ in specs]
    given = [w for _, w in specs if w is not None]
    if args.keyframe and given:
        raise UsageError("give the weights either in --style (a.jpg:0.7) or in --keyframe, not both")
    weights = None if args.keyframe else [1.0 if w is None else w for _, w in specs]
    if weights is not None and sum(weights) <= 0:
        raise UsageError("all --style weights are zero; at least one must be positive")
    check_alpha(args.alpha, "--alpha")
    if args.max_size < 0 or 0 < args.max_size < 16 or args.style_size < 16:
        raise UsageError("--max-size (0 = keep the size) and --style-size must be at least 16 pixels")
    if not (0 <= args.style_scale < float("inf")):
        raise UsageError(f"--style-scale must be a positive number (0 = full resolution), got {args.style_scale}")
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise UsageError(f"--fps must be a positive number of frames per second up to 1000, got {args.fps}")
    try:
        if args.temporal in ("both", "flow"):
            V.require("cv2", f"--temporal {args.temporal}")
        source = V.open_video(args.input, args.fps, args.max_size or None, args.max_frames)
        kind = V.check_output(args.output, [args.input, *[s for s in sources if Path(s).exists()]])
    except ImportError as e:
        raise UsageError(str(e)) from None
    info = source.info
    names = V.style_names(sources)
    keyframes = [V.parse_keyframe(k, names) for k in args.keyframe]
    if keyframes:
        V.keyframe_schedule(keyframes, len(sources), info.fps)  # order and times checked before the model loads
    h, w = source.out_size
    if args.max_size and source.max_size != args.max_size or not args.max_size and source.max_size:
        print(f"stylemix video: frames are {info.size[1]}x{info.size[0]} px; scaled down to {w}x{h} (4K UHD pixel "
              f"count; pass --max-size to choose)", file=sys.stderr)
    audio = info.audio and not args.no_audio
    if audio and kind != "video":
        print(f"stylemix video: the audio is not kept in {'a folder of frames' if kind == 'folder' else 'an animation'}",
              file=sys.stderr)
        audio = False
    if info.variable:
        print(f"stylemix video: variable frame rate resampled to a constant {float(info.fps):g} fps", file=sys.stderr)
    if info.truncated:
        print(f"stylemix video: warning: {args.input} holds {info.frames} frames ({info.seconds:.2f} s) of the "
              f"{info.declared:.2f} s its header declares; it looks cut short, so the output has those "
              f"{info.frames} frames", file=sys.stderr)

    start = time.perf_counter()
    stylizer = Stylizer.from_pretrained(args.model, device=args.device, encoder=args.encoder, dtype=args.dtype)
    frames = stylizer.stylize_video(source, sources, weights, keyframes=keyframes or None, alpha=args.alpha,
                                    temporal=args.temporal, preserve_color=args.preserve_color,
                                    style_size=args.style_size, style_scale=args.style_scale or None, progress=True)
    n = V.write_video(frames, args.output, info.fps, audio_from=args.input if audio else None)
    seconds = time.perf_counter() - start
    if info.frames and n < len(source):
        print(f"stylemix video: warning: only {n} of the {len(source)} frames of {args.input} could be decoded "
              f"(the file is damaged); the output has {n} frames", file=sys.stderr)
    print(f"wrote {args.output} ({w - (w % 2 if kind == 'video' else 0)}x{h - (h % 2 if kind == 'video' else 0)}, "
          f"{n} frames at {float(info.fps):.4g} fps{', audio copied' if audio else ''}, {seconds:.1f} s)")
    return 0
