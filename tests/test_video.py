"""Video: keyframed weights interpolate linearly, frame-by-frame mode equals `Stylizer.stylize`, the temporal
stabilisation does what it says (running statistics, flow blending, reset at a cut) and lowers the
frame-to-frame error on a panned clip, clips round-trip through every format with their rate and audio, and
bad input is one line, exit 2, with nothing left behind."""
from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stylemix.inference import video as V
from stylemix.inference.api import Stylizer
from stylemix.inference.cli import main
from stylemix.inference.images import load_image
from stylemix.models import functional as Fn
from stylemix.models.canvas import Frame

try:  # the video extra; CI installs it, so these tests run there
    import av
    import cv2
except ImportError:
    av = cv2 = None
video_extra = pytest.mark.skipif(av is None or cv2 is None, reason="needs the video extra: pip install 'stylemix[video]'")


# --- helpers -------------------------------------------------------------------------------------------

def _photo(size: int = 160) -> torch.Tensor:
    """A textured photo (1, 3, size, size): scikit-image's astronaut, downscaled."""
    import skimage.data

    x = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _pan(n: int = 8, h: int = 48, w: int = 64, step: int = 2) -> list[torch.Tensor]:
    """Frames of a photo panned by `step` px per frame: frame t+1 = frame t moved left by `step` px."""
    photo = _photo()
    return [photo[..., 40:40 + h, 20 + step * t:20 + step * t + w].clone() for t in range(n)]


def _temporal_error(frames: torch.Tensor, step: int = 2) -> float:
    """Mean |out[t+1] - out[t] shifted by the known pan|, 8 px of border left out."""
    w = frames.shape[-1]
    a, b = frames[1:, ..., 8:w - step - 8], frames[:-1, ..., 8 + step:w - 8]
    return float((a - b).abs().mean())


