"""Write generated samples to files: text, PNG grid, GIF, MIDI, ASCII.

Pillow (PNG/GIF) and mido (MIDI) are the optional ``media`` extra; they are imported only here,
only when such a file is written.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = "Pillow" if module.startswith("PIL") else module
        raise RuntimeError(f"writing this file needs {package}, in the runtime's media extra: "
                           f"pip install 'rlgen[media]' (or pip install {package})") from None


SHADES = " .:-=+*#%@"


def ascii_strip(images: np.ndarray, max_items: int = 6, step: int = 2) -> str:
    """Up to ``max_items`` uint8 images side by side as text (every ``step``-th pixel)."""
    rows = []
    picks = [img[::step, ::step] for img in images[:max_items]]
    for r in range(picks[0].shape[0]):
        rows.append("  ".join("".join(SHADES[int(v) * (len(SHADES) - 1) // 255] for v in p[r])
                              for p in picks).rstrip())
    return "\n".join(rows)


def image_grid(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """Tile (n, H, W) uint8 images into one near-square grid with a dark border."""
    n, h, w = images.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return grid


def write_png(path: Path, images: np.ndarray, scale: int = 3) -> None:
    image = _need("PIL.Image")
    grid = image_grid(images)
    image.fromarray(grid, mode="L").resize((grid.shape[1] * scale, grid.shape[0] * scale),
                                           image.NEAREST).save(path)


def write_gif(path: Path, frames: np.ndarray, scale: int = 3, ms_per_frame: int = 120) -> None:
    image = _need("PIL.Image")
    pics = [image.fromarray(f, mode="L").resize((f.shape[1] * scale, f.shape[0] * scale),
                                                image.NEAREST) for f in frames]
    pics[0].save(path, save_all=True, append_images=pics[1:], duration=ms_per_frame, loop=0)


def write_midi(path: Path, notes, ticks_per_step: int = 120, velocity: int = 80,
               meter: str | None = None, bpm: int = 100) -> None:
    """``notes``: ``(pitch or None for a rest, duration in steps)`` pairs (or bare pitches, one
    step each; None or a negative pitch is a rest). A step is ``ticks_per_step`` ticks of 480
    per quarter (120: a sixteenth). Each note sounds for its whole duration; rests are
    silent time before the next note."""
    mido = _need("mido")
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    if meter:
        num, den = (int(x) for x in meter.split("/"))
        track.append(mido.MetaMessage("time_signature", numerator=num, denominator=den, time=0))
    rest = 0
    for item in notes:
        p, steps = item if isinstance(item, (tuple, list)) else (item, 1)
        ticks = int(steps) * ticks_per_step
        if p is None or p < 0:   # a rest
            rest += ticks
            continue
        track.append(mido.Message("note_on", note=int(p), velocity=velocity, time=rest))
        track.append(mido.Message("note_off", note=int(p), velocity=0, time=ticks))
        rest = 0
    if rest:                     # a trailing rest still takes its time
        track.append(mido.MetaMessage("end_of_track", time=rest))
    mid.save(str(path))


LEVEL_COLOURS = {"#": (40, 40, 48), ".": (225, 220, 205), "S": (60, 170, 75),
                 "G": (55, 110, 210), "^": (215, 70, 50), "$": (235, 185, 40)}


def write_level_png(path: Path, rows: list[str], tile: int = 12) -> None:
    """A level's tiles drawn: walls dark, floor light, S green, G blue, hazards as red
    triangles and treasure as gold diamonds on floor (unknown tiles drawn as floor)."""
    image = _need("PIL.Image")
    draw_mod = _need("PIL.ImageDraw")
    h, w = len(rows), max(len(r) for r in rows)
    pic = image.new("RGB", (w * tile, h * tile), LEVEL_COLOURS["#"])
    draw = draw_mod.Draw(pic)
    floor = LEVEL_COLOURS["."]
    for y, row in enumerate(rows):
        for x, ch in enumerate(row):
            x0, y0 = x * tile, y * tile
            box = (x0, y0, x0 + tile - 1, y0 + tile - 1)
            if ch == "#":
                continue
            if ch in "SG":
                draw.rectangle(box, fill=LEVEL_COLOURS[ch])
                continue
            draw.rectangle(box, fill=floor)
            q = tile // 4
            if ch == "^":
                draw.polygon([(x0 + tile // 2, y0 + q), (x0 + tile - q, y0 + tile - q),
                              (x0 + q, y0 + tile - q)], fill=LEVEL_COLOURS["^"])
            elif ch == "$":
                c = tile // 2
                draw.polygon([(x0 + c, y0 + q), (x0 + tile - q, y0 + c), (x0 + c, y0 + tile - q),
                              (x0 + q, y0 + c)], fill=LEVEL_COLOURS["$"])
    pic.save(path)
