"""The blending page's server: FastAPI routes over `Stylizer`, one in-memory session per browser tab.

Why FastAPI + uvicorn and a hand-written page rather than Gradio: the page is ~300 lines of plain
HTML/JS/CSS shipped in static/, so nothing is fetched from the internet (Gradio's front end is a large
bundle with its own fonts and telemetry to keep offline) and `pip install 'stylemix[app]'` adds two small,
well-kept packages instead of dozens; every route is an ordinary function that tests drive in-process with
FastAPI's TestClient; and the preview is a plain `<img>` fed by one POST, so the page keeps only the latest
request in flight, which Gradio's event queue does not let us control. Uploads are raw request bodies
(streamed, cut off at the size limit, never named by the client), so python-multipart is not needed.

Requests and state:
    POST /api/session                      -> {"session": id}: a random id per tab (kept in the page's
                                              memory only, so two tabs never share images)
    GET  /api/options                      bundled photos, style names, defaults, limits
    POST /api/s/{id}/upload                body = the image file -> {"id": ...} (server-chosen name)
    GET  /api/s/{id}/thumb?ref=...         a small PNG of a bundled photo or an upload
    POST /api/s/{id}/preview   Blend       -> PNG at `preview_size` (204 when a newer preview was asked)
    POST /api/s/{id}/render    Blend       -> {"url", "command", "metadata"}: full size, PNG with metadata
    GET  /api/s/{id}/result/{rid}          the rendered PNG, as a download
    POST /api/s/{id}/sweep     Sweep       -> PNG strip of `steps` blends from style a to style b
Images are named by references, never by paths: 'bundled:astronaut', 'builtin:impressionism-03',
'upload:<id>' (an id this session's upload returned). Sessions live in memory, least recently used
dropped beyond `max_sessions` (their upload folder with them); each keeps its style codes and the content
encoding, so a slider move costs one mixing + decoding pass (`Stylizer.stylize_encoded`).
Files: the server writes only into one new folder of its own (a temporary folder, or `stylemix-app-*` inside
`AppConfig.upload_dir`) and removes that folder on exit, never anything it did not create (storage.py).
Beside this module: config.py (the limits), blends.py (request bodies; a blend's command and metadata),
sessions.py (one tab's state), storage.py (the server's folder), serving.py (binding and serving).
"""
from __future__ import annotations

import io
import json
import secrets
import threading
import time
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ...models.contract import StyleCodeLike
from ..api import EncodedContent, Stylizer
from ..demo_assets import DEFAULT_STYLES, PHOTOS, bundled_photo
from ..images import load_image, save_image, to_pil
from ..styles import list_styles
from .blends import MAX_STYLES, BlendIn, SweepIn, blend_metadata, check_weights, label, stylize_command
from .config import AppConfig
from .sessions import AppError, Session, Sessions, lru_put
from .storage import ServerFolder

STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
# The page may load only what this server sends (no CDN, no fonts, no trackers); previews are blob: URLs.
CSP = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; form-action 'none'"


# --- the application ----------------------------------------------------------------------------------

