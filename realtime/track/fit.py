"""Per-frame fitting of a rig to 2D face landmarks under a perspective camera.

Model. A landmark is a barycentric point on the rig mesh, so after linear blend
skinning with FLAME's chain (neck held at rest) it is exactly

    world_l = R0 · Σ_g R_g · X_lg(c) + J0(c) + t

where g runs over the rigid head (R = I) and the joints below the neck (jaw, eyes),
R0 is the head rotation, R_g the joint's own rotation, t the translation and
X_lg(c) = X0_lg + XD_lg · c is linear in the blend-shape coefficients c
(expression, then optionally identity): X_lg is the landmark's corner vertices
weighted by their skinning weight on joint g, minus the joint's location, plus
(for the rigid group) the joints' offsets from the root. These bases are
precomputed once per rig and landmark subset (:func:`landmark_basis`), and the
identity is folded in once it is known (:func:`fold_identity`).

Fit. Gauss-Newton on [head rotation (3), translation (3), jaw (3), coefficients]
over the projected landmarks, residuals in units of the face's size in the image,
Tikhonov priors on the coefficients (towards zero) and the jaw, optionally an L1
prior on the activations (coefficients bounded below by zero: small, unsupported
ones stay at exactly zero), a temporal prior towards the previous frame, and box
bounds on the coefficients and jaw kept by an active-set solve. Given a reference
head rotation (the tracker's calibration pose), the landmarks count less as the head
turns away from it: MediaPipe's landmarks and the calibrated model agree less there.
Pose correctives enter at the current jaw and eye angles (not differentiated).
Gaze is a second small fit per eye: the iris centre turns with the eyeball about
the rig's eye joint, and is matched relative to the eye corners.
The loops run compiled (:mod:`realtime.track.fit_kernel`); :func:`landmark_points`
is the NumPy model they are checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from realtime.camera import Camera
from realtime.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from realtime.rig.model import FLAME_PARENTS, Rig, RigError, RigParams
from realtime.face import landmark_ids as mp_ids
from realtime.track.fit_kernel import gauss_newton, gaze_newton

JAW, LEFT_EYE_JOINT, RIGHT_EYE_JOINT = 2, 3, 4
# Rest offset of the iris centre from the eyeball centre when the rig embeds no iris (metres, +z: looking ahead).
DEFAULT_IRIS_OFFSET = np.array([0.0, 0.0, 0.0115])
JAW_LOWER = np.array([-0.05, -0.2, -0.2])
JAW_UPPER = np.array([0.6, 0.2, 0.2])
GAZE_LIMIT = 0.6  # radians, each of pitch and yaw

# The 52 ARKit blend-shape names: expression shapes with these names are activations in [0, 1].
ARKIT_NAMES = frozenset((
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
))
STATISTICAL_LIMIT = 3.0  # FLAME-style (PCA) coefficients are kept in [-3, 3]


def expression_bounds(rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """(E,), (E,) float64 lower and upper bounds: [0, 1] for ARKit-named shapes, [-3, 3] for statistical ones."""
    arkit = np.array([name in ARKIT_NAMES for name in rig.expr_names], dtype=bool)
    return np.where(arkit, 0.0, -STATISTICAL_LIMIT), np.where(arkit, 1.0, STATISTICAL_LIMIT)


@dataclass(frozen=True, eq=False)
class LandmarkBasis:
    """The rig's landmarks as a function of its parameters, for a subset of MediaPipe ids.

    ids:      (L,) MediaPipe ids, in the order of the observations the fit takes
    weights:  (L,) fitting weight per landmark
    groups:   (G,) joint of each group; group 0 is the rigid head (root and neck), the others hang below the neck
    x0:       (G, 3, L) group-weighted local positions at zero coefficients
    xd:       (G, 3, L, C) their derivative in each coefficient
    xp:       (G, 3, L, P) their derivative in the pose-corrective feature (P = 36), or None without correctives
    j0:       (J, 3) joints at zero coefficients; jd: (J, 3, C) their derivative
    lower, upper: (C,) coefficient bounds; prior: (C,) coefficient prior weights (relative)
    n_expr:   the first n_expr coefficients are expressions, the rest (n_shape of them) identity
    iris_offsets: (2, 3) rest offset of the left and right iris centre from its eye joint
    normals:  (3, L) head-local unit normals of the template's triangles under the landmarks
    identity: (S,) identity coefficients folded into x0 (zeros until :func:`fold_identity`)
    neutral:  (E,) expression folded into x0 as the neutral face
    depth_scale: the rig's depth (z, about the root joint) was scaled by this in the basis (see landmark_basis)
    """

    ids: np.ndarray
    weights: np.ndarray
    groups: np.ndarray
    x0: np.ndarray
    xd: np.ndarray
    xp: np.ndarray | None
    j0: np.ndarray
    jd: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    prior: np.ndarray
    n_expr: int
    iris_offsets: np.ndarray
    normals: np.ndarray
    identity: np.ndarray
    neutral: np.ndarray
    depth_scale: float = 1.0

    @property
    def n_coeffs(self) -> int:
        return self.xd.shape[3]

    @property
    def n_shape(self) -> int:
        return self.n_coeffs - self.n_expr

    @property
    def has_jaw(self) -> bool:
        return bool(np.any(self.groups == JAW))

    @cached_property
    def jaw_slot(self) -> int:
        """The group index of the jaw, or -1 when no fitted landmark moves with it."""
        return int(np.flatnonzero(self.groups == JAW)[0]) if self.has_jaw else -1

    @cached_property
    def jd_root(self) -> np.ndarray:
        """(3, C) contiguous derivative of the root joint in the coefficients."""
        return np.ascontiguousarray(self.jd[0])

    @cached_property
    def eye_corner_rows(self) -> np.ndarray | None:
        """(4,) rows of the left eye's corners then the right eye's in `ids`, or None unless all four are fitted."""
        corners = mp_ids.LEFT_EYE_CORNERS + mp_ids.RIGHT_EYE_CORNERS
        if not np.all(np.isin(corners, self.ids)):
            return None
        return np.array([int(np.flatnonzero(self.ids == c)[0]) for c in corners])

    @cached_property
    def moves(self) -> np.ndarray:
        """(G, L) bool: whether group g moves landmark l at all (the rigid group always does)."""
        out = (np.abs(self.x0).max(1) > 0) | (np.abs(self.xd).max(axis=(1, 3)) > 0)
        if self.xp is not None:
            out |= np.abs(self.xp).max(axis=(1, 3)) > 0
        out[0] = True
        return out

    @cached_property
    def rest_local(self) -> np.ndarray:
        """(3, L) the landmarks relative to the root joint with every joint at rest (the groups summed)."""
        return self.x0.sum(0)

    @cached_property
    def xp_or_empty(self) -> np.ndarray:
        """xp, or a (G, 3, L, 0) array when the rig has no pose correctives."""
        return self.xp if self.xp is not None else np.zeros(self.x0.shape + (0,))


def landmark_basis(rig: Rig, ids: np.ndarray | None = None, n_shape: int = 0, weights: np.ndarray | None = None,
                   shape_prior: float = 1.0, depth_scale: float = 1.0) -> LandmarkBasis:
    """Precompute the landmark bases of `rig` for the MediaPipe `ids` it embeds (default: landmark_ids.fit_ids()).

    n_shape: how many identity coefficients stay free (for identity estimation); 0 for per-frame tracking.
    weights: (L,) per-landmark weights for `ids` (default landmark_ids.landmark_weights).
    depth_scale: the model's depth relief (rig z about the root joint, template and every basis alike) times this:
    MediaPipe's 2D landmarks move with a turning head as a flatter face's would (see TrackerSettings.depth_scale);
    the iris offsets (eyeball radius) keep the rig's depth and the eye joints move back so that the irises rest at
    the flattened face's depth (the parallax between iris and eye corners as the head turns stays the flat face's,
    and the eyes turn the iris as far as the rig's do).
    Ids the rig does not embed are dropped. Raises RigError when fewer than 10 remain or the rig is not FLAME-chained.
    """
    if rig.n_joints != 5 or not np.array_equal(rig.parents, FLAME_PARENTS):
        raise RigError("the fitter needs FLAME's joint chain (root, neck, jaw, left eye, right eye)")
    ids = mp_ids.fit_ids() if ids is None else np.asarray(ids, dtype=np.int64)
    weights = mp_ids.landmark_weights(ids) if weights is None else np.asarray(weights, dtype=np.float64)
    rows, keep = _embedding_rows(rig, ids)
    if len(rows) < 10:
        raise RigError(f"the rig embeds only {len(rows)} of the {len(ids)} landmarks the fitter uses (need 10)")
    ids, weights = ids[keep], weights[keep]
    n_shape = min(n_shape, rig.n_shape)
    dirs = np.concatenate([rig.expr_dirs, rig.shape_dirs[:, :, :n_shape]], axis=2).astype(np.float64)
    corners = rig.faces[rig.lmk_faces[rows]]                            # (L, 3)
    bary = rig.lmk_bary[rows].astype(np.float64)                         # (L, 3)
    skin = bary[:, :, None] * rig.weights[corners].astype(np.float64)    # (L, 3 corners, J)
    m = skin.sum(1)                                                      # (L, J)
    v0 = rig.v_template.astype(np.float64)
    pose_dirs = rig.pose_dirs.astype(np.float64)
    iris_offsets = _iris_offsets(rig, rig.j_regressor @ v0)
    if depth_scale != 1.0:
        flat = np.array([1.0, 1.0, depth_scale])
        root_z = rig.j_regressor[0] @ v0[:, 2]
        v0 = v0 * flat + [0.0, 0.0, (1.0 - depth_scale) * root_z]
        dirs = dirs * flat[:, None]
        pose_dirs = pose_dirs * flat[:, None]
    j0 = rig.j_regressor @ v0                                            # (J, 3)
    jd = np.einsum("jv,vcd->jcd", rig.j_regressor.astype(np.float64), dirs)  # (J, 3, C)
    moved = [j for j in (JAW, LEFT_EYE_JOINT, RIGHT_EYE_JOINT) if np.any(m[:, j] > 1e-9)]
    groups = np.array([0] + moved, dtype=np.int64)

    def group_sum(values: np.ndarray) -> np.ndarray:
        """values: (V, 3, ...) per vertex -> (J, L, 3, ...) skin-weighted landmark sums per joint."""
        return np.einsum("lkj,lk...->jl...", skin, values[corners])

    def local(values: np.ndarray, joints: np.ndarray) -> np.ndarray:
        """Group-local positions (G, 3, L, ...) from per-vertex values (V, 3, ...) and joints (J, 3, ...)."""
        msum = group_sum(values)                                         # (J, L, 3, ...)
        extra = (1,) * (values.ndim - 2)
        mj = m.T.reshape(m.shape[1], m.shape[0], 1, *extra)              # (J, L, 1, ...)
        per_joint = msum - mj * joints[:, None]                          # M_lj - m_lj J_j
        rigid = per_joint[0] + per_joint[1] + mj[1] * (joints[1] - joints[0])[None]
        for j in moved:
            rigid = rigid + mj[j] * (joints[j] - joints[0])[None]
        out = np.stack([rigid] + [per_joint[j] for j in moved])          # (G, L, 3, ...)
        return np.ascontiguousarray(np.moveaxis(out, 2, 1))              # (G, 3, L, ...)

    x0 = local(v0, j0)
    xd = local(dirs, jd)
    j0[[LEFT_EYE_JOINT, RIGHT_EYE_JOINT], 2] -= (1.0 - depth_scale) * iris_offsets[:, 2]
    normals = np.cross(v0[corners[:, 1]] - v0[corners[:, 0]], v0[corners[:, 2]] - v0[corners[:, 0]])
    normals = (normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)).T
    xp = None
    if pose_dirs.shape[2]:
        xp = local(pose_dirs, np.zeros((5, 3, pose_dirs.shape[2])))
    lower_e, upper_e = expression_bounds(rig)
    lower = np.concatenate([lower_e, np.full(n_shape, -STATISTICAL_LIMIT)])
    upper = np.concatenate([upper_e, np.full(n_shape, STATISTICAL_LIMIT)])
    prior = np.concatenate([np.ones(rig.n_expr), np.full(n_shape, shape_prior)])
    return LandmarkBasis(ids=ids, weights=weights, groups=groups, x0=x0, xd=xd, xp=xp, j0=j0, jd=jd,
                         lower=lower, upper=upper, prior=prior, n_expr=rig.n_expr, iris_offsets=iris_offsets,
                         normals=np.ascontiguousarray(normals), identity=np.zeros(rig.n_shape),
                         neutral=np.zeros(rig.n_expr), depth_scale=depth_scale)


def _embedding_rows(rig: Rig, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of rig.lmk_ids holding each id of `ids`, and the mask of ids the rig embeds."""
    where = {int(i): r for r, i in enumerate(rig.lmk_ids)}
    keep = np.array([int(i) in where for i in ids], dtype=bool)
    rows = np.array([where[int(i)] for i in ids[keep]], dtype=np.int64)
    return rows, keep


