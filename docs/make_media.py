"""Make the README's pictures of the demo avatar: a still (PNG) and a turn-and-expression clip (GIF).

    .venv/bin/python docs/make_media.py [--size 192]     (the project installed, e.g. by `make setup`)

Writes docs/media/demo_still.png and docs/media/demo_tour.gif (the demo avatar is built on first use).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from realtime.app.library import resolve_avatar
from realtime.deform.reference import deform
from realtime.render import render
from realtime.rig.model import RigParams

ROOT = Path(__file__).resolve().parents[1]


def _bump(n: int) -> np.ndarray:
    """n values rising from 0 to 1 and back (raised cosine)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def tour(rig) -> list[dict]:
    """Frames as dicts of rotation (pitch, yaw, roll, radians), jaw (radians) and named expressions."""
    frames = []
    for t in np.linspace(0, 2 * np.pi, 40, endpoint=False):  # look right, left, back to the front
        frames.append({"rotation": (0.0, np.radians(35) * np.sin(t), 0.0)})
    for t in np.linspace(0, 2 * np.pi, 16, endpoint=False):  # nod
        frames.append({"rotation": (np.radians(15) * np.sin(t), 0.0, 0.0)})
    for w in _bump(12):
        frames.append({"jaw": 0.3 * w})
    for w in _bump(6):
        frames.append({"expr": {"eyeBlinkLeft": w, "eyeBlinkRight": w}})
    for w in _bump(12):
        frames.append({"expr": {"browInnerUp": w, "browOuterUpLeft": w, "browOuterUpRight": w}})
    for w in _bump(12):
        frames.append({"expr": {"mouthPucker": w}})
    return frames


def draw(avatar, camera, frame: dict) -> Image.Image:
    params = RigParams.neutral(avatar.rig)
    params.shape = avatar.shape
    params.rotation = np.asarray(frame.get("rotation", (0, 0, 0)), np.float32)
    params.jaw_pose = np.array([frame.get("jaw", 0.0), 0, 0], np.float32)
    for name, value in frame.get("expr", {}).items():
        params.expr[avatar.rig.expr_names.index(name)] = value
    g = deform(avatar, params).gaussians
    image = render(g.means, g.quats, g.scales, avatar.opacities, avatar.sh, camera, background=(1.0, 1.0, 1.0),
                   backend="cpu").image
    return Image.fromarray(np.round(image * 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=192, help="clip size in pixels (the still is 256)")
    args = parser.parse_args()
    avatar, _ = resolve_avatar("demo")
    out = ROOT / "docs" / "media"
    out.mkdir(parents=True, exist_ok=True)
    draw(avatar, avatar.camera.resized(256, 256), {}).save(out / "demo_still.png", optimize=True)
    camera = avatar.camera.resized(args.size, args.size)
    frames = [draw(avatar, camera, f).quantize(colors=128, method=Image.Quantize.MEDIANCUT) for f in tour(avatar.rig)]
    frames[0].save(out / "demo_tour.gif", save_all=True, append_images=frames[1:], duration=80, loop=0,
                   optimize=True)
    for name in ("demo_still.png", "demo_tour.gif"):
        print(out / name, f"{(out / name).stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