class Blender:
    """The app's state: the models, the sessions and one lock so one model call runs at a time.

    Args:
        stylizer: the full model (renders, sweeps; previews too unless `preview` is given).
        preview: a faster model for previews, or None. Styles it cannot use fall back to `stylizer`.
        config: limits and sizes.
    """

    def __init__(self, stylizer: Stylizer, preview: Stylizer | None = None, config: AppConfig | None = None):
        self.config = config or AppConfig()
        self.models = {"full": stylizer, "preview": preview or stylizer}
        self.folder = ServerFolder(None if self.config.upload_dir is None else Path(self.config.upload_dir))
        self.root = self.folder.root
        self.sessions = Sessions(self.root, self.config.max_sessions)
        self.compute = threading.Lock()

    def close(self) -> None:
        """Remove what this server wrote (`ServerFolder.close`); nothing it did not create is touched."""
        self.folder.close()

    # --- references -> sources ---

    def photo(self, s: Session, ref: str):
        kind, _, key = ref.partition(":")
        if kind == "bundled":
            return self.bundled(key)
        if kind == "upload":
            return self._upload(s, key)
        raise AppError(400, f"photo {ref!r} must be 'bundled:NAME' or 'upload:ID'")

    def style(self, s: Session, ref: str) -> str | Path:
        kind, _, key = ref.partition(":")
        if kind == "builtin":
            names = list_styles()
            if key not in names:
                raise AppError(400, f"unknown style {key!r}; the styles are listed in the page ('stylemix styles')")
            # by name, so each model resolves it to its own codes (a model with its own encoder ships its own)
            return names[names.index(key)]
        if kind == "upload":
            return self._upload(s, key)
        raise AppError(400, f"style {ref!r} must be 'builtin:NAME' or 'upload:ID'")

    def bundled(self, name: str) -> Path:
        """A scikit-image photo as a PNG in the server's folder (written on first use): loaded from a file, it
        is resampled exactly as `stylemix stylize` resamples the saved photo, so the shown command reproduces
        the render pixel for pixel."""
        if name not in PHOTOS:
            raise AppError(400, f"unknown bundled photo {name!r}; choose one of {', '.join(PHOTOS)}")
        path = self.root / "bundled" / f"{name}.png"
        if not path.is_file():
            save_image(Image.fromarray(bundled_photo(name)), path)  # atomic: two requests may write it at once
        return path

    def _upload(self, s: Session, key: str) -> Path:
        path = s.uploads.get(key)
        if path is None or not path.is_file():
            raise AppError(404, "that uploaded image is no longer on the server (each tab keeps its last "
                                f"{self.config.max_uploads}); upload it again")
        return path

    # --- caches ---

    def codes(self, s: Session, role: str, refs: list[str]) -> list[StyleCodeLike]:
        st = self.models[role]
        out = []
        for ref in refs:
            key = (role, ref)
            if key not in s.codes:
                lru_put(s.codes, key, st.style_codes([self.style(s, ref)], self.config.style_size)[0], 4 * MAX_STYLES)
            out.append(s.codes[key])
        return out

    def encoded(self, s: Session, role: str, ref: str, size: int) -> EncodedContent:
        key = (role, ref, size)
        if key not in s.content:
            lru_put(s.content, key, self.models[role].encode_content(self.photo(s, ref), size), 1)  # the current photo
        return s.content[key]

    # --- the work ---

    def upload(self, s: Session, data: bytes) -> dict:
        uid = secrets.token_hex(8)
        with s.writing() as folder:  # the session may have been dropped while the body was streamed
            path = folder / f"{uid}.upload"
            path.write_bytes(data)
        try:
            x = load_image(path, self.config.max_size, max_pixels=self.config.max_pixels)
        except ValueError as e:
            path.unlink(missing_ok=True)
            raise AppError(400, str(e).replace(str(path), "the uploaded file")) from None
        with s.writing():  # a photo and a style may be uploaded at once; dropped meanwhile: its folder is gone
            for gone in lru_put(s.uploads, uid, path, self.config.max_uploads):
                gone.unlink(missing_ok=True)
        return {"id": uid, "ref": f"upload:{uid}", "width": x.shape[-1], "height": x.shape[-2]}

    def preview(self, s: Session, blend: BlendIn) -> tuple[bytes | None, dict]:
        """(PNG or None when a newer preview was asked meanwhile, headers)."""
        s.ask(blend.seq)
        weights = check_weights(blend)
        with self.compute:
            if blend.seq < s.latest_seq:
                return None, {"X-Stale": "1"}
            t0 = time.perf_counter()
            refs = [st.ref for st in blend.styles]
            role = "full" if self.models["preview"] is self.models["full"] else "preview"
            try:
                codes = self.codes(s, role, refs)
            except ValueError:  # a style the fast model cannot use (e.g. another encoder): the full model can
                role = "full"
                codes = self.codes(s, role, refs)
            enc = self.encoded(s, role, blend.photo, self.config.preview_size)
            out = self.models[role].stylize_encoded(enc, codes, weights, blend.alpha, blend.preserve_color)
            png = png_bytes(out)
            ms = (time.perf_counter() - t0) * 1000
        return png, {"X-Preview-Model": role, "X-Compute-Ms": f"{ms:.1f}"}

    def render(self, s: Session, blend: BlendIn) -> dict:
        weights = check_weights(blend)
        photo = self.photo(s, blend.photo)
        with self.compute:
            codes = self.codes(s, "full", [st.ref for st in blend.styles])
            img = self.models["full"].stylize(photo, codes, weights, alpha=blend.alpha, max_size=self.config.max_size,
                                              preserve_color=blend.preserve_color, style_size=self.config.style_size)
        command = stylize_command(blend, self.config)
        meta = blend_metadata(blend, self.config)
        rid = secrets.token_hex(8)
        with s.writing() as folder:
            save_image(img, folder / f"{rid}.png", metadata={"Software": f"stylemix {_version()}",
                                                             "stylemix:blend": json.dumps(meta),
                                                             "stylemix:command": command})
            for gone in lru_put(s.results, rid, folder / f"{rid}.png", 3):
                gone.unlink(missing_ok=True)
        return {"url": f"/api/s/{s.id}/result/{rid}", "width": img.size[0], "height": img.size[1],
                "command": command, "metadata": meta}

    def sweep(self, s: Session, req: SweepIn) -> bytes:
        if req.steps > self.config.max_sweep_steps:
            raise AppError(400, f"a sweep has at most {self.config.max_sweep_steps} steps, got {req.steps}")
        photo = self.photo(s, req.photo)
        names = [label(req.labels, r, f"style {i + 1}") for i, r in enumerate((req.a, req.b))]
        with self.compute:
            codes = self.codes(s, "full", [req.a, req.b])
            _, grid = self.models["full"].sweep(photo, codes, steps=req.steps, alpha=req.alpha,
                                                max_size=self.config.sweep_size, preserve_color=req.preserve_color,
                                                labels=True, names=names)
        buf = io.BytesIO()
        grid.save(buf, format="PNG")
        return buf.getvalue()

    def thumb(self, s: Session, ref: str) -> bytes:
        with self.compute:
            return png_bytes(load_image(self.photo(s, ref), 192))