def _png(path: Path, seed: int, h: int = 32, w: int = 32) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _mp4(path: Path, frames: list[np.ndarray], fps: int = 12, audio: bool = True, pts_ms: list[int] | None = None):
    """Write uint8 (h, w, 3) frames with libx264 (and a 440 Hz AAC tone as long as the clip)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if pts_ms is not None:
            vs.codec_context.time_base = Fraction(1, 1000)
        a = c.add_stream("aac", rate=16000, layout="mono") if audio else None
        for i, arr in enumerate(frames):
            f = av.VideoFrame.from_ndarray(arr, format="rgb24")
            f.pts, f.time_base = (pts_ms[i], Fraction(1, 1000)) if pts_ms is not None else (i, Fraction(1, fps))
            for p in vs.encode(f):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if a is not None:
            n, fs = int(16000 * len(frames) / fps), a.codec_context.frame_size or 1024
            tone = (0.3 * np.sin(np.arange(n + fs) * 2 * np.pi * 440 / 16000)).astype(np.float32)
            for k in range(0, n, fs):
                af = av.AudioFrame.from_ndarray(tone[None, k:k + fs], format="fltp", layout="mono")
                af.sample_rate, af.pts = 16000, k
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


def _u8(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _stack(frames) -> torch.Tensor:
    return torch.cat([f if isinstance(f, torch.Tensor) else load_image(f) for f in frames])


@pytest.fixture
def stylizer(make_calibrated_model) -> Stylizer:
    return Stylizer(make_calibrated_model(), dtype="fp32")


@pytest.fixture
def styles(tmp_path) -> list[Path]:
    return [_png(tmp_path / "monet.png", 1), _png(tmp_path / "klimt.png", 2, 24, 40)]


def run(argv, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("stylemix video: error:"), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- keyframes -----------------------------------------------------------------------------------------

def test_parse_keyframe_times_names_and_weights():
    names = ["monet", "klimt", "C"]
    assert V.parse_time("12") == (12.0, False) and V.parse_time("1.5s") == (1.5, True) and V.parse_time("5s") == (5, True)
    kf = V.parse_keyframe("5s:klimt=0.3,monet=0.7", names)
    assert kf == V.Keyframe(5.0, (0.7, 0.3, 0.0), seconds=True)
    assert V.parse_keyframe("0:C=2", names).weights == (0.0, 0.0, 2.0)
    for spec, needle in [("5s:van-gogh=1", "unknown style 'van-gogh'"), ("x:monet=1", "bad keyframe time"),
                         ("3:monet=-1", "bad weight"), ("3:monet=0", "weight 0"), ("3", "TIME:NAME=W"),
                         ("3:monet", "needs a weight"), ("-1:monet=1", "bad keyframe time")]:
        with pytest.raises(ValueError, match=needle):
            V.parse_keyframe(spec, names)
    with pytest.raises(ValueError, match="ambiguous"):
        V.parse_keyframe("0:a=1", ["a", "a"])
    assert V.style_names(["art/monet.jpg", "impressionism-03", torch.zeros(1, 3, 8, 8)]) == ["monet", "impressionism-03", "C"]


def test_keyframe_weights_are_linear_between_keyframes_and_held_outside():
    kfs = [V.Keyframe(2, (1.0, 0.0)), V.Keyframe(1.0, (0.0, 3.0), seconds=True)]  # frame 2, then 1 s = frame 10 at 10 fps
    at = V.keyframe_schedule(kfs, 2, Fraction(10))
    torch.testing.assert_close(at(0), torch.tensor([1.0, 0.0]))  # held before the first
    torch.testing.assert_close(at(6), torch.tensor([0.5, 0.5]))  # the midpoint: the even mix of the normalised rows
    torch.testing.assert_close(at(4), torch.tensor([0.75, 0.25]))
    torch.testing.assert_close(at(25), torch.tensor([0.0, 1.0]))  # held after the last
    three = V.keyframe_schedule([V.Keyframe(0, (1, 0, 0)), V.Keyframe(4, (0, 1, 0)), V.Keyframe(8, (0, 0, 1))], 3, 24)
    torch.testing.assert_close(three(6), torch.tensor([0.0, 0.5, 0.5]))
    with pytest.raises(ValueError, match="time order"):
        V.keyframe_schedule([V.Keyframe(1.0, (1, 0), seconds=True), V.Keyframe(5, (0, 1))], 2, Fraction(10))
    with pytest.raises(ValueError, match="time order"):
        V.keyframe_schedule([V.Keyframe(5, (1, 0)), V.Keyframe(5, (0, 1))], 2, 10)
    with pytest.raises(ValueError, match="3 weights for 2 styles"):
        V.keyframe_schedule([V.Keyframe(0, (1, 0, 0))], 2, 10)


@video_extra
def test_keyframed_clip_uses_the_interpolated_weights(stylizer, styles):
    frames = _pan(5)
    got = list(stylizer.stylize_video(frames, styles, keyframes=["0:monet=1", "4:klimt=1"], temporal="none",
                                      return_tensor=True))
    mid = stylizer.stylize(frames[2], styles, weights=[0.5, 0.5], max_size=None, return_tensor=True)
    torch.testing.assert_close(got[2], mid, atol=1e-5, rtol=0)
    first = stylizer.stylize(frames[0], styles, weights=[1, 0], max_size=None, return_tensor=True)
    torch.testing.assert_close(got[0], first, atol=1e-5, rtol=0)


# --- temporal stabilisation ----------------------------------------------------------------------------

def test_frame_by_frame_equals_stylize(stylizer, styles):
    frames = _pan(3)
    got = list(stylizer.stylize_video(frames, styles, [0.7, 0.3], temporal="none", return_tensor=True))
    assert len(got) == 3
    for x, y in zip(frames, got):
        torch.testing.assert_close(y, stylizer.stylize(x, styles, [0.7, 0.3], max_size=None, return_tensor=True),
                                   atol=1e-6, rtol=0)


@video_extra
def test_running_statistics_are_the_exponential_average(stylizer, styles):
    """Frame 2 is normalised with 0.9 * stats(frame 1) + 0.1 * stats(frame 2), not its own."""
    a, b = _pan(1)[0], _photo()[..., :48, :64] * 0.5
    cfg = V.TemporalConfig(stats=0.9, flow=0.0)
    got = list(stylizer.stylize_video([a, b], styles, temporal=cfg, return_tensor=True))
    m, codes, pad = stylizer.model, stylizer.style_codes(styles), Frame((48, 64))
    with torch.inference_mode():
        fa, fb = m.encode_content(pad.apply(a, m.stride)), m.encode_content(pad.apply(b, m.stride))
        stats = {t: tuple(0.9 * p + 0.1 * q for p, q in zip(Fn.mean_std(fa[t]), Fn.mean_std(fb[t]))) for t in m.mix_taps}
        want = pad.crop(m.stylize(fb, codes, torch.tensor([0.5, 0.5]), 1.0, content_stats=stats))
        own = pad.crop(m.stylize(fb, codes, torch.tensor([0.5, 0.5]), 1.0))
    torch.testing.assert_close(got[1], want, atol=1e-5, rtol=0)
    assert float((got[1] - own).abs().mean()) > 0.01  # it did change something


@video_extra
def test_warp_and_reliability_on_a_known_shift():
    img = _photo(96)[..., :64, :80]
    flow = torch.zeros(64, 80, 2)
    flow[..., 0] = 3.0  # sample 3 px to the right
    moved = V.warp(img, flow)
    torch.testing.assert_close(moved[..., :-3], img[..., 3:], atol=1e-5, rtol=0)
    a, b = V.gray8(img[..., :, 4:]), V.gray8(img[..., :, :-4])  # b = a moved right by 4 px
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    back, fwd = V.optical_flow(dis, b, a), V.optical_flow(dis, a, b)
    assert abs(float(np.median(back[..., 0])) + 4) < 0.3  # b(p) = a(p - 4): the flow back is -4 px
    ok = V.reliable(back, fwd)
    assert float(ok[:, 12:-8].mean()) > 0.9  # tracked where both frames see the scene
    assert float(ok[:, :3].mean()) < 0.5  # the strip that came into view is not


@video_extra
def test_a_cut_starts_a_new_shot(stylizer, styles):
    """After a cut nothing of the previous shot is blended in and the statistics restart: the frame is exactly
    what frame-by-frame stylisation makes."""
    a = _pan(1)[0]
    b = torch.flip(_photo()[..., 100:148, 90:154], dims=(-1,))
    got = list(stylizer.stylize_video([a, a, b], styles, temporal="both", return_tensor=True))
    ref = stylizer.stylize(b, styles, max_size=None, return_tensor=True)
    torch.testing.assert_close(got[2], ref, atol=1e-6, rtol=0)


@video_extra
def test_stabilisation_lowers_the_temporal_error_of_a_pan(stylizer, styles):
    frames = _pan(8)
    out = {m: _stack(stylizer.stylize_video(frames, styles, temporal=m, return_tensor=True)) for m in ("none", "both")}
    e_none, e_both = _temporal_error(out["none"]), _temporal_error(out["both"])
    assert e_both < 0.6 * e_none, (e_none, e_both)
    assert (out["both"] - out["none"]).abs().mean() < 0.05  # still the same stylisation


@video_extra
def test_alpha_zero_yields_the_frames_themselves(stylizer, styles):
    frames = _pan(2)
    got = list(stylizer.stylize_video(frames, styles, alpha=0, return_tensor=True))
    torch.testing.assert_close(got[1], frames[1])


@video_extra
def test_stylize_video_checks_at_call_time_and_is_lazy(stylizer, styles):
    with pytest.raises(ValueError, match="unknown style"):
        stylizer.stylize_video(_pan(2), styles, keyframes=["0:nope=1"])
    with pytest.raises(ValueError, match="either"):
        stylizer.stylize_video(_pan(2), styles, [1, 1], keyframes=["0:monet=1"])
    with pytest.raises(ValueError, match="no frames"):
        stylizer.stylize_video([], styles)
    calls = []

    def frames():
        for x in _pan(3):
            calls.append(1)
            yield x
    gen = stylizer.stylize_video(frames(), styles)
    assert len(calls) == 1  # the first frame, read for the size
    next(gen)
    assert len(calls) == 1


# --- formats -------------------------------------------------------------------------------------------

@video_extra
def test_mp4_round_trip_keeps_rate_size_and_audio(tmp_path):
    frames = [_u8(x) for x in _pan(10)]
    src = V.open_video(_mp4(tmp_path / "in.mp4", frames, fps=12))
    assert (src.info.size, src.info.fps, src.info.frames, src.info.audio) == ((48, 64), 12, 10, True)
    read = list(src)
    assert np.abs(_u8(read[4]).astype(int) - frames[4]).mean() < 8  # x264 at crf 18, 4:2:0 chroma on fine texture
    n = V.write_video(iter(read), tmp_path / "out.mp4", src.info.fps, audio_from=tmp_path / "in.mp4")
    back = V.open_video(tmp_path / "out.mp4")
    assert n == 10 and (back.info.size, back.info.fps, back.info.frames, back.info.audio) == ((48, 64), 12, 10, True)
    with av.open(str(tmp_path / "out.mp4")) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac" and a.codec_context.sample_rate == 16000  # copied, not re-encoded
    V.write_video(iter(read), tmp_path / "out.webm", src.info.fps, audio_from=tmp_path / "in.mp4")
    with av.open(str(tmp_path / "out.webm")) as c:
        assert c.streams.audio[0].codec_context.name == "opus"  # webm takes no AAC: re-encoded
    assert _leftovers(tmp_path) == []


@video_extra
@pytest.mark.parametrize("name, fps", [("o.gif", Fraction(25, 2)), ("o.webp", Fraction(12000, 996)), ("frames", 12)])
def test_animations_and_folders_round_trip(tmp_path, name, fps):
    frames = [_stack([x]) for x in _pan(6)]
    assert V.write_video(iter(frames), tmp_path / name, 12) == 6
    back = V.open_video(tmp_path / name, fps=12 if name == "frames" else None)
    got = _stack(back)
    assert got.shape == (6, 3, 48, 64) and abs(float(back.info.fps) - float(fps)) < 0.05  # GIF: 1/100 s steps
    if name == "frames":
        assert torch.equal((got * 255).round(), (_stack(frames) * 255).round())  # PNG: lossless
        assert oct((tmp_path / name).stat().st_mode & 0o777) != oct(0o700)
    assert _leftovers(tmp_path) == []


@video_extra
def test_variable_frame_rate_is_refused_or_resampled(tmp_path):
    frames = [np.full((32, 32, 3), 20 * i, np.uint8) for i in range(6)]
    path = _mp4(tmp_path / "vfr.mp4", frames, audio=False, pts_ms=[0, 100, 140, 240, 280, 380])
    with pytest.raises(ValueError, match=r"variable frame rate \(frame intervals from 40.0 to 100.0 ms\).*--fps"):
        V.open_video(path)
    src = V.open_video(path, fps=20)  # ticks every 50 ms from 0 to 380 + 1/rate
    got = [float(x.mean()) * 255 for x in src]
    assert src.info.variable and len(got) == src.info.frames
    # each tick shows the frame nearest in time (frames at 0, 100, 140, 240, 280, 380 ms): 0 ms -> 0, 50 -> 1 (a
    # tie goes to the later frame), 100 -> 1, 150 -> 2 (140), 200 -> 3 (240), 250 -> 3, 300 -> 4 (280), 350 -> 5
    assert [round(g / 20) for g in got[:8]] == [0, 1, 1, 2, 3, 3, 4, 5] and set(got[8:]) <= {got[7]}


@video_extra
def test_display_rotation_is_applied(tmp_path):
    """A phone clip stored sideways with a display matrix plays upright: frames come out rotated as FFmpeg's
    players rotate them (90 degrees counter-clockwise here)."""
    path = tmp_path / "rot.mp4"
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 32, "yuv420p"
        vs.set_display_rotation(90)
        arr = np.zeros((32, 64, 3), np.uint8)
        arr[:, :8] = 255  # a white band at the left edge
        for i in range(2):
            f = av.VideoFrame.from_ndarray(arr, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 10)
            for p in vs.encode(f):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
    src = V.open_video(path)
    x = next(iter(src))
    assert src.info.size == (64, 32) and x.shape == (1, 3, 64, 32)
    assert float(x[..., -6:, :].mean()) > 0.9 and float(x[..., :-10, :].mean()) < 0.1  # the band is now at the bottom


def test_frame_size_caps(tmp_path):
    assert V.capped_max_size((4320, 7680), None, None) == 3840  # 8K frames scaled down to 4K UHD's pixel count
    (tmp_path / "big").mkdir()
    Image.new("RGB", (4096, 2304)).save(tmp_path / "big" / "0001.png")
    assert V.open_video(tmp_path / "big").out_size == (2160, 3840)  # read from the header: nothing decoded yet
    assert V.capped_max_size((1080, 1920), None, None) is None and V.capped_max_size((1080, 1920), 640, None) == 640
    with pytest.raises(ValueError, match="refusing to decode"):
        V.capped_max_size((20000, 20000), None, None)
    with pytest.raises(ValueError, match="at least 16 px"):
        V.capped_max_size((10, 64), None, None)


@video_extra
def test_a_failed_write_leaves_nothing(tmp_path):
    def broken():
        yield _pan(1)[0]
        raise KeyboardInterrupt

    for name in ("out.mp4", "out.gif", "frames"):
        with pytest.raises(KeyboardInterrupt):
            V.write_video(broken(), tmp_path / name, 12)
        assert not (tmp_path / name).exists() and _leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="no frames"):
        V.write_video(iter([]), tmp_path / "empty.mp4", 12)
    assert list(tmp_path.iterdir()) == []


# --- the command line ----------------------------------------------------------------------------------

@pytest.fixture
def clip(tmp_path) -> Path:
    return _mp4(tmp_path / "clip.mp4", [_u8(x) for x in _pan(6)], fps=12)


@video_extra
def test_cli_writes_a_stylised_video_with_audio(tiny_model_dir, clip, styles, tmp_path, capsys):
    out = tmp_path / "out" / "styled.mp4"
    rc, stdout, err = run(["video", clip, "-s", f"{styles[0]}:0.7", "-s", f"{styles[1]}:0.3", "-o", out,
                           "--model", tiny_model_dir], capsys)
    assert rc == 0, err
    assert "6 frames at 12 fps, audio copied" in stdout
    back = V.open_video(out)
    assert (back.info.frames, back.info.fps, back.info.size, back.info.audio) == (6, 12, (48, 64), True)
    first = load_image(_u8(next(iter(back))))
    ref = Stylizer.from_pretrained(tiny_model_dir).stylize(next(iter(V.open_video(clip))), styles, [0.7, 0.3],
                                                          max_size=None, return_tensor=True)
    assert float((first - ref).abs().mean()) < 0.03  # frame 0 is plain stylisation, up to x264


@video_extra
def test_cli_keyframes_to_gif_and_frames(tiny_model_dir, clip, styles, tmp_path, capsys):
    rc, stdout, err = run(["video", clip, "-s", styles[0], "-s", styles[1], "-k", "0:monet=1", "-k", "0.25s:klimt=1",
                           "-o", tmp_path / "o.gif", "--model", tiny_model_dir, "--max-frames", "4"], capsys)
    assert rc == 0, err
    assert "audio is not kept" in err and V.open_video(tmp_path / "o.gif").info.frames == 4
    rc, _, err = run(["video", clip, "-s", styles[0], "-o", tmp_path / "frames", "--model", tiny_model_dir,
                      "--temporal", "stats", "--max-size", "32"], capsys)
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "frames").iterdir())[:2] == ["frame_000001.png", "frame_000002.png"]
    assert Image.open(tmp_path / "frames" / "frame_000006.png").size == (32, 24)


@video_extra
def test_cli_bad_inputs_exit_2_with_one_line_and_no_output(clip, styles, tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    (tmp_path / "empty").mkdir()
    vfr = _mp4(tmp_path / "vfr.mp4", [np.zeros((32, 32, 3), np.uint8)] * 4, audio=False, pts_ms=[0, 100, 140, 300])
    ro = tmp_path / "ro"
    ro.write_text("a file, not a folder")
    with av.open(str(tmp_path / "zero.mp4"), "w") as c:  # a video stream and no frames
        vs = c.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 32, "yuv420p"
        c.start_encoding()
    with av.open(str(tmp_path / "sound.m4a"), "w", format="mp4") as c:  # audio only
        c.add_stream("aac", rate=16000, layout="mono")
        c.start_encoding()
    s = ["-s", styles[0], "-s", styles[1]]
    cases = [
        ([text, *s, "-o", tmp_path / "o.mp4"], ["notes.mp4 is not a video"]),
        ([tmp_path / "empty", *s, "-o", tmp_path / "o.mp4"], ["no frames in folder"]),
        ([tmp_path / "missing.mp4", *s, "-o", tmp_path / "o.mp4"], ["no such video"]),
        ([tmp_path / "zero.mp4", *s, "-o", tmp_path / "o.mp4"], ["zero.mp4 has no video"]),
        ([tmp_path / "sound.m4a", *s, "-o", tmp_path / "o.mp4"], ["sound.m4a has no video stream"]),
        ([styles[0], *s, "-o", tmp_path / "o.mp4"], ["still image"]),
        ([vfr, *s, "-o", tmp_path / "o.mp4"], ["variable frame rate", "--fps"]),
        ([clip, *s, "-o", ro / "o.mp4"], ["not a writable folder"]),
        ([clip, *s, "-o", tmp_path / "o.xyz"], ["cannot write a clip as o.xyz"]),
        ([clip, *s, "-o", clip], ["one of the inputs"]),
        ([clip, *s, "-k", "0:monet=1", "-k", "5:picasso=1", "-o", tmp_path / "o.mp4"], ["unknown style 'picasso'"]),
        ([clip, *s, "-k", "1s:monet=1", "-k", "5:klimt=1", "-o", tmp_path / "o.mp4"], ["time order"]),
        ([clip, "-s", f"{styles[0]}:0.5", "-s", styles[1], "-k", "0:monet=1", "-o", tmp_path / "o.mp4"], ["either"]),
        ([clip, *s, "--fps", "0", "-o", tmp_path / "o.mp4"], ["--fps"]),
    ]
    before = sorted(os.listdir(tmp_path))
    for argv, needles in cases:
        rc, _, err = run(["video", *argv, "--model", tmp_path / "no-model"], capsys)
        assert_one_line_error(rc, err, *needles)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no temp files


@pytest.mark.slow
@video_extra
def test_a_file_cut_short_is_stylised_with_a_warning_naming_the_frames_read(tiny_model_dir, styles, tmp_path, capsys):
    frames = [np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8) for i in range(30)]
    whole = _mp4(tmp_path / "whole.mkv", frames, fps=12)  # its header says 2.5 s (the audio track a little more)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])  # a copy stopped before the end
    rc, out, err = run(["video", cut, "-s", styles[0], "-o", tmp_path / "o.mp4", "--model", tiny_model_dir,
                        "--temporal", "none", "--no-audio"], capsys)
    assert rc == 0, err
    written = V.open_video(tmp_path / "o.mp4").info.frames
    assert 0 < written < 30 and f"{written} frames at 12 fps" in out
    with av.open(str(cut)) as c:
        declared = c.duration / 1e6  # what the header says: 2.5 s of video, the audio track a little more
    assert declared >= 2.5 and f"warning: {cut} holds {written} frames ({written / 12:.2f} s) of the " \
        f"{declared:.2f} s its header declares; it looks cut short" in err
    info = V.open_video(cut).info
    assert info.truncated and info.frames == written and info.declared == declared
    assert V.open_video(whole).info.frames == 30 and not V.open_video(whole).info.truncated
    rc, _, err = run(["video", whole, "-s", styles[0], "-o", tmp_path / "w.mp4", "--model", tiny_model_dir,
                      "--temporal", "none", "--max-frames", "2"], capsys)
    assert rc == 0 and "warning" not in err, err


@video_extra
def test_a_fifo_is_refused_not_waited_for(tmp_path, unblock_fifo):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    unblock_fifo(fifo)
    with pytest.raises(ValueError, match="clip.mp4 is not a regular file"):
        V.open_video(fifo)


_KILLED_AT_FRAME_3 = """
import os, signal, sys
from stylemix.inference.api import Stylizer
from stylemix.inference.cli import main
from stylemix.inference.images import load_image

