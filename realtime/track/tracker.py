"""The tracker: camera frames in, the avatar rig's parameters out, with per-stage timings.

It ties together the MediaPipe landmark detector, the per-frame fit (identity estimated
over the first frames with a face, then held), per-person gains (each shape's full action on
the person's own face reads as a full activation: realtime.track.gains), gaze from the irises,
a One-Euro filter, and the no-face policy (hold the last pose briefly, then ease to neutral,
blinking).

World frame of the output. Parameters place the head in the world of `tracker.camera`.
Give the camera you know (a calibrated webcam, or the camera a test rendered with) and
the parameters are in its world. Without one, the camera has a `fov_x_deg` field of view
and looks down the rig's -z axis; once the identity is calibrated the world origin moves
to where the head was then (`recentre`), so translation is the head's motion since.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from realtime.blas import OneBlasThread
from realtime.camera import Camera, intrinsics, look_at
from realtime.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from realtime.rig.model import Rig, RigParams
from realtime.face import landmark_ids as mp_ids
from realtime.track.filters import FilterSettings, RigParamsFilter
from realtime.track.fit import (FitResult, FitSettings, LandmarkBasis, fit_frame, fit_gaze, fold_identity, initial_pose,
                                landmark_basis, landmark_offsets, landmark_points, offset_landmarks, project)
from realtime.track.gains import person_gains
from realtime.track.idle import blink_indices, idle_blink
from realtime.track.sources import Frame, check_frame_image

DEFAULT_DISTANCE = 0.5  # metres from the default camera to the world origin before recentring
MIN_FACE_PX = 2.0  # faces whose eyes or landmark extent span less than this many pixels are not fitted
CALIBRATION_REACH = 1.0  # how far below their tracking box activations may go while calibrating
# The tracker's L1 pull on activations (FitSettings.expr_l1): without it MediaPipe's small pose- and
# mouth-dependent landmark errors read as scattered small activations
TRACKING_L1 = 6e-3
# The tracker's landmark weighting by how far each has turned away from the camera (FitSettings.facing_drop):
# without it the far outer brow reads as raised while the head turns
TRACKING_FACING_DROP = 0.5


def interocular_distance(points: np.ndarray) -> float:
    """Pixels between the two iris centres of (478, 2+) MediaPipe landmarks."""
    return float(np.linalg.norm(points[mp_ids.LEFT_IRIS[0], :2] - points[mp_ids.RIGHT_IRIS[0], :2]))


@dataclass(frozen=True)
class TrackerSettings:
    """fov_x_deg: assumed horizontal field of view when no camera is given. MediaPipe's landmarks move as a face
    seen through a long lens would, whatever the camera: among fields of view tried at calibration the narrowest
    always fits best, and a webcam's wide angle makes head turns read far too small (renders of known turns,
    tracked without their camera, show it); a narrow one reads them as rendered
    fov_candidates: fields of view tried at calibration when no camera is given; the one whose fit matches the
    calibration frames best is kept (empty: keep fov_x_deg)
    calibration_frames: frames with a face over which the identity is estimated (0: keep the rig's mean identity)
    n_shape: identity components estimated (the rig's leading ones)
    hold_s: with no face, hold the last pose this long (a frame or two MediaPipe misses); ease_s: then ease to
    neutral over this long, the eyes blinking as a resting face's do (realtime.track.idle)
    lost_residual: a fit whose mean landmark error exceeds this fraction of the inter-ocular distance counts as
    no face (the detector latched onto something else, or the fit failed)
    neutral_at_calibration: the calibration frames show the person's neutral face: their mean expression is folded
    into the identity and their mean jaw and gaze are subtracted, so a neutral face reads as zeros (False: only
    the part of the expression below the tracking box is folded; `recalibrate_neutral()` does the full fold later)
    landmark_offsets: after calibration, add to each fitted landmark the mean head-local offset between the fit
    and the calibration frames (identity detail that the rig's identity shapes cannot express)
    depth_scale: the fitted model's depth relief relative to the rig's (see landmark_basis). MediaPipe's landmarks
    move with a turning head as a flatter face's would, so a fit with the rig's full relief under-reads head
    turns; 1 for exact landmarks (a rig's own projections)
    face_check_every: frames between looks over the whole frame for a face larger than the one followed (the
    largest face is tracked; see realtime.track.largest_face)
    model_path: a MediaPipe FaceLandmarker `.task` file to use instead of the bundled FaceMesh (never downloaded)
    filter: One-Euro settings, None for raw fits
    recentre: move the world origin to the head's place at calibration (only without a given camera)
    """

    fov_x_deg: float = 10.0
    fov_candidates: tuple[float, ...] = ()
    calibration_frames: int = 5
    n_shape: int = 50
    neutral_at_calibration: bool = True
    landmark_offsets: bool = True
    hold_s: float = 0.1
    ease_s: float = 0.5
    lost_residual: float = 0.25
    face_check_every: int = 30
    model_path: str | None = None
    depth_scale: float = 0.85
    fit: FitSettings = field(
        default_factory=lambda: FitSettings(expr_l1=TRACKING_L1, facing_drop=TRACKING_FACING_DROP))
    filter: FilterSettings | None = field(default_factory=FilterSettings)
    recentre: bool = True


@dataclass
class TrackResult:
    """params: the rig parameters for this frame (float32; filtered when the tracker filters)
    landmarks: (478, 3) float32 pixels of the tracked face, or None
    face_found: whether this frame had a face the fit accepted
    timings: milliseconds per stage ('landmarks', 'fit', 'filter', 'total')
    raw_params: the unfiltered fit (float64), or None without a face
    error_iod: mean reprojection error of the fitted landmarks over the inter-ocular distance, or None
    """

    params: RigParams
    landmarks: np.ndarray | None
    face_found: bool
    timings: dict[str, float]
    raw_params: RigParams | None = None
    error_iod: float | None = None


class Tracker:
    """Frames in, RigParams of `rig` out.

    rig: the avatar's rig (its landmark embedding must cover MediaPipe's contour points)
    detector: anything with `detect_largest(image) -> object with .points (478, 3) | None`; by default a
    realtime.track.largest_face.LargestFaceLandmarks, made on first use. A detector that counts its `switches`
    to another face (that one does) makes the tracker restart (see `restart`) at each
    camera: the camera the frames come from, in the world the parameters should live in (see the module doc)
    view: (3, 3) world-to-camera rotation of the camera the output will be seen through (an avatar's default
    camera), or None. With it the head pose is output relative to the calibration pose, carried into that view:
    the head turns about the axes of `view`'s camera as it turned about the tracker's camera's, so a yaw of the
    person stays a yaw of the avatar however its camera looks at its rig; the calibration pose reads as rotation
    and translation zero (the avatar's rest pose)
    """

    def __init__(self, rig: Rig, detector=None, camera: Camera | None = None,
                 settings: TrackerSettings = TrackerSettings(), view: np.ndarray | None = None):
        self.rig = rig
        self.settings = settings
        self._view = None if view is None else _rotation_matrix(view, "view")
        self._detector = detector
        self._given_camera = camera
        self._recentre = settings.recentre and camera is None
        self._n_shape = min(settings.n_shape, rig.n_shape) if settings.calibration_frames > 0 else 0
        self._tracking_bounds = landmark_basis(rig, n_shape=self._n_shape, depth_scale=settings.depth_scale)
        # while calibrating, activations may go below zero: the part of the person's resting face that the rig's
        # template lacks (its "negative smile") becomes part of their neutral instead of a clipped residual
        self._calib_basis = replace(self._tracking_bounds, lower=np.minimum(self._tracking_bounds.lower,
                                                                            -CALIBRATION_REACH))
        self._filter = RigParamsFilter(rig.n_expr, settings.filter) if settings.filter is not None else None
        self._blinks = blink_indices(rig.expr_names)
        self.restart()

    # -- state -----------------------------------------------------------------------------------------
    def restart(self) -> None:
        """Forget the person: identity, neutral, camera calibration and pose history. The next frames with a
        face calibrate anew (someone else in front of the camera); the detector is kept."""
        self.camera = self._given_camera
        self.basis: LandmarkBasis = (self._calib_basis if self._n_shape else
                                     fold_identity(self._tracking_bounds, np.zeros(self.rig.n_shape)))
        self._calib_points: list[np.ndarray] = []
        self._gaze_offset = np.zeros(6)
        self._gains = np.ones(self.rig.n_expr)         # per-person output gains (realtime.track.gains)
        self._jaw_offset = np.zeros(3)
        self._recalibrate = False
        self._reference: np.ndarray | None = None    # head rotation at calibration, where the fit trusts it most
        self.reset()

    def reset(self) -> None:
        """Forget the pose history (not the identity): the next face is fitted from a cold start."""
        self._state: RigParams | None = None         # last raw fit, warm start of the next
        self._last_output: RigParams | None = None   # last output with a face, start of the ease
        self._last_face_time: float | None = None
        self._lost_since: float | None = None         # when the face was last lost (None while one is tracked)
        self._rest_translation = np.zeros(3)
        if self._filter is not None:
            self._filter.reset()

    @property
    def calibrated(self) -> bool:
        """Whether the identity is estimated and held."""
        return self.basis is not self._calib_basis

    def recalibrate_neutral(self) -> None:
        """Make the expression, jaw and gaze of the next frame with a face the neutral: the expression is folded
        into the identity and the angles subtracted, so that face then reads as all-zero parameters."""
        self._recalibrate = True

    def close(self) -> None:
        if self._detector is not None and hasattr(self._detector, "close"):
            self._detector.close()
        self._detector = None

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- per frame -------------------------------------------------------------------------------------
    def track(self, frame: Frame | np.ndarray) -> TrackResult:
        """Landmarks, fit and filter for one frame (a Frame, or an RGB array stamped now)."""
        start = time.perf_counter()
        if not isinstance(frame, Frame):
            frame = Frame(check_frame_image(frame), 0, time.monotonic_ns())
        detector = self._ensure_detector()
        switches = getattr(detector, "switches", 0)
        face = detector.detect_largest(frame.image)
        if getattr(detector, "switches", 0) != switches:  # the detector moved on to another (larger) face
            self.restart()
        detected = time.perf_counter()
        points = None if face is None else np.asarray(face.points, dtype=np.float32)
        height, width = frame.image.shape[:2]
        result = self.track_landmarks(points, frame.time, (width, height))
        result.timings["landmarks"] = (detected - start) * 1e3
        result.timings["total"] = (time.perf_counter() - start) * 1e3
        return result

    def track_landmarks(self, points: np.ndarray | None, time_s: float, image_size: tuple[int, int]) -> TrackResult:
        """Fit and filter given landmarks: points (478, 2 or 3) pixels or None (no face), time_s the frame's time
        in seconds, image_size (width, height). `track` calls this after detection."""
        start = time.perf_counter()
        self._ensure_camera(image_size)
        timings = {"landmarks": 0.0}
        raw, error = None, None
        if points is not None:
            points = np.asarray(points)
            if points.ndim != 2 or points.shape[0] != mp_ids.N_LANDMARKS or points.shape[1] < 2:
                raise ValueError(f"landmarks must be ({mp_ids.N_LANDMARKS}, 2 or 3), got {points.shape}")
            if not np.all(np.isfinite(points[:, :2])):
                raise ValueError("landmarks hold NaN or infinite values")
            with OneBlasThread():
                raw, error = self._fit(points)
        fitted = time.perf_counter()
        timings["fit"] = (fitted - start) * 1e3
        if raw is not None:
            output = self._smooth(raw, time_s)
            self._last_output, self._last_face_time, self._lost_since = output, time_s, None
        else:
            output = self._idle(time_s)
        timings["filter"] = (time.perf_counter() - fitted) * 1e3
        timings["total"] = (time.perf_counter() - start) * 1e3
        return TrackResult(params=_as_float32(output), landmarks=None if raw is None else points.astype(np.float32),
                           face_found=raw is not None, timings=timings, raw_params=raw, error_iod=error)

    def idle(self, time_s: float) -> RigParams:
        """The output for a moment without a camera frame (a paused sender): as for a frame without a face."""
        return _as_float32(self._idle(time_s))

    def project(self, params: RigParams) -> np.ndarray:
        """(L, 2) pixels of the fitted landmark ids (`self.basis.ids`) for output `params` seen by `self.camera`
        (the tracker's own model: neutral jaw and gaze offsets added back, the per-person gains taken out)."""
        raw = replace(self._from_view(params), jaw_pose=np.asarray(params.jaw_pose, np.float64) + self._jaw_offset,
                      eyes_pose=np.asarray(params.eyes_pose, np.float64) + self._gaze_offset,
                      expr=np.asarray(params.expr, np.float64) / self._gains)
        return project(self.camera, landmark_points(self.basis, raw)).T

    # -- steps -----------------------------------------------------------------------------------------
    def _ensure_detector(self):
        if self._detector is None:
            from realtime.track.largest_face import LargestFaceLandmarks

            self._detector = LargestFaceLandmarks(check_every=self.settings.face_check_every,
                                                  model_path=self.settings.model_path)
        return self._detector

    def _ensure_camera(self, image_size: tuple[int, int]) -> None:
        width, height = int(image_size[0]), int(image_size[1])
        if self.camera is not None and (self.camera.width, self.camera.height) == (width, height):
            return
        if self.camera is not None:
            self.camera = self.camera.resized(width, height)
        else:
            view = look_at(np.array([0.0, 0.0, DEFAULT_DISTANCE]), np.zeros(3))
            self.camera = Camera(K=intrinsics(width, height, self.settings.fov_x_deg), viewmat=view, width=width,
                                 height=height)

    def _fit(self, points: np.ndarray) -> tuple[RigParams | None, float | None]:
        """The raw fit of one face, or (None, None) when the fit is rejected: a face smaller than MIN_FACE_PX
        (degenerate points), a fit that failed numerically, or one that does not match the points."""
        basis = self.basis
        obs = points[basis.ids, :2]
        iod = interocular_distance(points)
        if iod < MIN_FACE_PX or np.ptp(obs, axis=0).min() < MIN_FACE_PX:
            self._state = None
            return None, None
        cold = self._state is None
        init = initial_pose(basis, obs, self.camera) if cold else self._state
        try:
            fit = fit_frame(basis, obs, self.camera, init, self.settings.fit, cold=cold, reference=self._reference)
            params = fit_gaze(basis, fit, points, self.camera, self.settings.fit)
        except np.linalg.LinAlgError:  # the solve met NaN: the fit ran away (points behind the camera)
            self._state = None
            return None, None
        error = float(np.mean(np.linalg.norm(fit.residual, axis=1)) / iod)
        if not np.isfinite(error) or error > self.settings.lost_residual:
            self._state = None
            return None, None
        if not self.calibrated:
            params = self._calibrate_step(params, points)
            if self.calibrated:  # the camera and identity just changed: gaze again with them
                refit = FitResult(params, np.zeros((len(self.basis.ids), 2)), 0, fit.face_scale)
                params = fit_gaze(self.basis, refit, points, self.camera, self.settings.fit)
        if self._recalibrate:
            self._recalibrate = False
            self._fold_neutral(params.expr, params.jaw_pose, params.eyes_pose)
            self._gains = person_gains(self.basis, self.rig, self.camera, params, self.settings.fit)
            params = replace(params, expr=np.zeros(self.rig.n_expr))
        self._state = params
        out = self._in_view(replace(params, eyes_pose=params.eyes_pose - self._gaze_offset,
                                    jaw_pose=params.jaw_pose - self._jaw_offset,
                                    expr=np.minimum(params.expr * self._gains, self.basis.upper[:self.rig.n_expr])))
        if not self.calibrated and self.settings.neutral_at_calibration:
            # the neutral these frames will define is not known yet: the face holds it meanwhile
            out = replace(out, expr=np.zeros(self.rig.n_expr))
        return out, error

    def _calibrate_step(self, params: RigParams, points: np.ndarray) -> RigParams:
        """Collect one calibration frame; after `calibration_frames`, fit them all again with each candidate field
        of view (when the camera was not given), keep the camera that fits best, hold the mean identity, take the
        neutral from them (see TrackerSettings.neutral_at_calibration) and recentre."""
        self._calib_points.append(points[:, :2].astype(np.float64))
        if len(self._calib_points) < self.settings.calibration_frames:
            return params
        best = None
        for cam in self._camera_candidates():
            fits = []
            for pts in self._calib_points:
                obs = pts[self._calib_basis.ids]
                fits.append(fit_frame(self._calib_basis, obs, cam, initial_pose(self._calib_basis, obs, cam),
                                      self.settings.fit, cold=True))
            error = np.mean([np.linalg.norm(f.residual, axis=1).mean() for f in fits])
            if best is None or error < best[0]:
                best = (error, cam, fits)
        _, self.camera, fits = best
        shape = np.mean([f.params.shape for f in fits], axis=0)
        self.basis = fold_identity(self._tracking_bounds, shape)
        if self.settings.neutral_at_calibration:
            gazes = [fit_gaze(self._calib_basis, f, pts, self.camera, self.settings.fit).eyes_pose
                     for f, pts in zip(fits, self._calib_points)]
            self._fold_neutral(np.mean([f.params.expr for f in fits], axis=0),
                               np.mean([f.params.jaw_pose for f in fits], axis=0), np.mean(gazes, axis=0))
        else:
            lower = self._tracking_bounds.lower[:self.rig.n_expr]
            self._fold_neutral(np.mean([np.minimum(f.params.expr - lower, 0.0) for f in fits], axis=0),
                               np.zeros(3), np.zeros(6))
        last = fits[-1].params
        expr = np.clip(last.expr - self.basis.neutral, self.basis.lower, self.basis.upper)
        last = replace(last, shape=shape, expr=expr)
        if self.settings.landmark_offsets:
            # the offsets are taken where the output should read zero: with the calibration faces as the neutral,
            # at the neutral expression (pose and jaw refitted, expressions held), so that face reads as no
            # expression instead of as the mix of shapes that best absorbed its residual
            refit_basis = self.basis
            if self.settings.neutral_at_calibration:
                held = np.zeros(self.rig.n_expr)
                refit_basis = replace(self.basis, lower=held, upper=held)
            refits = [fit_frame(refit_basis, pts[self.basis.ids], self.camera, replace(f.params, shape=shape,
                                expr=np.clip(f.params.expr - self.basis.neutral, refit_basis.lower, refit_basis.upper)),
                                self.settings.fit, cold=True) for f, pts in zip(fits, self._calib_points)]
            self.basis = offset_landmarks(self.basis, landmark_offsets(self.basis, refits, self.camera))
            last = refits[-1].params
        if self._recentre:
            shift = np.asarray(last.translation, np.float64)
            view = self.camera.viewmat.copy()
            view[:3, 3] += view[:3, :3] @ shift
            self.camera = replace(self.camera, viewmat=view)
            last = replace(last, translation=np.zeros(3))
            if self._filter is not None:
                self._filter.reset()
        self._rest_translation = np.asarray(last.translation, np.float64).copy()
        self._reference = np.asarray(last.rotation, np.float64).copy()
        self._gains = person_gains(self.basis, self.rig, self.camera, last, self.settings.fit)
        self._calib_points.clear()
        return last

    def _camera_candidates(self) -> list[Camera]:
        """The given camera, or the default camera at each candidate field of view."""
        if self._given_camera is not None or not self.settings.fov_candidates:
            return [self.camera]
        return [replace(self.camera, K=intrinsics(self.camera.width, self.camera.height, fov))
                for fov in self.settings.fov_candidates]

    def _fold_neutral(self, expr: np.ndarray, jaw: np.ndarray, eyes: np.ndarray) -> None:
        """From now on read `expr` (relative to the current neutral; folded into the identity), `jaw` and `eyes`
        (raw fitted angles; subtracted) as the zero of the output."""
        neutral = self.basis.neutral + np.asarray(expr, np.float64)
        self.basis = fold_identity(self.basis, self.basis.identity, neutral)
        self._jaw_offset = np.asarray(jaw, np.float64).copy()
        self._gaze_offset = np.asarray(eyes, np.float64).copy()

    def _view_turn(self) -> np.ndarray:
        """(3, 3) the rotation from the tracker's world into the output's (see `view`): camera axes matched."""
        return self._view.T @ np.asarray(self.camera.viewmat[:3, :3], np.float64)

    def _in_view(self, params: RigParams) -> RigParams:
        """A fit's head pose carried into the output's view (unchanged without one; the rest pose until the
        calibration pose is known)."""
        if self._view is None:
            return params
        if self._reference is None:
            return replace(params, rotation=np.zeros(3), translation=np.zeros(3))
        turn = self._view_turn()
        head = axis_angle_to_matrix(np.asarray(params.rotation, np.float64))
        since = head @ axis_angle_to_matrix(self._reference).T
        return replace(params, rotation=matrix_to_axis_angle(turn @ since @ turn.T),
                       translation=turn @ (np.asarray(params.translation, np.float64) - self._rest_translation))

    def _from_view(self, params: RigParams) -> RigParams:
        """The inverse of `_in_view` (after calibration): an output's head pose back in the tracker's world."""
        if self._view is None or self._reference is None:
            return params
        turn = self._view_turn()
        since = turn.T @ axis_angle_to_matrix(np.asarray(params.rotation, np.float64)) @ turn
        return replace(params, rotation=matrix_to_axis_angle(since @ axis_angle_to_matrix(self._reference)),
                       translation=turn.T @ np.asarray(params.translation, np.float64) + self._rest_translation)

    def _smooth(self, params: RigParams, time_s: float) -> RigParams:
        return self._filter(params, time_s) if self._filter is not None else params

    def _neutral(self) -> RigParams:
        """The rest face of the current identity at the rest position (the output's zero pose with a view)."""
        shape = self.basis.identity if self.calibrated else np.zeros(self.rig.n_shape)
        rest = self._rest_translation.copy() if self._view is None else np.zeros(3)
        return RigParams(shape=shape.copy(), expr=np.zeros(self.rig.n_expr), translation=rest)

    def _idle(self, time_s: float) -> RigParams:
        """No face: the last output eased to neutral (`_no_face`, filtered), or the neutral when there was none;
        the eyes blink as a resting face's do from hold_s on."""
        if self._lost_since is None:
            self._lost_since = time_s
        output = self._smooth(self._no_face(time_s), time_s) if self._last_output is not None else self._neutral()
        blink = idle_blink(time_s - self._lost_since - self.settings.hold_s)
        if blink > 0 and len(self._blinks):
            expr = np.asarray(output.expr, np.float64).copy()
            expr[self._blinks] = np.maximum(expr[self._blinks], blink)
            output = replace(output, expr=expr)
        return output

    def _no_face(self, time_s: float) -> RigParams:
        """Hold the last pose for hold_s, then ease to neutral over ease_s (smoothstep), and cold-start next time."""
        elapsed = time_s - self._last_face_time
        if elapsed > self.settings.hold_s:
            self._state = None
        t = np.clip((elapsed - self.settings.hold_s) / max(self.settings.ease_s, 1e-6), 0.0, 1.0)
        alpha = t * t * (3.0 - 2.0 * t)
        last, rest = self._last_output, self._neutral()
        mixed = {name: (1.0 - alpha) * np.asarray(getattr(last, name), np.float64)
                 + alpha * np.asarray(getattr(rest, name), np.float64)
                 for name in ("expr", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "translation")}
        return replace(last, **mixed)


def _rotation_matrix(value: np.ndarray, name: str) -> np.ndarray:
    """`value` as a (3, 3) float64 rotation, or ValueError saying what it is instead."""
    m = np.asarray(value, np.float64)
    if m.shape != (3, 3) or not np.allclose(m @ m.T, np.eye(3), atol=1e-5) or np.linalg.det(m) < 0:
        raise ValueError(f"{name} must be a (3, 3) rotation matrix, got {m.shape} {m.tolist()}")
    return m


def _as_float32(params: RigParams) -> RigParams:
    return RigParams(**{name: np.asarray(getattr(params, name), np.float32) for name in
                        ("shape", "expr", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "translation")})
