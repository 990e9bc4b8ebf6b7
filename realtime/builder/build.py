"""The one-shot avatar builder: one portrait in, a mesh-bound Gaussian avatar out.

    avatar = build_avatar("me.jpg", n_gaussians=40000, refine_steps=100)

Steps: fit the built-in rig to the face (identity baked into the rest mesh, the portrait's own
expression, jaw and gaze measured against the rig's neutral, head pose into the camera), lay flat
Gaussians densely over the mesh posed as the photo shows it (denser on the face and eyes), colour
them from the photo there with a fill for what it does not see (the eyeballs painted as eyes in the
photo's iris and sclera colours: realtime.builder.eyes), and optionally refine them
photometrically against the photo (posed so) with their binding and count held fixed. The avatar's
zero parameters then give the person's neutral face, whatever expression the portrait showed.

The avatar's default camera is the portrait's own camera cropped to a square around the head (same
viewpoint, same perspective, the photo's pixel size), so the portrait's parameters
(`PortraitFit.view_params`) render the head of the portrait back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from realtime.avatar.binding import bind, triangle_frames
from realtime.avatar.gaussians import Avatar
from realtime.builder import regions as reg
from realtime.builder.colour import ColourResult, colour_gaussians, neck_tones, scalp_tones, tone_match
from realtime.builder.eyes import paint_eyes, photo_eye_tones
from realtime.builder.fit_portrait import PortraitFit, fit_portrait, load_portrait, segment_person
from realtime.builder.layout import layout_gaussians
from realtime.builder.raster import project_points, zbuffer
from realtime.builder.refine import RefineTarget, refine
from realtime.camera import Camera
from realtime.render.backend import resolve_backend
from realtime.render.sh import rgb_to_sh_dc
from realtime.rig.builtin import builtin_rig
from realtime.rig.lbs import forward
from realtime.rig.model import Rig
from realtime.face import landmark_ids as mp_ids
from realtime.track.fit import LEFT_EYE_JOINT, RIGHT_EYE_JOINT

# Bump whenever the builder's output for the same input changes (it keys the demo avatar's cache).
BUILDER_VERSION = "4"

# Gaussian density by region: face, scalp, mouth, teeth, eye, socket
REGION_IMPORTANCE = np.array([3.0, 0.6, 1.0, 2.0, 4.0, 1.0])
INITIAL_OPACITY = 0.95
CPU_REFINE_RESOLUTION = 256  # at most this many pixels across the head crop when refining without a GPU
CHIN = 152                   # MediaPipe's chin point
# regions whose Gaussians keep their photo (or painted) colours: see keep_unrefined
UNREFINED_REGIONS = (reg.EYE, reg.SOCKET, reg.TEETH, reg.MOUTH)
NECK_SHOWN = 0.04            # metres of neck below the chin inside the default camera's frame
FRAME_PAD = 0.15             # margin around the head in the default camera's frame


@dataclass(frozen=True)
class BuildSettings:
    """n_gaussians: how many Gaussians; refine_steps: photometric refinement steps (0: none); seed: layout seed."""

    n_gaussians: int = 40000
    refine_steps: int = 100
    seed: int = 0


DEMO_SETTINGS = BuildSettings()


@dataclass
class Prepared:
    """A portrait made ready for colouring: the fit, the person mask (H, W), per-face regions (F,), the mesh as
    the photo shows it (V, 3), and the head's square in the photo (x0, y0, side) in pixels."""

    fit: PortraitFit
    person: np.ndarray
    regions: np.ndarray
    view_vertices: np.ndarray
    box: tuple[int, int, int]


def crop_camera(camera: Camera, x0: int, y0: int, side: int, size: int) -> Camera:
    """The view of the square [x0, x0 + side) x [y0, y0 + side) of `camera`'s image, drawn at size x size."""
    s = size / side
    K = camera.K.astype(np.float64).copy()
    K[:2] *= s
    K[0, 2] -= x0 * s
    K[1, 2] -= y0 * s
    return Camera(K=K, viewmat=camera.viewmat, width=size, height=size)


def crop_image(image: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    """The square crop of `image` (H, W, C) float, zero outside the image, area-resampled to (size, size, C)."""
    import cv2

    h, w = image.shape[:2]
    out = np.zeros((side, side, image.shape[2]), dtype=np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    if side == size:
        return out
    resized = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA if size < side else cv2.INTER_LINEAR)
    return resized.reshape(size, size, image.shape[2])


def head_box(fit: PortraitFit, vertex_regions: np.ndarray, view_vertices: np.ndarray) -> tuple[int, int, int]:
    """The square (x0, y0, side) in the photo around the head and the top of the neck, with a margin."""
    y = fit.rest_vertices[:, 1]
    keep = (vertex_regions != reg.TEETH) & (y >= y[CHIN] - NECK_SHOWN)
    uv, _ = project_points(view_vertices[keep], fit.camera)
    lo, hi = uv.min(0), uv.max(0)
    side = int(np.ceil((hi - lo).max() * (1 + 2 * FRAME_PAD)))
    centre = (lo + hi) / 2
    return int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2)), side


