"""
A cheap decodability check, so that broken videos are reported once and left out of a data set instead of
crashing a training run hours later in a DataLoader worker.

A video is usable when its container opens, it has a video stream and its first frame decodes. That catches empty,
garbage and missing files, downloads truncated before their index (the usual mp4 layout keeps it at the end), and
audio-only files, at the cost of one container probe and one frame, not a full decode. A file truncated *after* a
front index passes: the processor still decodes its first part. A missing audio track is not a problem: the model
handles silent clips.
"""

import io
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import av
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

VideoSource = str | os.PathLike | bytes


def find_video_problem(video: VideoSource) -> str | None:
    """Why `video` (a path or the bytes of a file) cannot be used, or `None` when it can."""
    try:
        container = av.open(io.BytesIO(video) if isinstance(video, bytes) else os.fspath(video))
    except FileNotFoundError:
        return "file not found"
    except (av.FFmpegError, OSError, ValueError) as error:
        return f"cannot be opened ({_reason(error)})"
    with container:
        if not container.streams.video:
            return "no video stream"
        try:
            first_frame = next(container.decode(video=0), None)
        except (av.FFmpegError, ValueError) as error:
            return f"first frame does not decode ({_reason(error)})"
    return None if first_frame is not None else "no decodable frame"


def find_undecodable_videos(
    paths: Sequence[str], num_workers: int | None = None, description: str = "Checking videos"
) -> dict[str, str]:
    """
    `{path: problem}` for every path that `find_video_problem` rejects.

    Files are probed in a thread pool: FFmpeg releases the GIL while it reads and decodes, and threads need no
    pickling. `num_workers` defaults to the number of CPUs.
    """
    num_workers = num_workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=num_workers) as executor:
        problems = list(
            tqdm(executor.map(find_video_problem, paths), total=len(paths), desc=description, unit="video")
        )
    return {path: problem for path, problem in zip(paths, problems) if problem is not None}


def report_skipped_videos(problems: Mapping[str, str], dataset_name: str) -> None:
    """One warning that lists every skipped video with its problem (nothing when there is none)."""
    if not problems:
        return
    listing = "\n".join(f"  {path}: {problem}" for path, problem in sorted(problems.items()))
    logger.warning("%s: skipping %d unusable video(s):\n%s", dataset_name, len(problems), listing)


def _reason(error: Exception) -> str:
    """FFmpeg's own words without the file name, which the report already shows."""
    return getattr(error, "strerror", None) or str(error)


__all__ = ["find_undecodable_videos", "find_video_problem", "report_skipped_videos"]
