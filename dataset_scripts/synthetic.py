"""
A generated audio-visual emotion data set whose label needs BOTH modalities: real mp4 files (H.264 + AAC) written
with PyAV, small and fast enough to train AV-CANet on a CPU in minutes.

Every clip carries two cues:

- visual: the hue of the whole frame, "warm" (red-dominant) or "cool" (blue-dominant), under a moving square and a
  random brightness that carry no label information (hue survives crops, flips, rotations and brightness changes);
- audio: a steady tone, "high" (1760 Hz) or "low" (440 Hz), with a random phase.

The label is the cue pair (valence from the picture, arousal from the sound):

    | visual \\ audio | high             | low               |
    |----------------|------------------|-------------------|
    | warm           | Joy (positive)   | Calm (neutral)    |
    | cool           | Tension (neg.)   | Sadness (neg.)    |

Each cue alone narrows four balanced classes down to two, so no visual-only or audio-only classifier can beat 50 %,
while both together identify the class: a working fusion model reaches 100 %. `modality_ceilings` computes these
limits from the same label distribution the generator samples from, including its `label_noise`.

Files are written as `<output_dir>/<split>/<label>/<split>_<index>.mp4` (also a valid `videofolder` tree) and the
clips are planned per split with a seed of their own, so a given seed always gives the same files.

Command line: `python -m dataset_scripts.synthetic --output DIR [--video_dir DIR] [--train_per_class 16 ...]`.
"""

import argparse
import os
import tempfile
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from datasets import DatasetDict
from tqdm.auto import tqdm

from .common import build_dataset_dict, finish_cli

LABEL_POLARITIES = {"Joy": "positive", "Calm": "neutral", "Tension": "negative", "Sadness": "negative"}
LABEL_NAMES = list(LABEL_POLARITIES)
VISUAL_CUES = ("warm", "cool")
AUDIO_CUES = ("high", "low")
CUE_LABELS = {
    ("warm", "high"): "Joy",
    ("warm", "low"): "Calm",
    ("cool", "high"): "Tension",
    ("cool", "low"): "Sadness",
}
HUE_DIRECTIONS = {"warm": np.array([1.0, 0.0, -1.0]), "cool": np.array([-1.0, 0.0, 1.0])}  # RGB shift from grey
TONE_FREQUENCIES_HZ = {"high": 1760.0, "low": 440.0}
AAC_FRAME_SIZE = 1024
SPLITS = ("train", "validation", "test")
DEFAULT_VIDEOS_PER_CLASS = {"train": 16, "validation": 4, "test": 8}


@dataclass(frozen=True)
class SyntheticClip:
    """One planned video: its cues, its (possibly noisy) label and whether its file gets an audio track."""

    split: str
    index: int
    visual_cue: str
    audio_cue: str
    label: str
    has_audio: bool

    @property
    def relative_path(self) -> Path:
        return Path(self.split, self.label, f"{self.split}_{self.index:05d}.mp4")


def label_distribution(visual_cue: str, audio_cue: str, label_noise: float = 0.0) -> np.ndarray:
    """
    `P(label | visual cue, audio cue)` in `LABEL_NAMES` order: the label of the cue pair, replaced by a uniformly
    drawn other label with probability `label_noise`. The generator samples labels from it and `modality_ceilings`
    marginalises it, so the ceilings hold for the generated data by construction.
    """
    probabilities = np.full(len(LABEL_NAMES), label_noise / (len(LABEL_NAMES) - 1))
    probabilities[LABEL_NAMES.index(CUE_LABELS[visual_cue, audio_cue])] = 1.0 - label_noise
    return probabilities


def joint_distribution(label_noise: float = 0.0) -> np.ndarray:
    """`P(visual cue, audio cue, label)`, `(len(VISUAL_CUES), len(AUDIO_CUES), len(LABEL_NAMES))`: every cue pair is
    equally frequent, as `plan_clips` makes them."""
    return np.stack(
        [np.stack([label_distribution(visual, audio, label_noise) for audio in AUDIO_CUES]) for visual in VISUAL_CUES]
    ) / (len(VISUAL_CUES) * len(AUDIO_CUES))


