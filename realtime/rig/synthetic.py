"""A random FLAME-structured rig of any size, for tests and benchmarks.

The mesh is a UV sphere of head size; blend shapes are smooth random fields;
joints sit where FLAME's do (neck below the centre, jaw forward of it, eyes in
front); skinning weights fall off with distance from each joint. Nothing here
is meant to look like a face: it exercises sizes and code paths.
"""

from __future__ import annotations

import numpy as np

from realtime.rig.model import FLAME_PARENTS, Rig

JOINTS_REST = np.array([[0.0, -0.02, -0.01], [0.0, -0.05, -0.02], [0.0, -0.03, 0.02],
                        [0.03, 0.03, 0.06], [-0.03, 0.03, 0.06]])


def uv_sphere(n_rings: int, n_segments: int, radius: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV sphere: vertices ((n_rings - 1) * n_segments + 2, 3) and faces (2 * n_segments * (n_rings - 1), 3),
    counter-clockwise seen from outside."""
    theta = np.linspace(0, np.pi, n_rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    vertices = radius * np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]])
    faces = []
    top, bottom = 0, len(vertices) - 1
    idx = lambda r, s: 1 + r * n_segments + s % n_segments  # noqa: E731
    for s in range(n_segments):
        faces.append([top, idx(0, s), idx(0, s + 1)])
        faces.append([bottom, idx(n_rings - 2, s + 1), idx(n_rings - 2, s)])
        for r in range(n_rings - 2):
            faces.append([idx(r, s), idx(r + 1, s), idx(r + 1, s + 1)])
            faces.append([idx(r, s), idx(r + 1, s + 1), idx(r, s + 1)])
    return vertices, np.asarray(faces, dtype=np.int32)


def synthetic_rig(n_rings: int = 20, n_segments: int = 24, n_shape: int = 10, n_expr: int = 10,
                  pose_correctives: bool = True, n_landmarks: int = 20, seed: int = 0) -> Rig:
    """A float64 rig on a UV sphere. n_rings=72, n_segments=70 gives 4972 vertices and 9940 faces, near FLAME's size."""
    rng = np.random.default_rng(seed)
    v, faces = uv_sphere(n_rings, n_segments)
    n_v = len(v)

    def smooth_field(k: int, amplitude: float) -> np.ndarray:
        freq = rng.normal(size=(k, 3, 3)) * 20.0
        phase = rng.uniform(0, 2 * np.pi, size=(k, 3))
        field = np.sin(np.einsum("vc,kdc->vdk", v, freq) + phase.T[None])
        return amplitude * field

    dist = np.linalg.norm(v[:, None, :] - JOINTS_REST[None], axis=-1)
    weights = np.exp(-dist / 0.03)
    weights /= weights.sum(1, keepdims=True)
    nearest = np.argsort(dist, axis=0)[:8].T  # (J, 8) vertices closest to each joint
    j_regressor = np.zeros((5, n_v))
    for j in range(5):
        j_regressor[j, nearest[j]] = 1.0 / 8
    n_pose = 36 if pose_correctives else 0
    lmk_faces = rng.choice(len(faces), size=n_landmarks, replace=False)
    lmk_bary = rng.dirichlet(np.ones(3), size=n_landmarks)
    return Rig(v_template=v, shape_dirs=smooth_field(n_shape, 0.002), expr_dirs=smooth_field(n_expr, 0.002),
               pose_dirs=smooth_field(n_pose, 0.0005), j_regressor=j_regressor, weights=weights,
               parents=FLAME_PARENTS.copy(), faces=faces, lmk_ids=np.arange(n_landmarks),
               lmk_faces=lmk_faces.astype(np.int64), lmk_bary=lmk_bary,
               expr_names=tuple(f"expr{i:03d}" for i in range(n_expr)), name="synthetic")
