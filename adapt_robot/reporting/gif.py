"""Animated GIFs and captioned frames (imageio and Pillow, imported when called).

Frames are ``(H, W, 3)`` or ``(H, W, 4)`` uint8 arrays, as the simulators' ``render`` returns
them. Nothing here needs a simulator: the deploy job writes its before/after GIF with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

LINE_PX = 12
"""Height of one caption line in pixels (Pillow's default font is 11 px high)."""


def write_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write ``frames`` as a looping GIF at ``fps`` frames per second; returns the path.

    Creates the parent directory. Raises ``ValueError`` for no frames or a rate that is not
    positive.
    """
    if not frames:
        raise ValueError(f"write_gif: no frames to write to {path}")
    if not fps > 0:
        raise ValueError(f"write_gif: fps must be > 0, got {fps}")
    import imageio.v2 as imageio

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(out, [np.asarray(f) for f in frames], duration=1000.0 / fps, loop=0)
    return out


def caption_frame(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """``frame`` (RGB of it) below a dark band holding ``lines``: the scene is not covered."""
    from PIL import Image, ImageDraw

    scene = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    band = 6 + LINE_PX * len(lines)
    img = Image.new("RGB", (scene.width, scene.height + band), (20, 20, 20))
    img.paste(scene, (0, band))
    draw = ImageDraw.Draw(img)
    for i, text in enumerate(lines):
        draw.text((4, 3 + LINE_PX * i), text, fill=(255, 255, 255))
    return np.asarray(img)