def _iris_offsets(rig: Rig, joints: np.ndarray) -> np.ndarray:
    """(2, 3) rest iris centre minus eye joint for the left and right eye: from the rig's own iris landmarks
    (MediaPipe 473, 468) when it embeds them, else DEFAULT_IRIS_OFFSET."""
    out = np.tile(DEFAULT_IRIS_OFFSET, (2, 1))
    for k, (iris, joint) in enumerate(((mp_ids.LEFT_IRIS[0], LEFT_EYE_JOINT), (mp_ids.RIGHT_IRIS[0], RIGHT_EYE_JOINT))):
        rows, _ = _embedding_rows(rig, np.array([iris]))
        if len(rows):
            corner_ids = rig.faces[rig.lmk_faces[rows[0]]]
            point = rig.lmk_bary[rows[0]].astype(np.float64) @ rig.v_template[corner_ids].astype(np.float64)
            out[k] = point - joints[joint]
    return out


def fold_identity(basis: LandmarkBasis, shape: np.ndarray, neutral: np.ndarray | None = None,
                  rig: Rig | None = None) -> LandmarkBasis:
    """A tracking basis with the identity `shape` (S,) and a neutral expression `neutral` (E,) folded in.

    `basis` may have free identity coefficients (they are dropped) or none; when it has fewer than `shape` holds,
    `rig` supplies the rest. The returned basis has expression coefficients only, relative to `neutral`.
    """
    shape = np.asarray(shape, dtype=np.float64)
    neutral = np.zeros(basis.n_expr) if neutral is None else np.asarray(neutral, dtype=np.float64)
    delta_shape = shape - basis.identity
    delta_neutral = neutral - basis.neutral
    n_free = basis.n_shape
    x0 = basis.x0 + basis.xd[..., :basis.n_expr] @ delta_neutral
    j0 = basis.j0 + basis.jd[..., :basis.n_expr] @ delta_neutral
    x0 = x0 + basis.xd[..., basis.n_expr:] @ delta_shape[:n_free]
    j0 = j0 + basis.jd[..., basis.n_expr:] @ delta_shape[:n_free]
    rest = delta_shape[n_free:]
    if np.any(rest != 0):
        if rig is None:
            raise RigError("folding identity coefficients the basis does not hold needs the rig")
        full = landmark_basis(rig, basis.ids, n_shape=len(shape), weights=basis.weights,
                              depth_scale=basis.depth_scale)
        x0 = x0 + full.xd[..., full.n_expr + n_free:] @ rest
        j0 = j0 + full.jd[..., full.n_expr + n_free:] @ rest
    e = basis.n_expr
    return replace(basis, x0=x0, xd=np.ascontiguousarray(basis.xd[..., :e]), j0=j0, jd=basis.jd[..., :e], lower=basis.lower[:e],
                   upper=basis.upper[:e], prior=basis.prior[:e], identity=shape.copy(), neutral=neutral.copy())


