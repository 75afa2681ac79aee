"""Video: stylise a clip frame by frame without flicker, with style weights keyframed over time.

One idea per module:

  keyframes.py  style weights over time: 'TIME:NAME=W[,NAME=W...]' specs and the per-frame schedule
  temporal.py   temporal stabilisation: running content statistics and optical-flow blending of the
                previous output (`TemporalConfig`, `TemporalPainter`)
  reading.py    clips in: video files (PyAV), animated GIF/WebP, folders of frames, iterables (`open_video`)
  writing.py    clips out, atomically, with the source's audio (`write_video`, `check_output`)
  formats.py    the suffixes each library handles and `require` for the optional `video` extra
  stylize.py    the whole clip: `stylize_video` (what `Stylizer.stylize_video` calls)

The public names are importable from here: `from stylemix.inference.video import stylize_video, write_video`.
"""
from .formats import ANIMATION_EXTENSIONS, PIP_VIDEO, VIDEO_EXTENSIONS, require
from .keyframes import Keyframe, keyframe_schedule, parse_keyframe, parse_time, style_names
from .reading import (FOLDER_FPS, MAX_DECODE_PIXELS, MAX_FRAME_PIXELS, VideoInfo, VideoLike, VideoSource,
                      capped_max_size, open_video)
from .stylize import stylize_video
from .temporal import TemporalConfig, TemporalPainter, VideoStylizer, gray8, optical_flow, reliable, warp
from .writing import check_output, output_kind, write_video

__all__ = ["ANIMATION_EXTENSIONS", "PIP_VIDEO", "VIDEO_EXTENSIONS", "require", "Keyframe", "keyframe_schedule",
           "parse_keyframe", "parse_time", "style_names", "FOLDER_FPS", "MAX_DECODE_PIXELS", "MAX_FRAME_PIXELS",
           "VideoInfo", "VideoLike", "VideoSource", "capped_max_size", "open_video", "stylize_video",
           "TemporalConfig", "TemporalPainter", "VideoStylizer", "gray8", "optical_flow", "reliable", "warp",
           "check_output", "output_kind", "write_video"]