def modality_ceilings(label_noise: float = 0.0, missing_audio_fraction: float = 0.0) -> dict[str, float]:
    """
    The highest expected accuracy of any classifier that sees only the visual cue, only the audio cue, or both
    ("fused"), and of always predicting the most frequent label ("chance"): for every value of what it sees, the
    best classifier predicts the most likely label (Bayes accuracy). A clip without audio gives an audio classifier
    nothing and a fused one only the visual cue.

    Without label noise or silent clips: visual 0.5, audio 0.5, fused 1.0, chance 0.25.
    """
    joint = joint_distribution(label_noise)
    chance = joint.sum(axis=(0, 1)).max()
    visual = joint.sum(axis=1).max(axis=-1).sum()
    audio = joint.sum(axis=0).max(axis=-1).sum()
    both = joint.max(axis=-1).sum()
    silent = missing_audio_fraction
    return {
        "visual": float(visual),
        "audio": float((1 - silent) * audio + silent * chance),
        "fused": float((1 - silent) * both + silent * visual),
        "chance": float(chance),
    }


def plan_clips(
    videos_per_class: Mapping[str, int] | None = None,
    label_noise: float = 0.0,
    missing_audio_fraction: float = 0.0,
    seed: int = 0,
) -> list[SyntheticClip]:
    """
    The clips of every split: `videos_per_class[split]` clips of each cue pair, interleaved, with labels drawn from
    `label_distribution` and `round(missing_audio_fraction * n)` clips of the split chosen at random to be silent.
    Each split has its own random stream, so changing the size of one split leaves the others unchanged.
    """
    videos_per_class = dict(DEFAULT_VIDEOS_PER_CLASS if videos_per_class is None else videos_per_class)
    unknown = sorted(set(videos_per_class) - set(SPLITS))
    if unknown:
        raise ValueError(f"Unknown split(s) {unknown}; the synthetic set has {SPLITS}.")
    if not 0.0 <= label_noise < 1.0 or not 0.0 <= missing_audio_fraction <= 1.0:
        raise ValueError("label_noise must be in [0, 1) and missing_audio_fraction in [0, 1].")
    cue_pairs = list(CUE_LABELS)
    clips = []
    for split_number, split in enumerate(SPLITS):
        num_clips = videos_per_class.get(split, 0) * len(cue_pairs)
        rng = np.random.default_rng([seed, split_number])
        silent = set(rng.choice(num_clips, size=round(missing_audio_fraction * num_clips), replace=False).tolist())
        for index in range(num_clips):
            visual_cue, audio_cue = cue_pairs[index % len(cue_pairs)]
            label_id = rng.choice(len(LABEL_NAMES), p=label_distribution(visual_cue, audio_cue, label_noise))
            clips.append(
                SyntheticClip(split, index, visual_cue, audio_cue, LABEL_NAMES[label_id], index not in silent)
            )
    return clips