def landmark_offsets(basis: LandmarkBasis, fits: list, camera: Camera) -> np.ndarray:
    """(L, 3) head-local offsets that carry the basis' landmarks onto what was observed, averaged over `fits`
    (FitResults of this basis): each residual is lifted to the landmark's depth, in the image plane, and turned
    into the head's frame. Adding them (:func:`offset_landmarks`) makes the model match the person's own face
    where the rig's identity space cannot."""
    view_r = camera.viewmat[:3, :3]
    total = np.zeros((len(basis.ids), 3))
    for fit in fits:
        world = landmark_points(basis, fit.params)                           # (3, L)
        depth = (view_r @ world + camera.viewmat[:3, 3:4])[2]                # (L,)
        lift = np.stack([fit.residual[:, 0] * depth / camera.K[0, 0], fit.residual[:, 1] * depth / camera.K[1, 1],
                         np.zeros_like(depth)])                              # (3, L) camera axes
        head = axis_angle_to_matrix(np.asarray(fit.params.rotation, np.float64))
        total += (head.T @ view_r.T @ lift).T
    return total / max(len(fits), 1)


def offset_landmarks(basis: LandmarkBasis, offsets: np.ndarray) -> LandmarkBasis:
    """The basis with (L, 3) head-local offsets added to its landmarks (they move rigidly with the head)."""
    x0 = basis.x0.copy()
    x0[0] += np.asarray(offsets, np.float64).T
    return replace(basis, x0=x0)


