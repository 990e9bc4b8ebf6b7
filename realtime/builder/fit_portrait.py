"""One portrait in, the rig fitted to it out: face detection, identity and pose fit, the portrait's camera.

The avatar's rest mesh is the portrait's face with a neutral expression: the fitted identity
coefficients plus static per-vertex offsets that hold the landmark residuals the blend shapes
cannot explain (so the mesh lands on MediaPipe's points in the picture). The portrait's own
expression, jaw and gaze are measured against the rig's neutral zero and kept apart
(`PortraitFit.view_params`): they pose the mesh as the photo shows it, for colouring and
refining the Gaussians there, while the avatar's zero parameters give its neutral face (a
smiling portrait makes an avatar that smiles only when driven to). The head pose goes into the
camera instead: the avatar's default camera sees the rest mesh as the photo saw the head.

The photo's focal length is unknown; we assume a 30-degree field of view across its larger
side (a portrait lens), which sets the head's distance from its size in the picture.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from realtime.camera import Camera, intrinsics, rig_to_opencv
from realtime.geometry import axis_angle_to_matrix
from realtime.face.detector import LandmarkDetector, N_LANDMARKS
from realtime.rig.lbs import forward, landmarks as rig_landmarks
from realtime.rig.model import Rig, RigParams
from realtime.track import fit as landmark_fit
from realtime.face import landmark_ids as mp_ids

PORTRAIT_FOV_DEG = 30.0
MIN_FACE_PIXELS = 48  # the face's landmark box must be at least this wide


class PortraitError(ValueError):
    """A portrait the builder cannot use: unreadable, no face, several faces, a face too small."""


@dataclass
class PortraitFit:
    """The rig fitted to one portrait.

    image:         (H, W, 3) uint8 RGB, the portrait
    landmarks:     (478, 3) float32 MediaPipe points in pixels
    shape:         (S,) identity coefficients
    static_offset: (V, 3) float32 per-vertex offsets (the landmark residuals baked in)
    camera:        the portrait's view of the rest mesh (H x W)
    view_params:   the parameters that reproduce the portrait with `camera`: identity, and the portrait's
                   expression, jaw and gaze
    rest_vertices: (V, 3) float64 the rest mesh: forward(rig, neutral identity params, static_offset)
    residual_px:   (L,) landmark distances in pixels after the blend-shape fit, before the offsets
    """

    image: np.ndarray
    landmarks: np.ndarray
    shape: np.ndarray
    static_offset: np.ndarray
    camera: Camera
    view_params: RigParams
    rest_vertices: np.ndarray
    residual_px: np.ndarray


def load_portrait(source: str | Path | np.ndarray) -> np.ndarray:
    """A portrait as (H, W, 3) uint8 RGB from an image file (any format Pillow reads, EXIF rotation applied)
    or an array ((H, W), (H, W, 3) or (H, W, 4); uint8, or float in [0, 1]). Raises PortraitError."""
    if isinstance(source, (str, Path)):
        from PIL import Image, ImageOps, UnidentifiedImageError

        path = Path(source)
        if not path.is_file():
            raise PortraitError(f"portrait file not found: {path}")
        try:
            with Image.open(path) as img:
                array = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise PortraitError(f"cannot read the portrait {path} as an image: {exc}") from None
        return np.ascontiguousarray(array)
    array = np.asarray(source)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 1:
        raise PortraitError(f"a portrait array must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    array = array[..., :3]
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise PortraitError("the portrait holds NaN or infinite values")
        array = np.round(np.clip(array, 0.0, 1.0) * 255)
    elif array.dtype != np.uint8:
        raise PortraitError(f"a portrait array must be uint8 or float in [0, 1], got {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.uint8)


def detect_face(image: np.ndarray) -> np.ndarray:
    """The one face in `image`: (478, 3) float32 MediaPipe points in pixels.

    Raises PortraitError when there is no face, more than one, or the face is under MIN_FACE_PIXELS wide.
    """
    with LandmarkDetector(static_image_mode=True, max_faces=2) as detector:
        faces = detector.detect(image)
    if not faces:
        raise PortraitError("no face found in the portrait (it needs one clearly visible face)")
    if len(faces) > 1:
        raise PortraitError(f"found {len(faces)} faces in the portrait; it must show exactly one person")
    x0, _, x1, _ = faces[0].bbox
    if x1 - x0 < MIN_FACE_PIXELS:
        raise PortraitError(f"the face is only {x1 - x0:.0f} pixels wide; the portrait needs at least "
                            f"{MIN_FACE_PIXELS} (use a larger or closer photo)")
    return faces[0].points


def segment_person(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 probability that each pixel shows the person (MediaPipe selfie segmentation, bundled)."""
    from mediapipe.python.solutions.selfie_segmentation import SelfieSegmentation

    with SelfieSegmentation(model_selection=0) as segmenter:
        mask = segmenter.process(np.ascontiguousarray(image)).segmentation_mask
    return np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)