# --- pure helpers ---------------------------------------------------------------------------------------

def png_bytes(image: torch.Tensor | Image.Image) -> bytes:
    buf = io.BytesIO()
    (to_pil(image) if isinstance(image, torch.Tensor) else image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _version() -> str:
    try:
        return version("stylemix")
    except PackageNotFoundError:
        return "unknown"


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _validation_message(e: RequestValidationError) -> str:
    parts = []
    for err in e.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "bad request: " + "; ".join(parts)


# --- routes ---------------------------------------------------------------------------------------------

def create_app(stylizer: Stylizer, preview: Stylizer | None = None, config: AppConfig | None = None) -> FastAPI:
    """The blending page's FastAPI application.

    Args:
        stylizer: the model for full renders and sweeps (and previews unless `preview` is given).
        preview: a faster model for previews, or None.
        config: limits, sizes, upload folder (AppConfig()).

    Returns:
        The app; `app.state.blender` holds the state, `app.state.blender.close()` removes its files.
    """
    blender = Blender(stylizer, preview, config)
    cfg = blender.config
    app = FastAPI(title="stylemix", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.blender = blender

    @app.exception_handler(AppError)
    async def _app_error(request: Request, e: AppError):
        return JSONResponse({"error": str(e)}, status_code=e.status)

    @app.exception_handler(HTTPException)  # the framework's own refusals: no route, wrong method, unparsable body
    async def _http_error(request: Request, e: HTTPException):
        message = {404: "no such page or API route", 405: "this API route does not take that method"}.get(
            e.status_code, f"bad request: {e.detail}" if e.status_code < 500 else str(e.detail))
        return JSONResponse({"error": message}, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, e: RequestValidationError):
        return JSONResponse({"error": _validation_message(e)}, status_code=400)

    @app.exception_handler(ValueError)  # from the API: bad weights, a style this model cannot use, ...
    async def _value_error(request: Request, e: ValueError):
        return JSONResponse({"error": str(e).replace(str(blender.root), "<uploads>")}, status_code=400)

    @app.exception_handler(FileNotFoundError)  # an upload dropped while a request was using it
    async def _gone(request: Request, e: FileNotFoundError):
        return JSONResponse({"error": "an image of this page is no longer on the server; upload it again"},
                            status_code=404)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/")
    def index() -> Response:
        return Response(_static("index.html"), media_type="text/html; charset=utf-8")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:  # an allow-list: no request path reaches the file system
            raise AppError(404, f"no such file: {name}")
        return Response(_static(name), media_type=STATIC[name])

    @app.post("/api/session")
    def new_session() -> dict:
        return {"session": blender.sessions.new().id}

    @app.get("/api/options")
    def options() -> dict:
        names = list_styles()
        return {"photos": list(PHOTOS), "styles": names,
                "defaults": {"photo": f"bundled:{PHOTOS[0]}",
                             "styles": [{"ref": f"builtin:{n}", "weight": w} for n, w in DEFAULT_STYLES if n in names]},
                "limits": {"max_styles": MAX_STYLES, "max_upload_bytes": cfg.max_upload_bytes,
                           "max_sweep_steps": cfg.max_sweep_steps, "preview_size": cfg.preview_size,
                           "max_size": cfg.max_size}}

    @app.post("/api/s/{sid}/upload")
    async def upload(sid: str, request: Request) -> dict:
        s = blender.sessions.get(sid)
        limit = cfg.max_upload_bytes
        chunks, size = [], 0
        async for chunk in request.stream():  # streamed: never more than the limit is kept
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            elif size > 8 * limit:  # stop reading (the connection is dropped)
                break
        if size > limit:  # the rest was read and dropped, so the page receives this answer
            raise AppError(413, _too_large(size, limit, at_least=size > 8 * limit))
        if not size:
            raise AppError(400, "the upload is empty; choose an image file")
        return await run_in_threadpool(blender.upload, s, b"".join(chunks))

    @app.get("/api/s/{sid}/thumb")
    def thumb(sid: str, ref: str) -> Response:
        return Response(blender.thumb(blender.sessions.get(sid), ref), media_type="image/png")

    @app.post("/api/s/{sid}/preview")
    def preview(sid: str, blend: BlendIn) -> Response:
        png, headers = blender.preview(blender.sessions.get(sid), blend)
        if png is None:
            return Response(status_code=204, headers=headers)
        return Response(png, media_type="image/png", headers=headers)

    @app.post("/api/s/{sid}/render")
    def render(sid: str, blend: BlendIn) -> dict:
        return blender.render(blender.sessions.get(sid), blend)

    @app.get("/api/s/{sid}/result/{rid}")
    def result(sid: str, rid: str) -> FileResponse:
        path = blender.sessions.get(sid).results.get(rid)
        if path is None or not path.is_file():
            raise AppError(404, "that render is no longer on the server; render again")
        return FileResponse(path, media_type="image/png", filename="stylemix-blend.png")

    @app.post("/api/s/{sid}/sweep")
    def sweep(sid: str, req: SweepIn) -> Response:
        return Response(blender.sweep(blender.sessions.get(sid), req), media_type="image/png")

    return app


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    return (f"the file is {'over ' if at_least else ''}{_bytes(size)}; uploads are limited to {_bytes(limit)} "
            f"(start the server with 'stylemix app --max-upload-mb N' to change it)")


def _bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"