real = Stylizer.stylize_video

def stylize_video(self, *args, **kwargs):  # `kill PID` while the third frame is written
    for i, frame in enumerate(real(self, *args, **kwargs)):
        if i == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        yield frame

Stylizer.stylize_video = stylize_video
sys.exit(main(sys.argv[1:]))
"""


@video_extra
@pytest.mark.parametrize("name", ["out.mp4", "frames"])
@pytest.mark.slow
def test_sigterm_cleans_up_as_ctrl_c_does(name, tiny_model_dir, clip, styles, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", _KILLED_AT_FRAME_3, "video", str(clip), "-s", str(styles[0]),
                           "-o", str(out / name), "--model", str(tiny_model_dir), "--temporal", "none"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "stylemix video: terminated (SIGTERM)"
    assert list(out.iterdir()) == []  # no output, no temporary file


def test_cli_without_the_extra_names_the_pip_command(styles, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    monkeypatch.setitem(sys.modules, "av", None)
    rc, _, err = run(["video", tmp_path / "clip.mp4", "-s", styles[0], "-o", tmp_path / "o.mp4"], capsys)
    assert_one_line_error(rc, err, "pip install 'stylemix[video]'")
    (tmp_path / "frames").mkdir()
    _png(tmp_path / "frames" / "1.png", 0)
    rc, _, err = run(["video", tmp_path / "frames", "-s", styles[0], "--temporal", "stats", "-o", tmp_path / "o.mp4"],
                     capsys)  # frames in need no extra, but an .mp4 out needs PyAV
    assert_one_line_error(rc, err, "writing .mp4 files needs the video extra", "pip install 'stylemix[video]'")
