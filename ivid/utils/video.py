"""MP4 writing for free-view videos (``inference/render.py``).

Frames are piped to the ffmpeg binary shipped by ``imageio-ffmpeg`` (H.264,
yuv420p, 30 fps by default) which encodes into a temporary file next to the
destination. Only when ffmpeg exits with status 0 and wrote a non-empty file is
it renamed over the destination, so a video is either complete or absent, and
an existing video is never replaced by a failed encode. A failed encode raises
:class:`VideoEncodeError` naming the file and ffmpeg's own reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from fractions import Fraction
from typing import Iterable, List, Optional, Tuple, Union

import numpy as np

from ivid.errors import IvidError

from .io import temp_path

__all__ = ["write_mp4", "encode_mp4", "VideoEncodeError", "DEFAULT_FPS", "MAX_VIDEO_SIZE"]

DEFAULT_FPS = 30
#: largest video side accepted (x264 rejects pictures whose area exceeds ~16k x 16k; players struggle far earlier)
MAX_VIDEO_SIZE = 8192


class VideoEncodeError(IvidError, RuntimeError):
    """The video encoder failed; the message names the video and the encoder's reason."""


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an ``H x W x 3`` frame by edge replication to even H and W (yuv420p needs it)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _ffmpeg_command(out: str, width: int, height: int, fps: float, quality: float,
                    size: Optional[Tuple[int, int]]) -> List[str]:
    import imageio_ffmpeg

    crf = int((1.0 - float(quality) / 10.0) * 51)  # imageio-ffmpeg's quality -> x264 crf (8 -> 10)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-f", "rawvideo", "-vcodec", "rawvideo",
           "-s", f"{width}x{height}", "-pix_fmt", "rgb24", "-r", str(Fraction(fps).limit_denominator()),
           "-i", "-", "-an", "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), "-v", "error"]
    if size is not None and (int(size[0]), int(size[1])) != (height, width):
        cmd += ["-vf", f"scale={int(size[1])}:{int(size[0])}:flags=bicubic"]
    return cmd + ["-f", "mp4", out]


def _encoder_reason(log: str) -> str:
    """The most telling line of ffmpeg's error output, without its ``[codec @ 0x...]`` prefixes."""
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip() for line in log.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return "no message"
    for line in lines:  # the first line usually states the cause; later ones are consequences
        if "invalid" in line.lower() or "error" in line.lower() or "cannot" in line.lower():
            return line
    return lines[0]


def encode_mp4(out: str, frames: Iterable[np.ndarray], fps: float = DEFAULT_FPS, quality: float = 8.0,
               size: Optional[Tuple[int, int]] = None, name: Optional[str] = None) -> int:
    """Encode ``frames`` into the file ``out`` (overwritten; NOT atomic - see :func:`write_mp4`).

    Args:
        out: the file ffmpeg writes.
        name: the video's name in error messages (default ``out``).
        frames, fps, quality, size: see :func:`write_mp4`.

    Returns:
        the number of frames encoded.

    Raises:
        ValueError: bad frames (see :func:`write_mp4`).
        VideoEncodeError: ffmpeg failed or wrote nothing.
    """
    name = name or out
    proc, count, frame_size = None, 0, None
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: ffmpeg can never block on a full stderr pipe
        try:
            for frame in frames:
                frame = np.asarray(frame)
                if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                    raise ValueError(f"{name}: frames must be H x W x 3 uint8, got {frame.shape} {frame.dtype}")
                frame = np.ascontiguousarray(_even(frame))
                if proc is None:
                    frame_size = frame.shape[:2]
                    cmd = _ffmpeg_command(out, frame_size[1], frame_size[0], fps, quality, size)
                    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
                elif frame.shape[:2] != frame_size:
                    raise ValueError(f"{name}: frame {count} has size {frame.shape[:2]}, expected {frame_size}")
                try:
                    proc.stdin.write(frame.tobytes())
                except (BrokenPipeError, ValueError):  # ffmpeg gave up; its status and log say why
                    break
                count += 1
            if proc is None:
                raise ValueError(f"{name}: no frames to write")
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            status = proc.wait()
        except BaseException:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        log.seek(0)
        reason = _encoder_reason(log.read().decode("utf-8", "replace"))
    if status != 0:
        raise VideoEncodeError(f"{name}: the video encoder (ffmpeg) failed with exit status {status}: {reason}")
    if not os.path.isfile(out) or os.path.getsize(out) == 0:
        raise VideoEncodeError(f"{name}: the video encoder (ffmpeg) wrote no video: {reason}")
    return count


def write_mp4(path: Union[str, os.PathLike], frames: Iterable[np.ndarray], fps: float = DEFAULT_FPS,
              quality: float = 8.0, size: Optional[Tuple[int, int]] = None) -> int:
    """Encode ``frames`` as an H.264 mp4 at ``path``, atomically.

    Args:
        path: destination ``.mp4`` file; its folder is created.
        frames: iterable of ``H x W x 3`` uint8 RGB arrays (row 0 = top), all the
            same size. Odd sizes are edge-padded to even.
        fps: frames per second (30 as in the reference).
        quality: imageio-ffmpeg quality 0..10 (10 = best; 8 = x264 crf 10).
        size: ``(height, width)`` of the video (even numbers); frames of another size are
            resized by ffmpeg (bicubic). Default: the frames' own (padded) size.

    Returns:
        the number of frames written.

    Raises:
        ValueError: no frames, or a frame that is not ``H x W x 3`` uint8 / changes size, or an odd ``size``.
        VideoEncodeError: the encoder failed (``path`` is left as it was).
    """
    path = os.fspath(path)
    if size is not None and (len(size) != 2 or any(int(n) < 2 or int(n) % 2 or int(n) > MAX_VIDEO_SIZE
                                                    for n in size)):
        raise ValueError(f"{path}: video size {size} must be two even numbers in [2, {MAX_VIDEO_SIZE}] (yuv420p)")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temp_path(path, suffix=".mp4")
    try:
        count = encode_mp4(tmp, frames, fps, quality, size, name=path)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    return count
