"""MP4 writing for free-view videos (``inference/render.py``).

Frames are encoded with the ffmpeg binary shipped by ``imageio-ffmpeg``
(H.264, yuv420p, 30 fps by default) into a temporary file next to the
destination, which is renamed over it only when encoding succeeded, so a video
is either complete or absent.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterable, Optional, Tuple, Union

import numpy as np

__all__ = ["write_mp4", "DEFAULT_FPS"]

DEFAULT_FPS = 30


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an ``H x W x 3`` frame by edge replication to even H and W (yuv420p needs it)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_mp4(path: Union[str, os.PathLike], frames: Iterable[np.ndarray], fps: float = DEFAULT_FPS,
              quality: float = 8.0, size: Optional[Tuple[int, int]] = None) -> int:
    """Encode ``frames`` as an H.264 mp4 at ``path``, atomically.

    Args:
        path: destination ``.mp4`` file; its folder is created.
        frames: iterable of ``H x W x 3`` uint8 RGB arrays (row 0 = top), all the
            same size. Odd sizes are edge-padded to even.
        fps: frames per second (30 as in the reference).
        quality: imageio-ffmpeg quality 0..10 (10 = best).
        size: ``(height, width)`` of the video (even numbers); frames of another size are
            resized by ffmpeg (bicubic). Default: the frames' own (padded) size.

    Returns:
        the number of frames written.

    Raises:
        ValueError: no frames, or a frame that is not ``H x W x 3`` uint8 / changes size, or an odd ``size``.
    """
    import imageio_ffmpeg

    path = os.fspath(path)
    if size is not None and (len(size) != 2 or any(int(n) < 2 or int(n) % 2 for n in size)):
        raise ValueError(f"{path}: video size {size} must be two even numbers >= 2 (yuv420p)")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp.mp4", dir=folder)
    os.close(fd)
    writer, count, frame_size = None, 0, None
    try:
        for frame in frames:
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"{path}: frames must be H x W x 3 uint8, got {frame.shape} {frame.dtype}")
            frame = np.ascontiguousarray(_even(frame))
            if writer is None:
                frame_size = frame.shape[:2]
                scale = []
                if size is not None and tuple(size) != frame_size:
                    scale = ["-vf", f"scale={int(size[1])}:{int(size[0])}:flags=bicubic"]
                writer = imageio_ffmpeg.write_frames(tmp, (frame_size[1], frame_size[0]), fps=fps,
                                                     codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                                                     quality=quality, macro_block_size=1, output_params=scale,
                                                     ffmpeg_log_level="error")
                writer.send(None)  # start ffmpeg
            elif frame.shape[:2] != frame_size:
                raise ValueError(f"{path}: frame {count} has size {frame.shape[:2]}, expected {frame_size}")
            writer.send(frame)
            count += 1
        if writer is None:
            raise ValueError(f"{path}: no frames to write")
        writer.close()
        writer = None
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return count
