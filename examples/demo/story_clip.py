"""Write a 4 s clip of the synthetic set's kind whose cues change every second, so its emotion timeline moves:
warm picture + high tone (Joy), then the tone drops (Calm), then the picture turns cool (Sadness), then the tone
rises again (Tension). The README's timeline plot and screenshot show the demo model on it.

    python examples/demo/story_clip.py outputs/story.mp4
"""

import sys
from pathlib import Path

import numpy as np

from dataset_scripts.synthetic import render_audio, render_frames, write_mp4

PARTS = [("warm", "high"), ("warm", "low"), ("cool", "low"), ("cool", "high")]  # (picture, sound) per second


def write_story_clip(path, fps: int = 8, size: int = 64, sample_rate: int = 16000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    frames = np.concatenate([render_frames(picture, rng, fps, size, 0.0) for picture, _ in PARTS])
    audio = np.concatenate([render_audio(sound, rng, sample_rate, sample_rate, 0.0) for _, sound in PARTS])
    write_mp4(Path(path), frames, fps, audio, sample_rate)
    return Path(path)


if __name__ == "__main__":
    print(write_story_clip(sys.argv[1] if len(sys.argv) > 1 else "story.mp4"))