def prepare(image: np.ndarray, rig: Rig) -> Prepared:
    """Fit `rig` to the portrait (H, W, 3) uint8 and segment the person."""
    fit = fit_portrait(image, rig)
    view = forward(rig.astype(np.float64), fit.view_params, static_offset=fit.static_offset).vertices
    return Prepared(fit=fit, person=segment_person(fit.image), regions=reg.face_regions(rig), view_vertices=view,
                    box=head_box(fit, reg.vertex_regions(rig), view))


def colour_avatar(prep: Prepared, rig: Rig, n_gaussians: int, seed: int = 0, name: str = "avatar"
                  ) -> tuple[Avatar, ColourResult]:
    """Lay out `n_gaussians` flat Gaussians over the fitted rest mesh and colour them from the portrait.
    Returns the avatar and the colouring's details (trust, tones)."""
    fit = prep.fit
    layout = layout_gaussians(prep.view_vertices, rig.faces, n_gaussians, importance=REGION_IMPORTANCE[prep.regions],
                              seed=seed)
    lm, lq, ls = (a.astype(np.float64) for a in (layout.local_means, layout.local_quats, layout.log_scales))
    view_frames = triangle_frames(prep.view_vertices, rig.faces)
    posed = bind(view_frames, layout.binding, lm, lq, ls)
    rest = bind(triangle_frames(fit.rest_vertices, rig.faces), layout.binding, lm, lq, ls)
    normals = view_frames.rotations[layout.binding][:, :, 1]
    y = fit.rest_vertices[:, 1]
    result = colour_gaussians(posed.means, rest.means, normals, layout.binding, prep.regions, prep.view_vertices,
                              rig.faces, fit.camera, fit.image.astype(np.float32) / 255, prep.person,
                              hair_line_y=y[list(mp_ids.LEFT_EYEBROW + mp_ids.RIGHT_EYEBROW)].mean(),
                              neck_line_y=y[CHIN])
    region = prep.regions[layout.binding]
    joints = rig.j_regressor @ fit.rest_vertices
    eyes = joints[[LEFT_EYE_JOINT, RIGHT_EYE_JOINT]]
    eyeball = np.where(region == reg.EYE, np.where(rest.means[:, 0] > joints[0, 0], 1, 2), 0)  # left eye at +x
    tones = photo_eye_tones(fit.image.astype(np.float32) / 255, fit.landmarks)
    painted = paint_eyes(result.colours, rest.means, eyeball, region == reg.SOCKET, fit.rest_vertices, eyes, tones)
    result = replace(result, colours=painted.astype(np.float32))
    n = len(layout.binding)
    x0, y0, side = prep.box
    avatar = Avatar(rig=rig, shape=fit.shape.astype(np.float32), static_offset=fit.static_offset,
                    binding=layout.binding, local_means=layout.local_means, local_quats=layout.local_quats,
                    log_scales=layout.log_scales,
                    opacity_logits=np.full(n, np.log(INITIAL_OPACITY / (1 - INITIAL_OPACITY)), np.float32),
                    sh=rgb_to_sh_dc(result.colours)[:, None, :].astype(np.float32),
                    camera=crop_camera(fit.camera, x0, y0, side, side), name=name)
    return avatar, result


def refine_target(prep: Prepared, faces: np.ndarray, colours: ColourResult, resolution: int | None
                  ) -> RefineTarget:
    """The head square of the portrait with its loss mask: pixels where the mesh's outside (not the mouth's
    inside) is drawn and the person is, and, on the scalp and neck, the photo shows a colour expected there
    (not the background the generic scalp may stick out into). resolution: pixels across (None: the photo's)."""
    fit = prep.fit
    image = fit.image.astype(np.float32) / 255
    _, face_ids = zbuffer(prep.view_vertices, faces, fit.camera)
    drawn = face_ids >= 0
    region = prep.regions[np.maximum(face_ids, 0)]
    face_y = fit.rest_vertices[faces, 1].mean(1)[np.maximum(face_ids, 0)]
    mask = (drawn & (region != reg.MOUTH)).astype(np.float32) * prep.person
    chin_y = fit.rest_vertices[CHIN, 1]
    tones = colours.tones
    scalp = drawn & (region == reg.SCALP) & (face_y > chin_y)
    neck = drawn & (region == reg.SCALP) & (face_y <= chin_y)
    mask[scalp] *= tone_match(image[scalp], scalp_tones(tones["hair"], tones["skin"]))
    mask[neck] *= tone_match(image[neck], neck_tones(tones["neck"], tones["skin"]))
    x0, y0, side = prep.box
    size = side if resolution is None else min(resolution, side)
    return RefineTarget(image=crop_image(image, x0, y0, side, size),
                        mask=crop_image(mask[..., None], x0, y0, side, size)[..., 0],
                        camera=crop_camera(fit.camera, x0, y0, side, size), background=np.zeros(3, np.float32))


