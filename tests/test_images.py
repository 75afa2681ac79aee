"""Image I/O facts: every mode loads with the right values, EXIF orientation is applied, bad files fail
with a clear error naming the file, padding/cropping round-trips, saving is atomic."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylemix.inference.images import MIN_SIDE, load_image, load_mask, save_image, to_pil
from stylemix.models.canvas import crop_to, pad_to_multiple


def _gradient(h: int = 24, w: int = 32) -> np.ndarray:
    """uint8 RGB image with distinct values everywhere."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1).astype(np.uint8)


def test_rgb_png_loads_exact_values(tmp_path):
    arr = _gradient()
    Image.fromarray(arr).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    assert x.shape == (1, 3, 24, 32) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255)


def test_16bit_png_scales_to_unit_range(tmp_path):
    arr = np.full((20, 24), 65535, np.uint16)
    arr[0, 0], arr[0, 1] = 0, 32768
    Image.fromarray(arr).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    x = load_image(tmp_path / "g16.png")
    assert x.shape == (1, 3, 20, 24)
    assert x[0, :, 5, 5].tolist() == [1.0, 1.0, 1.0]
    assert x[0, 0, 0, 0] == 0.0
    assert abs(float(x[0, 1, 0, 1]) - 32768 / 65535) < 1e-6


def test_grayscale_and_bilevel(tmp_path):
    Image.fromarray(np.full((20, 20), 51, np.uint8)).save(tmp_path / "l.png")
    x = load_image(tmp_path / "l.png")
    assert torch.allclose(x, torch.full((1, 3, 20, 20), 0.2))
    Image.new("1", (20, 20), 1).save(tmp_path / "b.png")
    assert torch.equal(load_image(tmp_path / "b.png"), torch.ones(1, 3, 20, 20))


def test_rgba_composites_on_white(tmp_path):
    arr = np.zeros((20, 20, 4), np.uint8)
    arr[..., 0] = 255  # red
    arr[:10, :, 3] = 255  # top opaque, bottom fully transparent
    Image.fromarray(arr, "RGBA").save(tmp_path / "t.png")
    x = load_image(tmp_path / "t.png")
    assert x[0, :, 2, 2].tolist() == [1.0, 0.0, 0.0]
    assert x[0, :, 15, 2].tolist() == [1.0, 1.0, 1.0]


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    img.paste(1, (0, 10, 20, 20))
    img.save(tmp_path / "p.png", transparency=1)
    x = load_image(tmp_path / "p.png")
    assert x[0, :, 2, 2].tolist() == [0.0, 0.0, 1.0]  # opaque blue
    assert x[0, :, 15, 2].tolist() == [1.0, 1.0, 1.0]  # transparent -> white


def test_cmyk_converts_to_rgb(tmp_path):
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(tmp_path / "c.tif")  # pure red in CMYK
    x = load_image(tmp_path / "c.tif")
    assert torch.allclose(x[0, :, 5, 5], torch.tensor([1.0, 0.0, 0.0]))