@dataclass(frozen=True)
class FitSettings:
    """Weights of the fit, relative to landmark residuals measured in units of the face size in the image.

    iterations:     most Gauss-Newton steps per frame (a cold start takes up to `cold_iterations`); warm-started
                    video frames mostly stop after two or three
    expr_prior:     pull of each coefficient towards zero (times basis.prior)
    temporal:       pull of every coefficient and angle towards the previous frame's value
    jaw_prior:      (3,) pull of the jaw angles (x opens) towards rest
    gaze_prior:     pull of each eye angle towards rest
    tolerance:      stop when the step's largest entry (radians, metres, coefficients) falls below this
    expr_l1:        constant pull of each activation (coefficients bounded below by zero, times basis.prior)
                    towards zero: an activation whose landmark evidence is weaker stays at exactly zero
    turn_deg:       with a reference rotation, the landmarks' weight falls as 1 / (1 + (θ / turn_deg)²) with the
                    head's turn θ from it (the priors then weigh relatively more)
    facing_drop:    a landmark's weight falls from 1 to 0 as the cosine between its surface normal and its direction
                    to the camera (at the previous frame's pose) drops by this much below its value at the reference
                    rotation (or at rest): MediaPipe places points least reliably on surfaces that turn edge-on (the
                    far side of a turning head); None: every landmark keeps its weight
    """

    iterations: int = 4
    cold_iterations: int = 12
    expr_prior: float = 1e-2
    temporal: float = 1e-4
    jaw_prior: tuple[float, float, float] = (1e-3, 3e-2, 3e-2)
    gaze_prior: float = 1e-4
    expr_l1: float = 0.0
    turn_deg: float = 15.0
    facing_drop: float | None = None
    tolerance: float = 1e-3


