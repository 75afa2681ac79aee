"""`stylemix app`: the blending page's server, driven in-process with FastAPI's TestClient on tiny models.

Facts checked: previews equal what the Python API paints for the same blend (so the cached content encoding
and style codes change nothing but the time); the content is encoded once per photo; the full render's PNG
records the blend and its `stylemix stylize` command reproduces it pixel for pixel; bad uploads, all-zero
weights and foreign references give a message and the server keeps serving; tabs never see each other's
images; no request path reaches the file system outside the upload folder."""
from __future__ import annotations

import io
import json
import re
import shlex
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from stylemix.inference.api import Stylizer  # noqa: E402
from stylemix.inference.app.server import AppConfig, AppError, BlendIn, create_app  # noqa: E402
from stylemix.inference.app.serving import listen  # noqa: E402
from stylemix.inference.cli import main  # noqa: E402
from stylemix.inference.demo_assets import DEFAULT_STYLES, bundled_photo  # noqa: E402
from stylemix.inference.styles import list_styles  # noqa: E402

A, B = (name for name, _ in DEFAULT_STYLES)  # the page's preselected styles (built-in bank)
PREVIEW, FULL, SWEEP = 64, 96, 48


def _png_bytes(seed: int, h: int = 40, w: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _api_pixels(t: torch.Tensor) -> np.ndarray:
    return (t[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().astype(np.int16)


@pytest.fixture(scope="module")
def full(tiny_model_dir) -> Stylizer:
    return Stylizer.from_pretrained(tiny_model_dir, dtype="fp32")


@pytest.fixture
def make_client(full, tiny_model_dir, tmp_path):
    """make_client(preview=None, **config) -> (TestClient, blender); uploads under tmp_path/uploads."""
    made = []

    def make(preview: Stylizer | None = None, **overrides):
        cfg = dict(upload_dir=tmp_path / "uploads", preview_size=PREVIEW, max_size=FULL, sweep_size=SWEEP,
                   max_upload_bytes=100_000, model_name=str(tiny_model_dir))
        app = create_app(full, preview, AppConfig(**{**cfg, **overrides}))
        made.append(app.state.blender)
        return TestClient(app), app.state.blender

    yield make
    for b in made:
        b.close()


@pytest.fixture
def client(make_client):
    return make_client()[0]


def _session(client) -> str:
    r = client.post("/api/session")
    assert r.status_code == 200
    return r.json()["session"]


def _blend(weights=(0.6, 0.4), styles=(A, B), photo="bundled:astronaut", **extra) -> dict:
    refs = [s if ":" in s else f"builtin:{s}" for s in styles]
    return {"photo": photo, "styles": [{"ref": r, "weight": w} for r, w in zip(refs, weights)], **extra}


def _upload(client, sid: str, data: bytes, **headers) -> dict:
    r = client.post(f"/api/s/{sid}/upload", content=data, headers={"content-type": "application/octet-stream",
                                                                    **headers})
    assert r.status_code == 200, r.text
    return r.json()


def _error(r, status: int, *needles: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")  # a message for the page, not an error page
    msg = r.json()["error"]
    for n in needles:
        assert n in msg, (n, msg)
    return msg


# --- the page ---------------------------------------------------------------------------------------------

def test_page_loads_only_its_own_assets(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    assert '<input type="range" id="alpha"' in html and 'id="preview"' in html
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert "/static/app.js" in refs and "/static/app.css" in refs
    assert all(ref.startswith(("/static/", "data:")) for ref in refs), refs
    for name, kind in (("app.js", "javascript"), ("app.css", "css")):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert not re.search(r"https?://", asset.text), f"{name} refers to another site"
    assert not re.search(r"https?://", html)


def test_options_preselect_a_bundled_photo_and_two_builtin_styles(client):
    o = client.get("/api/options").json()
    assert o["defaults"]["photo"] == "bundled:astronaut" and "astronaut" in o["photos"]
    assert o["defaults"]["styles"] == [{"ref": f"builtin:{A}", "weight": 0.6}, {"ref": f"builtin:{B}", "weight": 0.4}]
    assert o["styles"] == list_styles() and o["limits"]["max_styles"] == 4
    assert o["limits"]["max_upload_bytes"] == 100_000 and o["limits"]["preview_size"] == PREVIEW


# --- previews ---------------------------------------------------------------------------------------------

def test_stylize_encoded_equals_stylize(full):
    """The API the preview runs on: one encoding, many blends, the same pixels as `stylize`."""
    photo = bundled_photo("astronaut")
    codes = full.style_codes([A, B])
    enc = full.encode_content(photo, PREVIEW)
    for w, alpha, pc in (((0.6, 0.4), 1.0, None), ((1, 0), 0.5, None), ((0.2, 0.8), 1.0, "luminance")):
        got = full.stylize_encoded(enc, codes, w, alpha, pc)
        want = full.stylize(photo, codes, w, alpha=alpha, max_size=PREVIEW, preserve_color=pc, return_tensor=True)
        assert got.shape == want.shape == (1, 3, PREVIEW, PREVIEW)
        assert torch.allclose(got, want, atol=1e-5), (w, alpha, pc, (got - want).abs().max())
    assert torch.equal(full.stylize_encoded(enc, codes, (1, 1), alpha=0.0), enc.image.cpu())  # alpha 0: the photo
    with pytest.raises(ValueError, match="alpha must be in"):
        full.stylize_encoded(enc, codes, (1, 1), alpha=1.5)


def test_preview_is_the_blend_the_api_paints_and_follows_the_sliders(client, full):
    sid = _session(client)
    photo = client.app.state.blender.bundled("astronaut")  # the PNG the page's photo is read from
    shots = {}
    for w in ((0.6, 0.4), (1.0, 0.0), (0.0, 1.0)):
        r = client.post(f"/api/s/{sid}/preview", json=_blend(w))
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        assert r.headers["x-preview-model"] == "full"  # no fast model given: the full one
        shots[w] = _pixels(r.content)
        want = _api_pixels(full.stylize(photo, [A, B], w, max_size=PREVIEW, return_tensor=True))
        assert shots[w].shape == (PREVIEW, PREVIEW, 3)
        assert np.abs(shots[w] - want).max() <= 1, w  # 8-bit rounding only
    # each slider position gives its own picture; (1, 0) is style A alone
    assert np.abs(shots[(1.0, 0.0)] - shots[(0.0, 1.0)]).mean() > 2
    assert np.abs(shots[(0.6, 0.4)] - shots[(1.0, 0.0)]).mean() > 0.5
    alone = _api_pixels(full.stylize(photo, [A], max_size=PREVIEW, return_tensor=True))
    assert np.abs(shots[(1.0, 0.0)] - alone).max() <= 1


def test_preview_encodes_the_photo_once_and_each_style_once(make_client, full, monkeypatch):
    client, blender = make_client()
    calls = {"content": 0, "style": 0}
    enc, code = full.model.encode_content, full.model.style_code

    def count(kind, fn):
        def wrapped(x):
            calls[kind] += 1
            return fn(x)
        return wrapped

    monkeypatch.setattr(full.model, "encode_content", count("content", enc))
    monkeypatch.setattr(full.model, "style_code", count("style", code))
    sid = _session(client)
    style = _upload(client, sid, _png_bytes(3, 32, 32))["ref"]
    for i in range(5):
        r = client.post(f"/api/s/{sid}/preview", json=_blend((i / 4, 1 - i / 4, 0.5), styles=(A, B, style),
                                                             alpha=1 - i / 10))
        assert r.status_code == 200, r.text
    assert calls == {"content": 1, "style": 1}  # 5 slider moves: no encoder pass after the first
    r = client.post(f"/api/s/{sid}/preview", json=_blend(photo="bundled:coffee"))
    assert r.status_code == 200 and calls["content"] == 2  # a new photo is encoded once more


def test_previews_use_the_fast_model_renders_the_full_one(make_client, full, make_calibrated_model):
    fast = Stylizer(make_calibrated_model(seed=1), dtype="fp32")
    client, blender = make_client(preview=fast)
    sid = _session(client)
    r = client.post(f"/api/s/{sid}/preview", json=_blend())
    assert r.status_code == 200 and r.headers["x-preview-model"] == "preview"
    photo = blender.bundled("astronaut")
    got = _pixels(r.content)
    assert np.abs(got - _api_pixels(fast.stylize(photo, [A, B], (0.6, 0.4), max_size=PREVIEW,
                                                 return_tensor=True))).max() <= 1
    assert np.abs(got - _api_pixels(full.stylize(photo, [A, B], (0.6, 0.4), max_size=PREVIEW,
                                                 return_tensor=True))).mean() > 1  # not the full model's picture
    info = client.post(f"/api/s/{sid}/render", json=_blend()).json()
    rendered = _pixels(client.get(info["url"]).content)
    assert np.abs(rendered - _api_pixels(full.stylize(photo, [A, B], (0.6, 0.4), max_size=FULL,
                                                      return_tensor=True))).max() <= 1


def test_styles_the_fast_model_cannot_use_are_previewed_with_the_full_one(make_client, full, make_calibrated_model,
                                                                          monkeypatch):
    fast = Stylizer(make_calibrated_model(seed=1), dtype="fp32")

    def refuse(styles, max_size=512):
        raise ValueError("style computed with another encoder")

    monkeypatch.setattr(fast, "style_codes", refuse)
    client, blender = make_client(preview=fast)
    sid = _session(client)
    r = client.post(f"/api/s/{sid}/preview", json=_blend())
    assert r.status_code == 200 and r.headers["x-preview-model"] == "full"
    want = full.stylize(blender.bundled("astronaut"), [A, B], (0.6, 0.4), max_size=PREVIEW, return_tensor=True)
    assert np.abs(_pixels(r.content) - _api_pixels(want)).max() <= 1


def test_an_older_preview_is_skipped_when_a_newer_one_was_asked(client):
    sid = _session(client)
    assert client.post(f"/api/s/{sid}/preview", json=_blend(seq=5)).status_code == 200
    stale = client.post(f"/api/s/{sid}/preview", json=_blend((0.1, 0.9), seq=3))
    assert stale.status_code == 204 and stale.headers["x-stale"] == "1" and not stale.content
    assert client.post(f"/api/s/{sid}/preview", json=_blend((0.1, 0.9), seq=6)).status_code == 200


def test_a_preview_counter_beyond_the_pages_range_is_refused(client):
    sid = _session(client)
    for seq in (2**62, 10**400, -1):  # accepted, 2**62 would make every later preview of the tab stale (204)
        _error(client.post(f"/api/s/{sid}/preview", json=_blend(seq=seq)), 400, "seq")
    assert client.post(f"/api/s/{sid}/preview", json=_blend(seq=2**53 - 1)).status_code == 200  # the page's limit
    assert client.post(f"/api/s/{sid}/preview", json=_blend(seq=1)).status_code == 204


# --- full render, metadata, the command, the sweep ---------------------------------------------------------

@pytest.mark.parametrize("photo", ["bundled", "upload"])
@pytest.mark.slow
def test_render_records_the_blend_and_its_command_reproduces_it(client, tmp_path, monkeypatch, tiny_model_dir,
                                                                 photo, capsys):
    sid = _session(client)
    style_bytes = _png_bytes(7, 30, 36)
    style = _upload(client, sid, style_bytes)["ref"]
    labels = {style: "my style.png"}
    if photo == "upload":
        content_bytes = _png_bytes(8, 120, 100)
        ref = _upload(client, sid, content_bytes)["ref"]
        labels[ref] = "../../holiday photo.png"  # a name from the page: text for the command, never a path
    else:
        ref = "bundled:astronaut"
    body = _blend((0.5, 0.25, 0.25), styles=(A, B, style), photo=ref, alpha=0.8, preserve_color="luminance",
                  labels=labels)
    r = client.post(f"/api/s/{sid}/render", json=body)
    assert r.status_code == 200, r.text
    info = r.json()
    png = client.get(info["url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert 'filename="stylemix-blend.png"' in png.headers["content-disposition"]
    img = Image.open(io.BytesIO(png.content))
    assert max(img.size) == FULL and (info["width"], info["height"]) == img.size
    meta = json.loads(img.text["stylemix:blend"])
    assert meta == info["metadata"]
    assert meta["weights"] == [0.5, 0.25, 0.25] and meta["normalized_weights"] == [0.5, 0.25, 0.25]
    assert meta["styles"] == [A, B, "my style.png"] and meta["alpha"] == 0.8
    assert meta["preserve_color"] == "luminance" and img.text["stylemix:command"] == info["command"]

    # run the command the page shows, from a folder holding the files under the names the person gave
    work = tmp_path / "cli"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "my style.png").write_bytes(style_bytes)
    if photo == "upload":
        assert meta["content"] == "holiday photo.png"
        (work / "holiday photo.png").write_bytes(content_bytes)
    *setup, line = info["command"].split(" && ")
    for step in setup:  # the bundled photo, saved by scikit-image
        argv = shlex.split(step)
        assert argv[:2] == ["python", "-c"]
        subprocess.run([sys.executable, "-c", argv[2]], check=True, cwd=work)
    argv = shlex.split(line)
    assert argv[:2] == ["stylemix", "stylize"] and argv[argv.index("--model") + 1] == str(tiny_model_dir)
    assert main(argv[1:]) == 0, capsys.readouterr().err
    assert np.array_equal(_pixels((work / "stylemix-blend.png").read_bytes()), _pixels(png.content))


def test_sweep_strip_between_two_styles(client, full):
    sid = _session(client)
    r = client.post(f"/api/s/{sid}/sweep", json={"photo": "bundled:chelsea", "a": f"builtin:{A}",
                                                  "b": f"builtin:{B}", "steps": 3})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    _, want = full.sweep(client.app.state.blender.bundled("chelsea"), [A, B], steps=3, max_size=SWEEP, labels=True, names=[A, B])
    got = _pixels(r.content)
    assert got.shape == np.asarray(want).shape and got.shape[1] > 2.5 * SWEEP
    assert np.abs(got - np.asarray(want).astype(np.int16)).max() <= 1
    _error(client.post(f"/api/s/{sid}/sweep", json={"photo": "bundled:chelsea", "a": f"builtin:{A}",
                                                     "b": f"builtin:{B}", "steps": 50}), 400, "at most 9 steps")


# --- bad input --------------------------------------------------------------------------------------------

def test_bad_uploads_give_a_message_and_the_server_keeps_serving(make_client):
    client, blender = make_client(max_upload_bytes=50_000)
    sid = _session(client)
    _error(client.post(f"/api/s/{sid}/upload", content=b"%PDF-1.4 not an image" * 10), 400, "not an image")
    _error(client.post(f"/api/s/{sid}/upload", content=b""), 400, "empty")
    _error(client.post(f"/api/s/{sid}/upload", content=b"\0" * 60_000), 413, "limited to 49 KB", "--max-upload-mb")
    _error(client.post(f"/api/s/{sid}/upload", content=_png_bytes(1, 8, 8)), 400, "at least 16 px")
    truncated = _png_bytes(2, 64, 64)
    msg = _error(client.post(f"/api/s/{sid}/upload", content=truncated[: len(truncated) // 2]), 400, "uploaded file")
    assert str(blender.root) not in msg  # the server's folders are not shown to the page
    assert not list(blender.root.rglob("*.upload"))  # nothing refused is kept
    ok = _upload(client, sid, _png_bytes(3))
    assert client.post(f"/api/s/{sid}/preview", json=_blend(photo=ok["ref"])).status_code == 200


def test_all_zero_weights_and_bad_blends_give_messages(client):
    sid = _session(client)
    _error(client.post(f"/api/s/{sid}/preview", json=_blend((0, 0))), 400, "all style weights are zero")
    _error(client.post(f"/api/s/{sid}/render", json=_blend((0, 0))), 400, "all style weights are zero")
    _error(client.post(f"/api/s/{sid}/preview", json=_blend((1,) * 5, styles=(A, B, A, B, A))), 400, "styles")
    _error(client.post(f"/api/s/{sid}/preview", json=_blend((-1, 1))), 400, "weight")
    _error(client.post(f"/api/s/{sid}/preview", json=_blend(alpha=2)), 400, "alpha")
    _error(client.post(f"/api/s/{sid}/preview", json=_blend(styles=("builtin:no-such-style", B))), 400,
           "unknown style 'no-such-style'")
    _error(client.post(f"/api/s/{sid}/preview", content=b"{not json"), 400, "bad request")
    assert client.post(f"/api/s/{sid}/preview", json=_blend()).status_code == 200


def test_the_frameworks_own_refusals_are_messages_too(client):
    sid = _session(client)
    deep = "[" * 100_000 + "]" * 100_000  # too deep for the JSON parser: refused before validation
    _error(client.post(f"/api/s/{sid}/preview", content=deep, headers={"content-type": "application/json"}), 400,
           "bad request")
    _error(client.get("/api/no-such-route"), 404, "no such")
    _error(client.get(f"/api/s/{sid}/preview"), 405, "method")
    assert client.post(f"/api/s/{sid}/preview", json=_blend()).status_code == 200


def test_tabs_never_see_each_others_images(client):
    one, two = _session(client), _session(client)
    assert one != two and len(one) >= 20  # random, unguessable ids
    ref = _upload(client, one, _png_bytes(4))["ref"]
    assert client.get(f"/api/s/{one}/thumb", params={"ref": ref}).status_code == 200
    _error(client.get(f"/api/s/{two}/thumb", params={"ref": ref}), 404, "upload it again")
    _error(client.post(f"/api/s/{two}/preview", json=_blend(photo=ref)), 404)
    _error(client.post(f"/api/s/{two}/preview", json=_blend(styles=(A, ref))), 404)
    info = client.post(f"/api/s/{one}/render", json=_blend(photo=ref)).json()
    rid = info["url"].rsplit("/", 1)[1]
    assert client.get(f"/api/s/{one}/result/{rid}").status_code == 200
    _error(client.get(f"/api/s/{two}/result/{rid}"), 404)
    _error(client.post("/api/s/not-a-session/preview", json=_blend()), 404, "reload the page")


def test_no_request_path_reaches_the_file_system_outside_the_upload_folder(make_client, tmp_path):
    client, blender = make_client()
    secret = tmp_path / "secret.png"
    secret.write_bytes(_png_bytes(5, 32, 32))  # a readable image outside the upload folder
    before = sorted(p for p in tmp_path.rglob("*") if blender.root not in (p, *p.parents))
    sid = _session(client)
    own = _upload(client, sid, _png_bytes(6), **{"content-disposition": 'attachment; filename="../../evil.png"',
                                                 "x-filename": "/tmp/evil.png"})
    for bad in ("../secret", "../../secret.png", str(secret), str(secret.with_suffix("")), "/etc/passwd",
                f"{own['id']}/../../../secret.png", "..", ""):
        for ref in (f"upload:{bad}", f"bundled:{bad}", bad):
            r = client.post(f"/api/s/{sid}/preview", json=_blend(photo=ref))
            assert r.status_code in (400, 404) and "error" in r.json(), (ref, r.status_code)
            r = client.get(f"/api/s/{sid}/thumb", params={"ref": ref})
            assert r.status_code in (400, 404), ref
        for ref in (f"upload:{bad}", f"builtin:{bad}", bad):
            r = client.post(f"/api/s/{sid}/preview", json=_blend(styles=(A, ref)))
            assert r.status_code in (400, 404) and "error" in r.json(), (ref, r.status_code)
    for url in ("/static/../pyproject.toml", "/static/%2e%2e%2fpyproject.toml", "/static/%2Fetc%2Fpasswd",
                "/static/index.html/..%2F..%2F__init__.py", f"/api/s/{sid}/result/..%2F..%2Fsecret.png",
                f"/api/s/{sid}/result/%2Fetc%2Fpasswd", "/api/s/..%2F..%2Fsecret.png/result/x",
                f"/api/s/{sid}/result/{own['id']}"):
        r = client.get(url)
        assert r.status_code == 404 and b"PNG" not in r.content[:8] and b"root:" not in r.content, url
    after = sorted(p for p in tmp_path.rglob("*") if blender.root not in (p, *p.parents))
    assert after == before  # nothing written or removed outside the upload folder
    stored = sorted(str(p.relative_to(blender.root)) for p in blender.root.rglob("*") if p.is_file())
    assert [f for f in stored if not f.startswith("bundled/")] == [f"{sid}/{own['id']}.upload"]  # server's names
    assert re.fullmatch(r"[0-9a-f]{16}", own["id"])


def test_sessions_and_uploads_are_bounded(make_client):
    client, blender = make_client(max_sessions=2, max_uploads=2)
    first = _session(client)
    refs = [_upload(client, first, _png_bytes(i))["ref"] for i in range(3)]
    assert len(list((blender.root / first).glob("*.upload"))) == 2
    _error(client.get(f"/api/s/{first}/thumb", params={"ref": refs[0]}), 404, "keeps its last 2")
    assert client.get(f"/api/s/{first}/thumb", params={"ref": refs[2]}).status_code == 200
    _session(client), _session(client)  # a third tab: the least recently used one is dropped, files too
    _error(client.post(f"/api/s/{first}/preview", json=_blend()), 404, "reload the page")
    assert not (blender.root / first).exists()


def test_an_upload_or_render_that_races_the_eviction_writes_nothing(make_client):
    client, blender = make_client(max_sessions=1)
    sid = _session(client)
    tab = blender.sessions.get(sid)  # what a request holds while its body streams or its render runs
    _session(client)  # another tab: `sid` is dropped meanwhile, its folder with it
    for call in (lambda: blender.upload(tab, _png_bytes(1)), lambda: blender.render(tab, BlendIn(**_blend()))):
        with pytest.raises(AppError, match="reload the page") as e:
            call()
        assert e.value.status == 404
        assert not (blender.root / sid).exists() and not tab.uploads and not tab.results


def test_upload_dir_keeps_everything_the_server_did_not_write(make_client, tmp_path):
    mine = tmp_path / "mine"
    (mine / "bundled").mkdir(parents=True)
    (mine / "bundled" / "mine.txt").write_text("x")  # the names the server uses inside its folder
    (mine / "notes.upload").write_text("y")
    before = sorted((p.relative_to(mine).as_posix(), p.is_file() and p.read_bytes()) for p in mine.rglob("*"))
    client, blender = make_client(upload_dir=mine)
    sid = _session(client)
    ref = _upload(client, sid, _png_bytes(3))["ref"]
    assert client.post(f"/api/s/{sid}/preview", json=_blend()).status_code == 200  # writes the bundled photo
    assert client.post(f"/api/s/{sid}/render", json=_blend(photo=ref)).status_code == 200
    assert blender.root.is_relative_to(mine.resolve()) and (blender.root / "bundled" / "astronaut.png").is_file()
    blender.close()
    after = sorted((p.relative_to(mine).as_posix(), p.is_file() and p.read_bytes()) for p in mine.rglob("*"))
    assert after == before
    _, made = make_client(upload_dir=tmp_path / "new" / "uploads")  # folders the server had to make go too
    assert made.root.is_dir()
    made.close()
    assert not (tmp_path / "new").exists()


def test_an_unusable_upload_dir_is_a_message_and_leaves_nothing(full, tmp_path):
    (tmp_path / "a-file").write_text("x")
    for bad in (tmp_path / "a-file", tmp_path / "a-file" / "sub"):
        with pytest.raises(ValueError, match=f"cannot keep uploads in the upload folder {bad} .*--upload-dir"):
            create_app(full, config=AppConfig(upload_dir=bad))
    assert [p.name for p in tmp_path.rglob("*")] == ["a-file"]


# --- the command ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_help_does_not_import_the_web_framework():
    code = ("import sys; from stylemix.inference.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    assert main(["app", "--no-browser"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "stylemix app: error: the app needs fastapi: pip install 'stylemix[app]'"


def test_cli_refuses_a_bad_port(capsys):
    assert main(["app", "--no-browser", "--port", "70000"]) == 2
    assert "--port must be in 0..65535" in capsys.readouterr().err


@pytest.mark.parametrize("mb", ["inf", "nan", "1e-9", "-1"])
def test_cli_refuses_an_upload_limit_that_is_not_a_size(mb, capsys):
    assert main(["app", "--no-browser", "--max-upload-mb", mb]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines() == [
        f"stylemix app: error: --max-upload-mb must be a finite number of MB, at least one byte (1e-6), got {float(mb)}"]


@pytest.mark.parametrize("where", ["busy port", "foreign host"])
def test_a_failed_start_leaves_no_folder(where, tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the app's own folder would go
    (tmp_path / "tmp").mkdir()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    host, port = ("127.0.0.1", taken.getsockname()[1]) if where == "busy port" else ("192.0.2.1", 0)  # TEST-NET-1
    try:
        for extra in ([], ["--upload-dir", tmp_path / "new" / "uploads"]):
            rc = main(["app", "--no-browser", "--host", host, "--port", port, "--model", tiny_model_dir, *extra])
            err = capsys.readouterr().err
            assert rc == 2 and err.startswith(f"stylemix app: error: cannot listen on {host}:{port}"), err
            assert list((tmp_path / "tmp").iterdir()) == [] and not (tmp_path / "new").exists()
    finally:
        taken.close()


def test_listen_refuses_a_port_in_use(full, tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    app = create_app(full, config=AppConfig(upload_dir=tmp_path / "u"))
    try:
        with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{taken.getsockname()[1]}"):
            listen(app, "127.0.0.1", taken.getsockname()[1])
        server, sock, url = listen(app, "127.0.0.1", 0)
        assert url == f"http://127.0.0.1:{sock.getsockname()[1]}/"
        sock.close()
    finally:
        taken.close()
        app.state.blender.close()
