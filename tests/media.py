"""Generated test media: small H.264 + AAC files whose frames carry their own index.

Every frame can burn its index into its pixels as horizontal bands, top to bottom:
a white marker band, `INDEX_BITS` bands holding the index in binary (most significant bit first, white = 1),
and a black marker band. Flat bands survive H.264, chroma subsampling, resizing, a centre or corner crop of a
landscape frame (which keeps the full height) and brightness changes, so a test can read back which frame of the
file ended up where (`read_frame_index`). The two marker bands make an upside-down or sideways frame unreadable,
which is how the rotation test tells an upright frame from a rotated one.

The audio track is silence, optionally followed by a sine tone from `tone_start_s` on, so a test can check in which
audio segment the tone appears.
"""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

INDEX_BITS = 10  # frame indices 0..1023
NUM_BANDS = INDEX_BITS + 2
TONE_HZ = 1000.0


def frame_pattern(index: int, height: int, width: int) -> np.ndarray:
    """The upright (height, width, 3) uint8 frame that carries `index` as horizontal bands."""
    if not 0 <= index < 2**INDEX_BITS:
        raise ValueError(f"frame index {index} does not fit in {INDEX_BITS} bits")
    bits = [1] + [(index >> bit) & 1 for bit in reversed(range(INDEX_BITS))] + [0]
    band_of_row = np.arange(height) * NUM_BANDS // height  # (H,)
    levels = np.where(np.array(bits)[band_of_row] == 1, 235, 20).astype(np.uint8)  # (H,)
    return np.repeat(np.repeat(levels[:, None, None], width, axis=1), 3, axis=2)


def read_frame_index(frame: np.ndarray) -> int:
    """Read the index burned by `frame_pattern` from an upright frame ((H, W, C) or (C, H, W), any value range).

    Raises `ValueError` when the marker bands are not where an upright frame has them.
    """
    frame = np.asarray(frame, dtype=np.float64)
    if frame.ndim == 3 and frame.shape[0] in (1, 3) and frame.shape[-1] not in (1, 3):
        frame = frame.transpose(1, 2, 0)
    gray = frame.mean(axis=2)  # (H, W)
    height, width = gray.shape
    columns = slice(width // 4, width - width // 4)  # the middle, away from rotated or cropped edges
    centres = ((np.arange(NUM_BANDS) + 0.5) * height / NUM_BANDS).astype(int)
    values = np.array([gray[max(row - 1, 0) : row + 2, columns].mean() for row in centres])
    low, high = values[-1], values[0]
    if high - low < 0.2 * (np.ptp(gray) + 1e-9) or high <= low:
        raise ValueError("frame is not upright: marker bands not found")
    bits = values[1:-1] > (low + high) / 2
    return int(sum(int(bit) << shift for shift, bit in zip(reversed(range(INDEX_BITS)), bits)))


def tone(num_samples: int, sample_rate: int, start_s: float | None) -> np.ndarray:
    """(num_samples,) float32: silence, then a sine at `TONE_HZ` from `start_s` on (all silence when None)."""
    t = np.arange(num_samples) / sample_rate
    signal = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    if start_s is None:
        return np.zeros(num_samples, dtype=np.float32)
    return np.where(t >= start_s, signal, 0.0).astype(np.float32)


def make_video(
    path,
    num_frames: int = 48,
    fps: int = 24,
    width: int = 64,
    height: int = 48,
    with_audio: bool = True,
    tone_start_s: float | None = None,
    audio_rate: int = 44100,
    audio_channels: int = 2,
    pix_fmt: str = "yuv420p",
    burn_frame_index: bool = True,
    display_rotation: int = 0,
    frame_durations: list[int] | None = None,
    faststart: bool = False,
    seed: int = 0,
) -> Path:
    """Write an H.264 (+ AAC) mp4 and return its path.

    width, height: the upright size, as a player shows it.
    display_rotation: degrees (a multiple of 90) written as display-matrix side data; the frames are stored rotated
        the other way, so a player that honours the metadata shows the upright pattern.
    frame_durations: per-frame durations in ticks of 1/(fps * 4) s, for a variable frame rate file (cycled).
    burn_frame_index: frames carry `frame_pattern(index)`; otherwise they are seeded noise (for size tests).
    faststart: put the index (moov) at the front of the file, as phones and web encoders do.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        stored_width, stored_height = (height, width) if display_rotation % 180 else (width, height)
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = stored_width, stored_height, pix_fmt
        video.options = {"crf": "12", "preset": "ultrafast", "bf": "0"}
        ticks = None
        if frame_durations is not None:
            video.codec_context.time_base = Fraction(1, fps * 4)
            durations = [frame_durations[i % len(frame_durations)] for i in range(num_frames)]
            ticks = np.concatenate([[0], np.cumsum(durations)])
        if display_rotation:
            video.set_display_rotation(display_rotation)
        audio = None
        if with_audio:
            layout = "stereo" if audio_channels == 2 else "mono"
            audio = container.add_stream("aac", rate=audio_rate, layout=layout)

        for index in range(num_frames):
            if burn_frame_index:
                upright = frame_pattern(index, height, width)
            else:
                upright = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            # the player rotates counter-clockwise by display_rotation: store the frame rotated clockwise
            stored = np.ascontiguousarray(np.rot90(upright, k=-(display_rotation // 90)))
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            if ticks is not None:
                frame.pts = int(ticks[index])
                frame.time_base = Fraction(1, fps * 4)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)

        if audio is not None:
            duration_s = (ticks[-1] / (fps * 4)) if ticks is not None else num_frames / fps
            samples = tone(int(round(duration_s * audio_rate)), audio_rate, tone_start_s)
            block = 1024
            for start in range(0, len(samples), block):
                chunk = samples[start : start + block]
                planes = np.repeat(chunk[None, :], audio_channels, axis=0)  # (channels, n) planar
                frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=audio.layout.name)
                frame.sample_rate = audio_rate
                frame.pts = start
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


def make_audio_only(path, duration_s: float = 1.0, audio_rate: int = 44100) -> Path:
    """An mp4 with an AAC track and no video stream."""
    path = Path(path)
    with av.open(str(path), mode="w", format="mp4") as container:
        audio = container.add_stream("aac", rate=audio_rate, layout="mono")
        samples = tone(int(duration_s * audio_rate), audio_rate, 0.0)
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = audio_rate, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def truncate(path, fraction: float, out_path) -> Path:
    """Copy the first `fraction` of the bytes of `path` to `out_path` (a download cut short)."""
    data = Path(path).read_bytes()
    out_path = Path(out_path)
    out_path.write_bytes(data[: int(len(data) * fraction)])
    return out_path