@dataclass
class FitResult:
    """params: the fitted RigParams (float64; shape = the basis identity, or the free identity when fitted);
    residual: (L, 2) landmark residuals in pixels, observed minus projected; iterations: GN steps taken;
    face_scale: the observed landmarks' RMS spread about their centroid, pixels (the residuals' unit in the fit)."""

    params: RigParams
    residual: np.ndarray
    iterations: int
    face_scale: float


def project(camera: Camera, world: np.ndarray) -> np.ndarray:
    """Pinhole projection. world: (3, N) points in the camera's world space. Returns (2, N) pixels."""
    cam = camera.viewmat[:3, :3] @ world + camera.viewmat[:3, 3:4]
    return camera.K[:2, :2] @ (cam[:2] / cam[2]) + camera.K[:2, 2:3]


def _pose_feature(rots: np.ndarray) -> np.ndarray:
    """(36,) FLAME's pose-corrective feature vec(R_j - I) for neck (rest), jaw and both eyes; rots: (3, 3, 3) jaw,
    left eye, right eye."""
    return np.concatenate([np.zeros(9), (rots - np.eye(3)).reshape(-1)])


def _joint_rotations(jaw: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """(3, 3, 3) rotations of jaw, left eye and right eye from axis-angle jaw (3,) and eyes (6,)."""
    return axis_angle_to_matrix(np.concatenate([jaw, eyes]).reshape(3, 3))


def _world_points(basis: LandmarkBasis, coeffs: np.ndarray, head: np.ndarray, trans: np.ndarray,
                  joint_rots: np.ndarray) -> np.ndarray:
    """(3, L) landmarks in NumPy (the reference the compiled kernel is checked against).
    coeffs: (C,), head: (3, 3), trans: (3,), joint_rots: (3, 3, 3) jaw, left eye, right eye."""
    rots = np.concatenate([np.eye(3)[None], joint_rots[basis.groups[1:] - JAW]])           # (G, 3, 3)
    x = basis.x0 + (basis.xd.reshape(-1, basis.n_coeffs) @ coeffs).reshape(basis.x0.shape)
    if basis.xp is not None:
        x = x + (basis.xp.reshape(-1, basis.xp.shape[-1]) @ _pose_feature(joint_rots)).reshape(x.shape)
    local = np.concatenate(rots, axis=1) @ x.reshape(-1, x.shape[2])                     # (3, L)
    return head @ local + (basis.j0[0] + basis.jd[0] @ coeffs + trans)[:, None]


def fit_frame(basis: LandmarkBasis, observed: np.ndarray, camera: Camera, init: RigParams,
              settings: FitSettings = FitSettings(), cold: bool = False,
              reference: np.ndarray | None = None) -> FitResult:
    """Fit head pose, jaw and coefficients (and the free identity, if the basis has any) to one frame.

    observed: (L, 2) pixel positions of basis.ids (L = len(basis.ids)).
    init: the previous frame's parameters (warm start and temporal prior) or an initial guess (`cold=True`:
    more iterations, no temporal prior). Gaze is kept from `init`; see :func:`fit_gaze`.
    reference: (3,) axis-angle head rotation where the model matches the landmarks best (the calibration pose);
    the landmarks weigh less as init's rotation turns from it (FitSettings.turn_deg). None: full weight.
    """
    obs = np.ascontiguousarray(observed, dtype=np.float64)
    if obs.shape != (len(basis.ids), 2):
        raise ValueError(f"observed landmarks must be ({len(basis.ids)}, 2), got {obs.shape}")
    eyes = np.asarray(init.eyes_pose, np.float64)
    view = np.asarray(camera.viewmat, np.float64)
    prior = np.concatenate([np.zeros(6), settings.jaw_prior, settings.expr_prior * basis.prior])
    weights = basis.weights * _turn_weight(init.rotation, reference, settings.turn_deg)
    if settings.facing_drop is not None:
        weights = weights * np.sqrt(facing_weights(basis, init, camera, reference, settings.facing_drop))
    linear = np.concatenate([np.zeros(9), np.where(basis.lower >= 0.0, settings.expr_l1 * basis.prior, 0.0)])
    rotation, trans, jaw, coeffs, proj, steps = gauss_newton(
        basis.x0, basis.xd, basis.xp_or_empty, basis.moves, basis.j0[0], basis.jd_root, basis.groups, basis.jaw_slot,
        np.ascontiguousarray(view[:3, :3]), view[:3, 3].copy(), camera.K[[0, 1, 0, 1], [0, 1, 2, 2]].astype(np.float64),
        obs, weights, np.asarray(init.rotation, np.float64), np.asarray(init.translation, np.float64),
        np.asarray(init.jaw_pose, np.float64), eyes, np.clip(_coeffs(basis, init), basis.lower, basis.upper), prior,
        linear, 0.0 if cold else settings.temporal, JAW_LOWER, JAW_UPPER, basis.lower, basis.upper,
        settings.cold_iterations if cold else settings.iterations, settings.tolerance)
    return FitResult(params=_params(basis, rotation, trans, jaw, coeffs, eyes), residual=obs - proj.T,
                     iterations=steps, face_scale=_face_scale(obs))


def facing_cosines(basis: LandmarkBasis, rotation: np.ndarray, translation: np.ndarray,
                   camera: Camera) -> np.ndarray:
    """(L,) cosine of the angle between each landmark's surface normal and its direction to the camera, the head
    at axis-angle `rotation` (3,) and `translation` (3,) (expression at the neutral, joints at rest)."""
    head = axis_angle_to_matrix(np.asarray(rotation, np.float64))
    view = np.asarray(camera.viewmat, np.float64)
    world = head @ basis.rest_local + (basis.j0[0] + np.asarray(translation, np.float64))[:, None]
    to_camera = -(view[:3, :3] @ world + view[:3, 3:4])                   # (3, L) camera frame
    normals = view[:3, :3] @ head @ basis.normals
    return np.sum(normals * to_camera, axis=0) / np.maximum(np.linalg.norm(to_camera, axis=0), 1e-12)


def facing_weights(basis: LandmarkBasis, params: RigParams, camera: Camera, reference: np.ndarray | None,
                   drop: float) -> np.ndarray:
    """(L,) in [0, 1]: 1 - (c_ref - c) / drop, clipped, c the landmarks' facing cosines with the head at `params`,
    c_ref the same at the `reference` rotation (3,) (None: the rest, rotation zero)."""
    now = facing_cosines(basis, params.rotation, params.translation, camera)
    rest = facing_cosines(basis, np.zeros(3) if reference is None else reference, params.translation, camera)
    return np.clip(1.0 - (rest - now) / drop, 0.0, 1.0)


def _turn_weight(rotation: np.ndarray, reference: np.ndarray | None, turn_deg: float) -> float:
    """Square root of 1 / (1 + (θ / turn_deg)²), θ the angle between two axis-angle head rotations (3,), (3,)
    (1 without a reference). The fit squares its residual weights, hence the root."""
    if reference is None:
        return 1.0
    rel = axis_angle_to_matrix(np.asarray(reference, np.float64)).T @ axis_angle_to_matrix(np.asarray(rotation,
                                                                                                       np.float64))
    angle = np.degrees(np.arccos(np.clip((np.trace(rel) - 1.0) / 2.0, -1.0, 1.0)))
    return float(1.0 / np.sqrt(1.0 + (angle / turn_deg) ** 2))


def _face_scale(obs: np.ndarray) -> float:
    """RMS distance of (L, 2) points from their centroid: the face's size in the image, pixels."""
    return float(np.sqrt(np.mean(np.sum((obs - obs.mean(0)) ** 2, axis=1)))) + 1e-9


def _params(basis: LandmarkBasis, rotation: np.ndarray, trans: np.ndarray, jaw: np.ndarray, coeffs: np.ndarray,
            eyes: np.ndarray) -> RigParams:
    shape = basis.identity.copy()
    shape[:basis.n_shape] += coeffs[basis.n_expr:]
    return RigParams(shape=shape, expr=coeffs[:basis.n_expr].copy(), rotation=rotation,
                     neck_pose=np.zeros(3), jaw_pose=jaw.copy(), eyes_pose=eyes.copy(), translation=trans.copy())


def _coeffs(basis: LandmarkBasis, params: RigParams) -> np.ndarray:
    """(C,) the basis coefficients of `params`: expression relative to the basis neutral, then free identity."""
    return np.concatenate([np.asarray(params.expr, np.float64),
                           np.asarray(params.shape, np.float64)[:basis.n_shape] - basis.identity[:basis.n_shape]])


def landmark_points(basis: LandmarkBasis, params: RigParams) -> np.ndarray:
    """(3, L) world positions of basis.ids for `params` (expression relative to basis.neutral, neck at rest)."""
    joint_rots = _joint_rotations(np.asarray(params.jaw_pose, np.float64), np.asarray(params.eyes_pose, np.float64))
    head = axis_angle_to_matrix(np.asarray(params.rotation, np.float64))
    return _world_points(basis, _coeffs(basis, params), head, np.asarray(params.translation, np.float64), joint_rots)


def iris_points(basis: LandmarkBasis, params: RigParams) -> np.ndarray:
    """(3, 2) world positions of the left and right iris centres: each eye's rest offset turned by its eye joint."""
    coeffs = _coeffs(basis, params)
    joints = basis.j0 + basis.jd @ coeffs                                 # (J, 3)
    head = axis_angle_to_matrix(np.asarray(params.rotation, np.float64))
    eye_rots = axis_angle_to_matrix(np.asarray(params.eyes_pose, np.float64).reshape(2, 3))
    local = np.einsum("kab,kb->ka", eye_rots, basis.iris_offsets) + joints[[LEFT_EYE_JOINT, RIGHT_EYE_JOINT]] - joints[0]
    return head @ local.T + (joints[0] + np.asarray(params.translation, np.float64))[:, None]


def fit_gaze(basis: LandmarkBasis, fit: FitResult, landmarks: np.ndarray, camera: Camera,
             settings: FitSettings = FitSettings(), iterations: int = 3) -> RigParams:
    """Eye rotations (pitch, yaw per eye) from the iris centres, relative to each eye's corners.

    fit: this frame's :func:`fit_frame` result; landmarks: (478, 2+) all MediaPipe points in pixels (iris centres
    473 left, 468 right). Each iris centre is matched as an offset from the midpoint of its eye's two corners,
    observed and fitted alike, so head-pose and eye-shape errors cancel (absolute when the rig lacks the corners).
    Returns fit.params with eyes_pose replaced.
    """
    lmk = np.asarray(landmarks, dtype=np.float64)
    if lmk.ndim != 2 or lmk.shape[0] < mp_ids.N_LANDMARKS or lmk.shape[1] < 2:
        raise ValueError(f"gaze needs the 478 refined landmarks, got {lmk.shape}")
    lmk = lmk[:, :2]
    targets = lmk[[mp_ids.LEFT_IRIS[0], mp_ids.RIGHT_IRIS[0]]]
    rows = basis.eye_corner_rows
    if rows is not None:  # observed iris offset from the observed corners, put on the fitted corners
        corners_obs = lmk[basis.ids[rows]].reshape(2, 2, 2).mean(1)
        corners_fit = corners_obs - fit.residual[rows].reshape(2, 2, 2).mean(1)
        targets = targets - corners_obs + corners_fit
    params = fit.params
    coeffs = _coeffs(basis, params)
    view = np.asarray(camera.viewmat, np.float64)
    eyes = gaze_newton(np.asarray(params.rotation, np.float64), np.asarray(params.translation, np.float64),
                       basis.j0 + basis.jd @ coeffs, basis.iris_offsets, np.ascontiguousarray(view[:3, :3]),
                       view[:3, 3].copy(), camera.K[[0, 1, 0, 1], [0, 1, 2, 2]].astype(np.float64), targets,
                       np.asarray(params.eyes_pose, np.float64), settings.gaze_prior, fit.face_scale,
                       GAZE_LIMIT, iterations)
    return replace(params, eyes_pose=eyes)


def initial_pose(basis: LandmarkBasis, observed: np.ndarray, camera: Camera) -> RigParams:
    """A cold-start guess: the neutral face turned to the camera, placed so that its projected size and centre
    match the observed (L, 2) landmarks (rotation: facing the camera)."""
    obs = np.asarray(observed, dtype=np.float64)
    params = RigParams(shape=basis.identity.copy(), expr=np.zeros(basis.n_expr), rotation=np.zeros(3),
                       neck_pose=np.zeros(3), jaw_pose=np.zeros(3), eyes_pose=np.zeros(6), translation=np.zeros(3))
    view_r, view_t = camera.viewmat[:3, :3], camera.viewmat[:3, 3]
    facing = matrix_to_axis_angle(view_r.T @ np.diag([1.0, -1.0, -1.0]))  # rig axes aligned with the camera's
    params.rotation = facing
    pts = landmark_points(basis, params)                                  # (3, L) with zero translation
    cam = view_r @ pts + view_t[:, None]
    model_xy = (cam[:2] - cam[:2].mean(1, keepdims=True)) * camera.K[[0, 1], [0, 1]][:, None]
    model_size = np.sqrt(np.mean(np.sum(model_xy ** 2, axis=0)))          # pixels at depth 1
    depth = model_size / _face_scale(obs)
    centre = obs.mean(0)
    ray = np.array([(centre[0] - camera.K[0, 2]) / camera.K[0, 0], (centre[1] - camera.K[1, 2]) / camera.K[1, 1], 1.0])
    target_cam = ray * depth
    current_cam = cam.mean(1)
    params.translation = view_r.T @ (target_cam - current_cam)
    return params