def render_frames(
    visual_cue: str, rng: np.random.Generator, num_frames: int, size: int, difficulty: float
) -> np.ndarray:
    """`(num_frames, size, size, 3)` uint8 frames: a hue-tinted background with a bouncing square; `difficulty`
    fades the tint towards grey and adds pixel noise."""
    contrast = 90.0 * (1.0 - 0.8 * difficulty)
    background = 128.0 + contrast * HUE_DIRECTIONS[visual_cue] + rng.uniform(-20.0, 20.0)
    frames = np.empty((num_frames, size, size, 3))
    frames[:] = background
    side = max(size // 4, 2)
    travel = size - side
    start = rng.uniform(0, travel, size=2)
    velocity = rng.uniform(-2.0, 2.0, size=2) * travel / num_frames
    square_level = rng.choice([0.0, 255.0])
    for step, frame in enumerate(frames):
        y, x = (travel - np.abs((start + velocity * step) % (2 * travel) - travel)).astype(int)  # bounce off the edges
        frame[y : y + side, x : x + side] = square_level
    if difficulty > 0:
        frames += rng.normal(0.0, 40.0 * difficulty, frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


def render_audio(
    audio_cue: str, rng: np.random.Generator, num_samples: int, sample_rate: int, difficulty: float
) -> np.ndarray:
    """`(num_samples,)` float32 mono: a tone at the cue's frequency; `difficulty` lowers it and adds white noise."""
    time = np.arange(num_samples) / sample_rate
    amplitude = 0.5 * (1.0 - 0.8 * difficulty)
    signal = amplitude * np.sin(2 * np.pi * TONE_FREQUENCIES_HZ[audio_cue] * time + rng.uniform(0, 2 * np.pi))
    if difficulty > 0:
        signal += rng.normal(0.0, 0.3 * difficulty, num_samples)
    return np.clip(signal, -1.0, 1.0).astype(np.float32)


def write_mp4(path: Path, frames: np.ndarray, fps: int, audio: np.ndarray | None, sample_rate: int) -> None:
    """H.264 video (+ AAC mono audio when given). One encoder thread: x264 output is then byte-identical run to run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.height, video.width = frames.shape[1:3]
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "18", "threads": "1"}
        sound = container.add_stream("aac", rate=sample_rate, layout="mono") if audio is not None else None
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
        if sound is None:
            return
        for start in range(0, len(audio), AAC_FRAME_SIZE):
            frame = av.AudioFrame.from_ndarray(
                audio[None, start : start + AAC_FRAME_SIZE], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = sample_rate, start
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))


def generate_synthetic(
    output_dir: str | os.PathLike,
    videos_per_class: Mapping[str, int] | None = None,
    num_frames: int = 16,
    fps: int = 8,
    size: int = 64,
    sample_rate: int = 16000,
    difficulty: float = 0.0,
    label_noise: float = 0.0,
    missing_audio_fraction: float = 0.0,
    seed: int = 0,
) -> DatasetDict:
    """
    Write the synthetic set under `output_dir` and return it with splits `"train"`, `"validation"` and `"test"`
    (those with videos).

    Args:
        output_dir: receives `<split>/<label>/<split>_<index>.mp4`; existing files of the same names are replaced.
        videos_per_class: videos of each class (cue pair) per split; defaults to `DEFAULT_VIDEOS_PER_CLASS`
            (16 / 4 / 8, i.e. 64 / 16 / 32 videos).
        num_frames, fps: length of every clip (default 16 frames at 8 fps: 2 s).
        size: side of the square frames: even (H.264 halves the chroma resolution) and at least 8.
        sample_rate: of the AAC track.
        difficulty: 0 gives loud, clean cues; towards 1 the hue fades to grey under pixel noise and the tone sinks
            into white noise. It makes the cues harder to learn, not the ceilings lower.
        label_noise: probability that a clip's label is another class than its cues say; lowers every ceiling
            (`modality_ceilings`).
        missing_audio_fraction: fraction of the clips of each split written without an audio track, to exercise
            the model's missing-audio path.
        seed: the same seed gives the same files.
    """
    if size % 2 or size < 8:
        raise ValueError(f"size must be even (H.264 with 4:2:0 chroma) and at least 8, got {size}.")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}.")
    clips = plan_clips(videos_per_class, label_noise, missing_audio_fraction, seed)
    output_dir = Path(output_dir).resolve()
    num_samples = round(num_frames / fps * sample_rate)
    splits = {}
    for clip in tqdm(clips, desc="Generating synthetic videos", unit="video"):
        rng = np.random.default_rng([seed, SPLITS.index(clip.split), clip.index, 1])
        frames = render_frames(clip.visual_cue, rng, num_frames, size, difficulty)
        audio = render_audio(clip.audio_cue, rng, num_samples, sample_rate, difficulty) if clip.has_audio else None
        path = output_dir / clip.relative_path
        write_mp4(path, frames, fps, audio, sample_rate)
        splits.setdefault(clip.split, []).append((str(path), clip.label))
    return build_dataset_dict(splits, LABEL_NAMES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the synthetic audio-visual emotion set (H.264 + AAC mp4).")
    parser.add_argument(
        "--output", help="save the DatasetDict here, videos included (save_to_disk + label_polarities.json)"
    )
    parser.add_argument("--video_dir", help="keep the mp4 files here (without it they only live in --output)")
    for split in SPLITS:
        parser.add_argument(f"--{split}_per_class", type=int, default=DEFAULT_VIDEOS_PER_CLASS[split])
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--sample_rate", type=int, default=16000)
    parser.add_argument("--difficulty", type=float, default=0.0, help="0 (clean cues) to 1 (faint cues in noise)")
    parser.add_argument("--label_noise", type=float, default=0.0, help="probability of a label the cues do not give")
    parser.add_argument("--missing_audio_fraction", type=float, default=0.0, help="fraction of clips without audio")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.output is None and args.video_dir is None:
        parser.error("give --output (to save the data set) and/or --video_dir (to keep the mp4 files)")
    # `save_to_disk` copies the videos into the saved data set, so without --video_dir the files are temporary
    with nullcontext(args.video_dir) if args.video_dir else tempfile.TemporaryDirectory() as video_dir:
        dataset = generate_synthetic(
            video_dir,
            videos_per_class={split: getattr(args, f"{split}_per_class") for split in SPLITS},
            num_frames=args.num_frames,
            fps=args.fps,
            size=args.size,
            sample_rate=args.sample_rate,
            difficulty=args.difficulty,
            label_noise=args.label_noise,
            missing_audio_fraction=args.missing_audio_fraction,
            seed=args.seed,
        )
        finish_cli(dataset, LABEL_POLARITIES, args.output)
    ceilings = modality_ceilings(args.label_noise, args.missing_audio_fraction)
    print("Best achievable accuracy: " + ", ".join(f"{name} {value:.3f}" for name, value in ceilings.items()))


if __name__ == "__main__":
    main()