def test_exif_orientation_6_rotates(tmp_path):
    arr = np.zeros((16, 32, 3), np.uint8)
    arr[:, :16] = (255, 0, 0)  # left half red
    arr[:, 16:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display = rotate 90 degrees clockwise
    Image.fromarray(arr).save(tmp_path / "r.jpg", exif=exif, quality=95)
    x = load_image(tmp_path / "r.jpg")
    assert x.shape == (1, 3, 32, 16)  # portrait after rotation
    top, bottom = x[0, :, 4, 8], x[0, :, 28, 8]  # rotating clockwise puts the left half on top
    assert top[0] > 0.8 and top[2] < 0.2
    assert bottom[2] > 0.8 and bottom[0] < 0.2


def test_arrays_and_tensors():
    arr = _gradient()
    ref = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255
    assert torch.equal(load_image(arr), ref)
    assert torch.equal(load_image(arr.astype(np.float32) / 255), ref)
    assert torch.equal(load_image(torch.from_numpy(arr)), ref)  # (h, w, 3) uint8 tensor
    assert torch.equal(load_image(ref[0]), ref)  # (3, h, w)
    assert torch.equal(load_image(ref), ref)  # (1, 3, h, w)
    assert torch.equal(load_image(Image.fromarray(arr)), ref)
    rgba = np.concatenate([arr, np.zeros_like(arr[..., :1])], -1)  # fully transparent
    assert torch.equal(load_image(rgba), torch.ones_like(ref))
    gray16 = np.full((20, 20), 65535, np.uint16)
    assert torch.equal(load_image(gray16), torch.ones(1, 3, 20, 20))


def test_bad_arrays_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_image(np.full((20, 20, 3), 200.0, np.float32))
    with pytest.raises(ValueError, match="finite"):
        load_image(np.full((20, 20, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="shape"):
        load_image(np.zeros((20, 20, 5), np.uint8))
    with pytest.raises(ValueError, match="one image"):
        to_pil(torch.zeros(2, 3, 8, 8))


def test_max_size_downscales_long_side(tmp_path):
    x = load_image(np.zeros((30, 60, 3), np.uint8), max_size=40)
    assert x.shape == (1, 3, 20, 40)
    y = load_image(np.zeros((30, 60, 3), np.uint8), max_size=100)
    assert y.shape == (1, 3, 30, 60)  # never upscales
    flat = load_image(np.full((64, 64, 3), 128, np.uint8), max_size=32)
    assert torch.allclose(flat, torch.full_like(flat, 128 / 255), atol=1e-6)  # antialiasing keeps flat areas flat


def test_too_small_image_errors():
    with pytest.raises(ValueError, match=rf"8x40 px.*at least {MIN_SIDE}"):
        load_image(np.zeros((40, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="at least"):  # small after max_size
        load_image(np.zeros((20, 400, 3), np.uint8), max_size=100)


def test_too_small_after_max_size_names_the_files_own_size(tmp_path):
    Image.fromarray(np.zeros((5000, 20, 3), np.uint8)).save(tmp_path / "tall.png")
    with pytest.raises(ValueError, match=r"tall\.png is 20x5000 px; fitted to max_size 1024 it would be 4x1024 px; "
                                         rf"images need a short side of at least {MIN_SIDE} px"):
        load_image(tmp_path / "tall.png", max_size=1024)
    assert load_image(tmp_path / "tall.png").shape == (1, 3, 5000, 20)  # at full size it is fine


def _smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth uint8 RGB picture (upsampled noise): downscaling methods agree on it."""
    small = np.random.default_rng(seed).random((h // 16 + 2, w // 16 + 2, 3))
    return np.array(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR))


@pytest.mark.parametrize("fmt, mode", [("png", "RGB"), ("jpg", "RGB"), ("png", "I;16"), ("png", "P"), ("png", "RGBA"),
                                       ("webp", "RGB")])
def test_large_files_are_decoded_small_and_match_a_full_decode(tmp_path, fmt, mode, monkeypatch):
    arr = _smooth(600, 1000)
    img = Image.fromarray(arr)
    if mode == "I;16":
        img = Image.fromarray(arr[..., 1].astype(np.uint16) * 257)
    elif mode == "P":
        img = img.quantize(64)
        img.info["transparency"] = 0
    elif mode == "RGBA":
        img = Image.fromarray(np.concatenate([arr, np.full_like(arr[..., :1], 200)], -1))
    path = tmp_path / f"big.{fmt}"
    img.save(path, **({"quality": 95} if fmt in ("jpg", "webp") else {}))
    full = load_image(path)  # no max_size: decoded at full size
    reduced = []
    original = Image.Image.reduce
    monkeypatch.setattr(Image.Image, "reduce", lambda im, f, *a: reduced.append(f) or original(im, f, *a))
    x = load_image(path, max_size=100)
    assert x.shape == (1, 3, 60, 100)  # the file's aspect ratio, whatever size it was decoded at
    if fmt == "jpg":
        assert reduced == []  # Image.draft decoded it at 1/8 scale (125 x 75) already
    else:
        assert reduced[:1] == [5]  # 1000 px box-reduced to 200 px: twice max_size, then resized
    ref = torch.nn.functional.interpolate(full, size=(60, 100), mode="bilinear", antialias=True)
    assert (x - ref).abs().mean() < 0.01 and (x - ref).abs().max() < 0.1


def test_large_rotated_jpeg_is_reduced_then_turned_upright(tmp_path):
    arr = _smooth(400, 800)
    arr[:, :400] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # display = rotate 90 degrees clockwise
    Image.fromarray(arr).save(tmp_path / "r.jpg", exif=exif, quality=95)
    x = load_image(tmp_path / "r.jpg", max_size=80)
    assert x.shape == (1, 3, 80, 40)  # portrait: the upright size decides the fit
    assert x[0, 0, 5, 20] > 0.9 and x[0, 1, 5, 20] < 0.1  # the left half went on top


def test_missing_folder_and_non_image(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="folder"):
        load_image(tmp_path)
    (tmp_path / "notes.png").write_text("hello, not an image")
    with pytest.raises(ValueError, match=r"notes\.png is not an image"):
        load_image(tmp_path / "notes.png")


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_truncated_file_errors(tmp_path, fmt):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"full.{fmt}")
    data = (tmp_path / f"full.{fmt}").read_bytes()
    (tmp_path / f"cut.{fmt}").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"cut\.{fmt}.*(corrupt|truncated)"):
        load_image(tmp_path / f"cut.{fmt}")


def _png_with_header_size(src: Path, dst: Path, w: int, h: int) -> None:
    """Rewrite the IHDR of a PNG to claim w x h (the pixel data stays tiny): a decompression bomb header."""
    data = bytearray(src.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    dst.write_bytes(bytes(data))


def test_decompression_bomb_guard(tmp_path):
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "ok.png")
    with pytest.raises(ValueError, match=r"ok\.png is 50x40 px, too large.*1000 pixels"):
        load_image(tmp_path / "ok.png", max_pixels=1000)
    _png_with_header_size(tmp_path / "ok.png", tmp_path / "bomb.png", 30000, 30000)  # 900 MP header
    with pytest.raises(ValueError, match=r"bomb\.png.*too large"):
        load_image(tmp_path / "bomb.png")
    _png_with_header_size(tmp_path / "ok.png", tmp_path / "big.png", 9000, 9000)  # 81 MP: our 64 MP limit
    with pytest.raises(ValueError, match=r"big\.png.*too large"):
        load_image(tmp_path / "big.png")


def test_pad_crop_round_trip():
    x = torch.rand(1, 3, 21, 30)
    p, size = pad_to_multiple(x, 8)
    assert p.shape == (1, 3, 24, 32) and size == (21, 30)
    assert torch.equal(crop_to(p, size), x)
    assert torch.equal(p[..., 21, :30], x[..., 19, :])  # reflection: row 21 mirrors row 19
    tiny, _ = pad_to_multiple(torch.rand(1, 1, 3, 5), 8)  # too small to reflect: replicate
    assert tiny.shape == (1, 1, 8, 8) and torch.equal(tiny[..., 7, 4], tiny[..., 2, 4])
    same, size = pad_to_multiple(torch.rand(1, 3, 16, 24), 8)
    assert same.shape == (1, 3, 16, 24)


def test_save_round_trip_and_atomic(tmp_path):
    arr = _gradient()
    x = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255
    out = save_image(x, tmp_path / "sub" / "o.png")  # missing folder is created
    assert torch.equal(load_image(out), x)
    save_image(to_pil(x), tmp_path / "o.jpg")
    assert Image.open(tmp_path / "o.jpg").format == "JPEG"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["o.jpg", "o.png"]  # no temp files


def test_save_errors(tmp_path):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="format"):
        save_image(x, tmp_path / "o.xyz")
    with pytest.raises(ValueError, match="format"):
        save_image(x, tmp_path / "noext")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not writable"):
        save_image(x, tmp_path / "file" / "o.png")  # parent is a file
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.parametrize("ext, side", [(".jpg", 65501), (".webp", 16384), (".gif", 65536)])
def test_save_refuses_a_size_the_format_cannot_store(tmp_path, ext, side):
    # Pillow fails only while encoding: "broken data stream" (JPEG), a message without the path (WebP), or an
    # OverflowError traceback (GIF)
    with pytest.raises(ValueError, match=rf"o\{ext}: the image is {side}x16 px .* at most"):
        save_image(Image.new("RGB", (side, 16)), tmp_path / f"o{ext}")
    assert list(tmp_path.iterdir()) == []


def test_load_mask():
    m = load_mask(np.array([[0, 255], [128, 255]], np.uint8))
    assert m.shape == (1, 1, 2, 2) and m[0, 0, 0, 1] == 1.0
    assert torch.equal(load_mask(torch.ones(1, 5, 6, dtype=torch.bool)), torch.ones(1, 1, 5, 6))
    assert load_mask(Image.new("L", (7, 5), 255)).shape == (1, 1, 5, 7)