def keep_unrefined(refined: Avatar, before: Avatar, keep: np.ndarray) -> Avatar:
    """`refined` with the Gaussians where `keep` (N,) bool is set as they were `before` refinement.

    The eyes, the teeth and the mouth's inside move against the skin around them (the eyes turn, the jaw
    opens) and are seen in the portrait through small openings, and the lid and lip margins around those
    openings close over them: refinement fits a blend of overlapping Gaussians there that matches those few
    pixels in the portrait's pose only, and shows as coloured specks, or as holes in a closed lid, in any other.
    They keep their photo (or painted) colours and full opacity instead.
    """
    def pick(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.where(keep.reshape((-1,) + (1,) * (a.ndim - 1)), b, a).astype(a.dtype)

    return replace(refined, **{name: pick(getattr(refined, name), getattr(before, name))
                               for name in ("local_means", "local_quats", "log_scales", "opacity_logits", "sh")})


def build_avatar(portrait, n_gaussians: int = DEMO_SETTINGS.n_gaussians,
                 refine_steps: int = DEMO_SETTINGS.refine_steps, backend: str = "auto", seed: int = 0,
                 name: str = "avatar", log: Callable[[str], None] | None = None) -> Avatar:
    """A mesh-bound Gaussian avatar of the one person in `portrait`.

    portrait: an image path or an array (see `load_portrait`); n_gaussians: the Gaussian count (held fixed);
    refine_steps: photometric refinement steps (0 skips it); backend: 'auto', 'cpu' or 'cuda' for the
    refinement (CPU: at CPU_REFINE_RESOLUTION pixels; CUDA: gsplat at the photo's resolution);
    log: called with one line per stage. Raises PortraitError for an unreadable portrait, no face, several
    faces or a face too small.
    """
    if n_gaussians < 1000:
        raise ValueError(f"n_gaussians must be at least 1000 to cover the head, got {n_gaussians}")
    if refine_steps < 0:
        raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
    say = log or (lambda line: None)
    use = resolve_backend(backend)
    start = time.perf_counter()
    rig = builtin_rig()
    prep = prepare(load_portrait(portrait), rig)
    say(f"fitted the rig to the portrait ({prep.fit.residual_px.mean():.2f} px mean landmark residual) "
        f"in {time.perf_counter() - start:.1f} s")
    avatar, colours = colour_avatar(prep, rig, n_gaussians, seed, name)
    say(f"laid out and coloured {avatar.n_gaussians} Gaussians in {time.perf_counter() - start:.1f} s")
    if refine_steps > 0:
        target = refine_target(prep, rig.faces, colours, None if use == "cuda" else CPU_REFINE_RESOLUTION)
        refined, losses = refine(avatar, target, refine_steps, backend=use, params=prep.fit.view_params)
        keep = np.isin(prep.regions, UNREFINED_REGIONS) | reg.margin_faces(rig)
        avatar = keep_unrefined(refined, avatar, keep[avatar.binding])
        say(f"refined {refine_steps} steps on {use} at {target.camera.width} px (L1 {losses[0]:.4f} -> "
            f"{losses[-1]:.4f}) in {time.perf_counter() - start:.1f} s")
    return avatar


def build_avatar_file(portrait: str | Path, out: str | Path, n_gaussians: int = DEMO_SETTINGS.n_gaussians,
                      refine_steps: int = DEMO_SETTINGS.refine_steps, backend: str = "auto",
                      log: Callable[[str], None] | None = None) -> Avatar:
    """`build_avatar` from an image file, saved to `out` in the native format (.rtav), named after the file."""
    from realtime.avatar.native import save_avatar

    avatar = build_avatar(portrait, n_gaussians=n_gaussians, refine_steps=refine_steps, backend=backend,
                          name=Path(portrait).stem, log=log)
    save_avatar(avatar, out)
    return avatar


def build_demo_avatar() -> Avatar:
    """The built-in demo avatar: `skimage.data.astronaut()` built with DEMO_SETTINGS on the CPU (deterministic:
    the same on every machine, so one cache key fits all)."""
    from skimage import data

    s = DEMO_SETTINGS
    return build_avatar(data.astronaut(), n_gaussians=s.n_gaussians, refine_steps=s.refine_steps, backend="cpu",
                        seed=s.seed, name="demo")
