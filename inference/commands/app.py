"""`stylemix app`: a local web page to blend styles by eye — pick a photo and up to 4 styles, move one
slider per weight and watch the preview, then render full size and download a PNG that records the blend
(and the equivalent `stylemix stylize` command). Needs the extra: pip install 'stylemix[app]'.

    stylemix app                      # serves http://127.0.0.1:8765/ and opens it in the browser
    stylemix app --port 9000 --no-browser
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from ...models.pretrained import DEFAULT_MODEL
from ..app import FAST_MODEL, INSTALL  # the package's __init__ only: no FastAPI at import time
from ..cli import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("app", help="a local web page to blend styles by eye (needs stylemix[app])",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 shares the page with your network (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on, 0 = any free port (default: 8765)")
    p.add_argument("--no-browser", action="store_true", help="only print the address; do not open a browser")
    p.add_argument("--model", default=None, metavar="DIR_OR_NAME",
                   help=f"weights dir or name for full renders and sweeps (default: {DEFAULT_MODEL})")
    p.add_argument("--preview-model", default=None, metavar="DIR_OR_NAME",
                   help=f"a faster model for the live preview (default: {FAST_MODEL} when installed, else --model)")
    p.add_argument("--preview-size", type=int, default=256, help="long side of previews in pixels (default: 256)")
    p.add_argument("--max-size", type=int, default=1024, help="long side of full renders in pixels (default: 1024)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload accepted, in MB (default: 20)")
    p.add_argument("--upload-dir", default=None, metavar="DIR",
                   help="where the server makes its folder for uploads and renders (stylemix-app-*, removed on "
                        "exit; nothing else in DIR is touched) (default: the system's temporary folder)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.set_defaults(func=run)


def run(args) -> int:
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"the app needs {' and '.join(missing)}: {INSTALL}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    if not (math.isfinite(args.max_upload_mb) and args.max_upload_mb * 2**20 >= 1):
        raise UsageError(f"--max-upload-mb must be a finite number of MB, at least one byte (1e-6), got "
                         f"{args.max_upload_mb}")

    from ...models import pretrained
    from ...models.io import WeightsError
    from ..api import Stylizer
    from ..app.config import AppConfig
    from ..app.server import create_app
    from ..app.serving import serve

    config = AppConfig(upload_dir=Path(args.upload_dir) if args.upload_dir else None,
                       max_upload_bytes=int(args.max_upload_mb * 2**20), preview_size=args.preview_size,
                       max_size=args.max_size, model_name=args.model)
    full = Stylizer.from_pretrained(args.model, device=args.device)
    preview_name = args.preview_model
    if preview_name is None and args.model is None:
        try:
            pretrained.resolve_model_dir(FAST_MODEL)
            preview_name = FAST_MODEL
        except WeightsError:
            preview_name = None  # not installed: previews use the full model
    preview = Stylizer.from_pretrained(preview_name, device=args.device) if preview_name else None
    serve(create_app(full, preview, config), args.host, args.port, open_browser=not args.no_browser)
    return 0
