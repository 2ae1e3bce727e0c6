"""GIFs and captions (adapt_robot.reporting.gif): written, read back, refused when empty."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from adapt_robot.reporting.gif import LINE_PX, caption_frame, write_gif


def test_gif_round_trip_keeps_frames_and_size(tmp_path: Path) -> None:
    frames = [np.full((8, 10, 3), v, dtype=np.uint8) for v in (0, 128, 255)]
    path = write_gif(frames, tmp_path / "sub" / "a.gif", fps=20.0)
    back = imageio.mimread(path, memtest=False)
    assert len(back) == 3 and back[0].shape[:2] == (8, 10)
    assert int(np.asarray(back[2])[..., :3].mean()) > 200 > int(np.asarray(back[0])[..., :3].mean())


def test_gif_refuses_no_frames_and_a_bad_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        write_gif([], tmp_path / "a.gif", fps=20.0)
    with pytest.raises(ValueError, match="fps must be > 0, got 0"):
        write_gif([np.zeros((2, 2, 3), np.uint8)], tmp_path / "a.gif", fps=0)


def test_caption_adds_a_band_above_and_keeps_the_scene() -> None:
    scene = np.full((20, 30, 4), 200, dtype=np.uint8)
    out = caption_frame(scene, ["before", "return 1.00"])
    band = 6 + 2 * LINE_PX
    assert out.shape == (20 + band, 30, 3)
    assert np.all(out[band:] == 200)
