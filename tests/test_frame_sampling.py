"""The temporal sampler: which frames each segment takes and where its audio window lies (no media needed)."""

import pytest
import torch

from processing.frame_sampling import (
    audio_window_starts,
    looped_windows,
    sample_segment_frame_indices,
    sample_segment_positions,
    segment_window_centers,
    windows_within_clip,
)


def test_eval_takes_the_centre_window_of_each_segment():
    # 300 frames, 16 segments of 300 // 16 = 18 frames, window of 8 starting (18 - 8) // 2 = 5 frames in
    indices = sample_segment_frame_indices(300, 16, 8, training=False)
    expected = torch.stack([torch.arange(8) + 18 * segment + 5 for segment in range(16)])
    assert torch.equal(indices, expected)


def test_eval_is_deterministic_and_ignores_the_generator():
    first = sample_segment_frame_indices(1000, 16, 8, generator=torch.Generator().manual_seed(1))
    second = sample_segment_frame_indices(1000, 16, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, second)


def test_short_video_is_loop_padded():
    # 50 frames loop-pad to 128 positions: segment s holds positions 8s..8s+7, showing frames p % 50
    positions = sample_segment_positions(50, 16, 8)
    assert torch.equal(positions, torch.arange(128).view(16, 8))
    indices = sample_segment_frame_indices(50, 16, 8)
    assert indices[6].tolist() == [48, 49, 0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("num_frames", [1, 2, 7])
def test_a_few_frames_still_fill_every_segment(num_frames):
    indices = sample_segment_frame_indices(num_frames, 16, 8, training=True)
    assert indices.shape == (16, 8)
    assert int(indices.min()) >= 0 and int(indices.max()) < num_frames


def test_training_draws_every_valid_start_including_the_last():
    # segments of 10 frames, windows of 8: starts 0, 1 and 2 are valid (the release never draws 2)
    generator = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(200):
        positions = sample_segment_positions(160, 16, 8, training=True, generator=generator)
        starts.update((positions[:, 0] - torch.arange(16) * 10).tolist())
    assert starts == {0, 1, 2}


def test_training_windows_are_contiguous_and_inside_their_segment():
    generator = torch.Generator().manual_seed(3)
    for num_frames in (128, 129, 200, 1001, 5000):
        positions = sample_segment_positions(num_frames, 16, 8, training=True, generator=generator)
        segment_length = num_frames // 16
        assert torch.all(positions.diff(dim=1) == 1)
        segment = torch.arange(16)[:, None]
        assert torch.all(positions >= segment * segment_length)
        assert torch.all(positions < (segment + 1) * segment_length)


def test_training_randomness_follows_the_generator_or_the_global_rng():
    def draw(generator=None):
        return sample_segment_frame_indices(10_000, 16, 8, training=True, generator=generator)

    assert torch.equal(draw(torch.Generator().manual_seed(5)), draw(torch.Generator().manual_seed(5)))
    assert not torch.equal(draw(torch.Generator().manual_seed(5)), draw(torch.Generator().manual_seed(6)))
    torch.manual_seed(7)
    first = draw()
    torch.manual_seed(7)
    assert torch.equal(first, draw())
    assert not torch.equal(first, draw())


def test_zero_frames_is_an_error():
    with pytest.raises(ValueError, match="at least one frame"):
        sample_segment_positions(0, 16, 8)


def test_window_centre_is_the_middle_of_its_frames():
    positions = torch.tensor([[10, 11, 12, 13]])
    timestamps = positions.double() / 25  # 25 fps
    durations = torch.full_like(timestamps, 1 / 25)
    centers = segment_window_centers(positions, timestamps, durations, num_frames=100, clip_duration=4.0)
    assert centers.tolist() == pytest.approx([(10 / 25 + 14 / 25) / 2])


def test_window_that_wraps_continues_on_the_next_loop():
    # frames 48, 49, 0, 1 of a 50-frame clip at 10 fps (5 s): the window runs from 4.8 s to 5.2 s of the looped clip
    positions = torch.tensor([[48, 49, 50, 51]])
    timestamps = (positions % 50).double() / 10
    durations = torch.full_like(timestamps, 0.1)
    centers = segment_window_centers(positions, timestamps, durations, num_frames=50, clip_duration=5.0)
    assert centers.tolist() == pytest.approx([5.0])


def test_audio_windows_are_centred_and_kept_inside_a_clip_that_is_not_looped():
    centers = torch.tensor([0.1, 5.0, 9.95], dtype=torch.float64)
    starts = audio_window_starts(centers, window_duration=0.64, clip_duration=10.0)
    assert starts.tolist() == pytest.approx([0.0, 5.0 - 0.32, 10.0 - 0.64])
    assert windows_within_clip(starts, 0.64, 10.0)


def test_audio_windows_of_a_looped_clip_run_over_the_loop():
    # a 2 s clip looped to ~4.3 s of frames: a window centred at 3.0 s lies in the second copy
    starts = audio_window_starts(torch.tensor([0.2, 3.0, 4.2], dtype=torch.float64), 0.64, 2.0)
    assert starts.tolist() == pytest.approx([0.0, 3.0 - 0.32, 4.2 - 0.32])
    assert not windows_within_clip(starts, 0.64, 2.0)


def test_looped_windows_wrap_around_the_signal():
    signal = torch.arange(10.0)
    windows = looped_windows(signal, torch.tensor([0, 8, 25]), length=4)
    assert windows.tolist() == [[0, 1, 2, 3], [8, 9, 0, 1], [5, 6, 7, 8]]
    assert torch.equal(looped_windows(torch.zeros(0), torch.tensor([3]), 5), torch.zeros(1, 5))