def portrait_camera(width: int, height: int, fov_deg: float = PORTRAIT_FOV_DEG) -> Camera:
    """The fitting camera: at the rig origin looking down the rig's -z axis, `fov_deg` across the larger side."""
    K = intrinsics(max(width, height), max(width, height), fov_deg)
    K[0, 2], K[1, 2] = width / 2, height / 2
    return Camera(K=K, viewmat=rig_to_opencv(), width=width, height=height)


def _rigid(rotation: np.ndarray, pivot: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(4, 4) x -> R (x - pivot) + pivot + translation, R from the axis-angle `rotation`."""
    m = np.eye(4)
    m[:3, :3] = axis_angle_to_matrix(np.asarray(rotation, np.float64))
    m[:3, 3] = pivot + translation - m[:3, :3] @ pivot
    return m


def _spread(points: np.ndarray, values: np.ndarray, targets: np.ndarray, radius: float) -> np.ndarray:
    """Values (L, 3) known at points (L, 3) carried to targets (T, 3): Gaussian-weighted means that fade to
    zero beyond `radius` metres (Shepard weights with a zero-valued prior of weight 0.05)."""
    d2 = ((targets[:, None, :] - points[None]) ** 2).sum(-1)
    w = np.exp(-0.5 * d2 / (radius / 2) ** 2)
    return (w @ values) / (w.sum(1, keepdims=True) + 0.05)


def fit_portrait(image: np.ndarray, rig: Rig, landmarks: np.ndarray | None = None,
                 fov_deg: float = PORTRAIT_FOV_DEG) -> PortraitFit:
    """Fit `rig`'s identity, expression, jaw, head pose and gaze to the one face of `image` ((H, W, 3) uint8).

    landmarks: (478, 3) MediaPipe points in pixels, when already detected (else `detect_face`).
    """
    image = load_portrait(image)
    points = detect_face(image) if landmarks is None else np.asarray(landmarks, np.float32)
    if points.shape[0] != N_LANDMARKS:
        raise PortraitError(f"landmarks must be the {N_LANDMARKS} MediaPipe points, got {points.shape}")
    height, width = image.shape[:2]
    camera = portrait_camera(width, height, fov_deg)
    ids = np.arange(468)
    basis = landmark_fit.landmark_basis(rig, ids, n_shape=rig.n_shape, weights=mp_ids.landmark_weights(ids))
    observed = points[basis.ids, :2].astype(np.float64)
    init = landmark_fit.initial_pose(basis, observed, camera)
    settings = landmark_fit.FitSettings(cold_iterations=40)
    result = landmark_fit.fit_frame(basis, observed, camera, init, settings, cold=True)
    params = landmark_fit.fit_gaze(basis, result, points, camera)
    rig64 = rig.astype(np.float64)

    # the portrait's face in rig space: its expression, jaw and gaze, no head pose
    face_params = replace(params, rotation=np.zeros(3), translation=np.zeros(3), neck_pose=np.zeros(3))
    rest = forward(rig64, face_params)
    head = _rigid(params.rotation, rest.joints[0], params.translation)  # rig space -> the portrait's posed head
    view = camera.viewmat @ head
    avatar_camera = Camera(K=camera.K, viewmat=view, width=width, height=height)

    # landmark residuals (pixels) back to rest-space offsets at each landmark's depth, spread over the mesh
    lmk_rest = rig_landmarks(rig64, rest.vertices)                         # (L_rig, 3) ordered as rig.lmk_ids
    has = np.isin(rig.lmk_ids, ids)
    lmk_rest, lmk_ids = lmk_rest[has], rig.lmk_ids[has]
    cam = lmk_rest @ view[:3, :3].T + view[:3, 3]
    proj = cam[:, :2] / cam[:, 2:] @ camera.K[:2, :2].T + camera.K[:2, 2]
    residual = points[lmk_ids, :2] - proj                                  # (L, 2) pixels
    shift_cam = np.concatenate([residual * cam[:, 2:] / np.diag(camera.K)[:2], np.zeros((len(cam), 1))], 1)
    shift_rest = shift_cam @ view[:3, :3]                                   # camera -> rest axes
    face_size = np.linalg.norm(lmk_rest.max(0) - lmk_rest.min(0))
    static_offset = _spread(lmk_rest, shift_rest, rest.vertices, radius=0.08 * face_size)
    neutral = RigParams(shape=np.asarray(params.shape, np.float64), expr=np.zeros(rig.n_expr))
    rest_vertices = forward(rig64, neutral, static_offset=static_offset).vertices
    view_params = RigParams(shape=np.asarray(params.shape, np.float32), expr=np.asarray(params.expr, np.float32),
                            jaw_pose=np.asarray(params.jaw_pose, np.float32),
                            eyes_pose=np.asarray(params.eyes_pose, np.float32))
    return PortraitFit(image=image, landmarks=points, shape=np.asarray(params.shape, np.float32),
                       static_offset=static_offset.astype(np.float32), camera=avatar_camera, view_params=view_params,
                       rest_vertices=rest_vertices, residual_px=np.linalg.norm(residual, axis=1))
