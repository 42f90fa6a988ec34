"""Data set builders: eMotions, VideoEmotion-8, Ekman-6, video folders and a synthetic audio-visual set."""
