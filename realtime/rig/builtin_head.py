"""The built-in rig's mesh: MediaPipe's face closed into a whole head.

Vertex ids 0..477 are MediaPipe's landmark ids: the 468 face-mesh vertices
and the 10 iris points, which sit on the front of the eyeballs. Around them:

* scalp: the back of the head and the neck, lofted from the face oval over a
  smooth implicit head (a skull ellipsoid, a jaw ellipsoid and a capped neck
  cylinder blended together) to a pole under the neck;
* two eye sockets: pockets behind the eyelid openings that cup the eyeballs;
* two eyeballs: closed spheres whose front is the MediaPipe iris (centre and
  rim) and a cornea-to-sclera cap;
* a mouth cavity: a pocket behind the inner lip line;
* upper and lower teeth: closed arches inside the mouth.

The face, scalp, sockets and mouth form one closed surface; the eyeballs and
the teeth are closed surfaces of their own. Every face is wound
counter-clockwise seen from outside (from inside the cavities, for the pockets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.face import topology as topo
from realtime.rig.builtin_neutral import EYEBALL_RADIUS
from realtime.rig.mesh_ops import boundary_loops, cap, strip

SCALP_CENTER = np.array([0.0, -0.02, -0.005])  # ray origin of the scalp loft, inside skull and neck
SKULL = (np.array([0.0, 0.035, -0.005]), np.array([0.075, 0.105, 0.095]))  # centre, radii (m)
SKULL_POWER = 2.4
JAW = (np.array([0.0, -0.035, 0.015]), np.array([0.058, 0.048, 0.065]))
NECK = (np.array([0.0, -0.01]), np.array([0.054, 0.056]), -0.18, 0.0)  # axis (x, z), radii (x, z), bottom, top y
BLEND = 0.02  # smooth-union width (m)
SCALP_RINGS = 20
SCALP_TILT = np.radians(75)  # the scalp's pole swings down from behind the head to the bottom of the neck
SOCKET_GAP = 0.001  # socket wall distance outside the eyeball (m)
MOUTH_RADII = np.array([0.03, 0.026, 0.034])
MOUTH_DEPTH = 0.022  # cavity centre behind the inner lips (m)
TEETH_DEPTH, TEETH_HALF_WIDTH, TEETH_THICKNESS = 0.03, 0.025, 0.006
UPPER_TEETH_HEIGHT, LOWER_TEETH_HEIGHT = 0.011, 0.009


@dataclass(frozen=True)
class HeadMesh:
    """vertices: (V, 3) float64 metres; faces: (F, 3) int64; parts: name -> vertex ids;
    eye_centers: (2, 3) left then right eyeball centre; mouth_center: (3,) cavity centre."""

    vertices: np.ndarray
    faces: np.ndarray
    parts: dict
    eye_centers: np.ndarray
    mouth_center: np.ndarray


# --- implicit head ---------------------------------------------------------------------------------

def _ellipsoid_sdf(p: np.ndarray, center: np.ndarray, radii: np.ndarray, power: float = 2.0) -> np.ndarray:
    """A (super-)ellipsoid |x/a|^n + |y/b|^n + |z/c|^n = 1; n > 2 squares it off."""
    u = np.abs((p - center) / radii)
    return ((u ** power).sum(-1) ** (1.0 / power) - 1.0) * radii.min()


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def head_sdf(p: np.ndarray) -> np.ndarray:
    """Approximate signed distance (m, negative inside) to the implicit skull + jaw + neck. p: (..., 3)."""
    axis, radii, bottom, top = NECK
    side = (np.linalg.norm((p[..., [0, 2]] - axis) / radii, axis=-1) - 1.0) * radii.min()
    neck = -_smooth_min(-side, p[..., 1] - bottom, 0.01)
    neck = np.maximum(neck, p[..., 1] - top)
    head = _smooth_min(_ellipsoid_sdf(p, *SKULL, SKULL_POWER), _ellipsoid_sdf(p, *JAW), BLEND)
    return _smooth_min(head, neck, BLEND)


def ray_cast(sdf, origin: np.ndarray, directions: np.ndarray, far: float = 0.5, steps: int = 48) -> np.ndarray:
    """Distance along each unit direction (N, 3) from `origin` (inside) to the surface sdf = 0, by bisection: (N,)."""
    lo = np.zeros(len(directions))
    hi = np.full(len(directions), far)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        inside = sdf(origin + mid[:, None] * directions) < 0
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    return 0.5 * (lo + hi)


# --- lofting a boundary loop to a pole behind it ---------------------------------------------------

def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, the cubic 3x^2 - 2x^3 between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _meridians(loop_points: np.ndarray, center: np.ndarray, sdf, tilt: float, samples: int = 400):
    """Surface curves from each loop point's direction to the pole: positions (N, S, 3), arc length (N, S),
    and each loop point's radial offset from the surface (N,).

    A meridian runs on the great circle from its point's direction to -z while
    the whole family turns about x, by `tilt` at the end, so the pole lands at
    -z turned down by `tilt`.
    """
    d = loop_points - center
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    theta0 = np.arccos(np.clip(d[:, 2], -1, 1))
    phi = np.arctan2(d[:, 1], d[:, 0])
    s = np.linspace(0.0, 1.0, samples)
    theta = theta0[:, None] + (np.pi - theta0[:, None]) * s[None]
    dirs = np.stack([np.sin(theta) * np.cos(phi)[:, None], np.sin(theta) * np.sin(phi)[:, None], np.cos(theta)], -1)
    turn = -tilt * s
    y, z = dirs[..., 1].copy(), dirs[..., 2].copy()
    dirs[..., 1] = np.cos(turn) * y - np.sin(turn) * z
    dirs[..., 2] = np.sin(turn) * y + np.cos(turn) * z
    t = ray_cast(sdf, center, dirs.reshape(-1, 3)).reshape(theta.shape)
    pts = center + t[..., None] * dirs
    arc = np.concatenate([np.zeros((len(d), 1)), np.cumsum(np.linalg.norm(np.diff(pts, axis=1), axis=-1), 1)], 1)
    residual = np.linalg.norm(loop_points - center, axis=1) - t[:, 0]
    return pts, arc, residual


def loft(loop: np.ndarray, vertices: np.ndarray, center: np.ndarray, sdf, n_rings: int, blend: float,
         first_vertex: int, steps=(1, 2, 3, 4, 6, 9, 12), tilt: float = 0.0):
    """Close a boundary loop with a surface over `sdf` that ends at a pole on the -z side of `center`
    (turned down about x by `tilt`).

    loop: (N,) vertex ids running along the mesh's free half-edges; vertices:
    their positions (indexable by id). Ring k (1..n_rings) sits at arc fraction
    k / (n_rings + 1) along each meridian; the loop's offset from the surface
    fades out over the first `blend` of the arc. Rings thin out (every 2nd,
    3rd... meridian, from `steps`, dividing N) where they get short. New vertex
    ids start at `first_vertex`. Returns new vertices (M, 3) and faces (K, 3).
    """
    n = len(loop)
    pts, arc, residual = _meridians(vertices[loop], center, sdf, tilt)
    frac = np.arange(1, n_rings + 1) / (n_rings + 1)
    new_pts, faces = [], []
    prev_ids, prev_idx = np.asarray(loop), np.arange(n)
    next_id = first_vertex
    step = 1
    for f in frac:
        target = f * arc[:, -1]
        ring = np.empty((n, 3))
        for i in range(n):
            j = np.searchsorted(arc[i], target[i])
            w = (target[i] - arc[i, j - 1]) / max(arc[i, j] - arc[i, j - 1], 1e-12)
            ring[i] = (1 - w) * pts[i, j - 1] + w * pts[i, j]
            radial = ring[i] - center
            ring[i] += residual[i] * (1.0 - smoothstep(f / blend)) * radial / np.linalg.norm(radial)
        spacing = np.median(arc[:, -1]) / (n_rings + 1)
        perimeter = np.linalg.norm(np.diff(ring[np.r_[np.arange(n), 0]], axis=0), axis=1).sum()
        wanted = max(3, perimeter / spacing)
        for s in steps:
            if s > step and n % s == 0 and n / s >= wanted:
                step = s
        idx = np.arange(0, n, step)
        ids = np.arange(next_id, next_id + len(idx))
        next_id += len(idx)
        faces.append(strip(prev_ids, ids, prev_idx / n, idx / n))
        new_pts.append(ring[idx])
        prev_ids, prev_idx = ids, idx
    new_pts.append(pts[:, -1].mean(0)[None])
    faces.append(cap(prev_ids, next_id))
    return np.concatenate(new_pts), np.concatenate(faces)


# --- eyeballs and teeth ----------------------------------------------------------------------------

def _sphere_ring(center: np.ndarray, radius: float, polar: float, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` points on a sphere at angle `polar` from +z, counter-clockwise seen from +z: positions (count, 3),
    and their params in [0, 1)."""
    param = np.arange(count) / count
    az = 2 * np.pi * param
    p = center + radius * np.stack([np.sin(polar) * np.cos(az), np.sin(polar) * np.sin(az),
                                    np.full(count, np.cos(polar))], -1)
    return p, param


def eyeball(center: np.ndarray, iris: np.ndarray, iris_points: np.ndarray, first_vertex: int):
    """A closed eyeball: the iris fan (MediaPipe centre + rim) and rings on a sphere round `center`.

    iris: (5,) ids, centre then rim counter-clockwise seen from the front;
    iris_points: their (5, 3) positions. Returns (new vertices, faces).
    """
    c, rim = iris[0], iris[1:]
    faces = [np.stack([np.full(4, c), rim, np.roll(rim, -1)], 1)]
    rel = iris_points[1:] - iris_points[0]
    rim_param = np.mod(np.arctan2(rel[:, 1], rel[:, 0]), 2 * np.pi) / (2 * np.pi)
    order = np.argsort(rim_param)
    prev_ids, prev_param = rim[order], rim_param[order]
    new, next_id = [], first_vertex
    for polar, count in ((np.radians(35), 8), (np.radians(65), 16), (np.radians(100), 16), (np.radians(140), 8)):
        pts, param = _sphere_ring(center, EYEBALL_RADIUS, polar, count)
        ids = np.arange(next_id, next_id + count)
        next_id += count
        faces.append(strip(prev_ids, ids, prev_param, param))
        new.append(pts)
        prev_ids, prev_param = ids, param
    new.append((center - np.array([0.0, 0.0, EYEBALL_RADIUS]))[None])
    faces.append(cap(prev_ids, next_id))
    return np.concatenate(new), np.concatenate(faces)


def teeth_arch(front: np.ndarray, top: float, bottom: float, first_vertex: int, segments: int = 16):
    """A closed horseshoe of teeth: a rectangular tube swept along a parabola behind `front` (x=0 point).

    The arch runs from x = -TEETH_HALF_WIDTH to +, its ends TEETH_DEPTH behind
    the front; the tube spans y in [bottom, top]. Returns (vertices (4(S+1), 3), faces).
    """
    x = np.linspace(-TEETH_HALF_WIDTH, TEETH_HALF_WIDTH, segments + 1)
    z = front[2] - TEETH_DEPTH * (x / TEETH_HALF_WIDTH) ** 2
    tangent = np.stack([np.ones_like(x), -2 * TEETH_DEPTH * x / TEETH_HALF_WIDTH ** 2], -1)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    inward = np.stack([tangent[:, 1], -tangent[:, 0]], -1)  # towards the inside of the arch
    outer = np.stack([front[0] + x, z], -1)
    inner = outer + TEETH_THICKNESS * inward
    corners = []  # per section: outer-top, outer-bottom, inner-bottom, inner-top
    for (px, pz), y in ((outer.T, top), (outer.T, bottom), (inner.T, bottom), (inner.T, top)):
        corners.append(np.stack([px, np.full_like(px, y), pz], -1))
    v = np.stack(corners, 1).reshape(-1, 3)
    idx = first_vertex + np.arange(len(v)).reshape(-1, 4)
    faces = []
    for s in range(segments):
        a, b = idx[s], idx[s + 1]
        for k in range(4):
            k1 = (k + 1) % 4
            faces += [(a[k], a[k1], b[k1]), (a[k], b[k1], b[k])]
    for ids, flip in ((idx[0], False), (idx[-1], True)):
        quad = [(ids[0], ids[3], ids[2]), (ids[0], ids[2], ids[1])]
        faces += [t[::-1] for t in quad] if flip else quad
    return v, np.asarray(faces, dtype=np.int64)


# --- assembly --------------------------------------------------------------------------------------

def _loop_matching(loops: list[np.ndarray], ids: np.ndarray) -> np.ndarray:
    """The boundary loop whose vertex set is `ids`."""
    for loop in loops:
        if set(loop.tolist()) == set(ids.tolist()):
            return loop
    raise ValueError("no boundary loop matches the requested contour")


def build_head(points: np.ndarray) -> HeadMesh:
    """The whole head mesh around MediaPipe's 478 landmarks. points: (478, 3) metres in rig space."""
    g = topo.groups()
    face = topo.face_triangles().astype(np.int64)
    loops = boundary_loops(face)
    verts, faces, parts = [np.asarray(points, np.float64)], [face], {"face": np.arange(topo.N_FACE)}
    count = topo.N_LANDMARKS

    def add(name: str, v: np.ndarray, f: np.ndarray) -> None:
        nonlocal count
        verts.append(v)
        faces.append(f)
        parts[name] = np.arange(count, count + len(v))
        count += len(v)

    all_points = np.asarray(points, np.float64)
    v, f = loft(_loop_matching(loops, g["face_oval"]), all_points, SCALP_CENTER, head_sdf, SCALP_RINGS, 0.25, count,
                   tilt=SCALP_TILT)
    add("scalp", v, f)

    eye_centers = []
    for side in ("left", "right"):
        iris = g[f"iris_{side}"]
        center = all_points[iris[0]] - np.array([0.0, 0.0, EYEBALL_RADIUS])
        eye_centers.append(center)
        socket = lambda p, c=center: np.linalg.norm(p - c, axis=-1) - EYEBALL_RADIUS - SOCKET_GAP  # noqa: E731
        v, f = loft(_loop_matching(loops, g[f"eye_{side}"]), all_points, center, socket, 3, 0.3, count, steps=(1, 2))
        add(f"socket_{side}", v, f)
        v, f = eyeball(center, iris, all_points[iris], count)
        add(f"eyeball_{side}", v, f)
        parts[f"eyeball_{side}"] = np.concatenate([iris, parts[f"eyeball_{side}"]])

    lips = g["lips_inner"]
    upper, lower = all_points[13], all_points[14]
    mouth_center = 0.5 * (upper + lower) - np.array([0.0, 0.0, MOUTH_DEPTH])
    cavity = lambda p: _ellipsoid_sdf(p, mouth_center, MOUTH_RADII)  # noqa: E731
    v, f = loft(_loop_matching(loops, lips), all_points, mouth_center, cavity, 5, 0.3, count, steps=(1, 2, 4, 5))
    add("mouth", v, f)

    occlusal = lower[1] + 0.4 * (upper[1] - lower[1])
    front = np.array([0.0, occlusal, min(upper[2], lower[2]) - 0.004])
    v, f = teeth_arch(front, occlusal + 0.0003 + UPPER_TEETH_HEIGHT, occlusal + 0.0003, count)
    add("teeth_upper", v, f)
    v, f = teeth_arch(front, occlusal - 0.0003, occlusal - 0.0003 - LOWER_TEETH_HEIGHT, count)
    add("teeth_lower", v, f)

    return HeadMesh(vertices=np.concatenate(verts), faces=np.concatenate(faces), parts=parts,
                    eye_centers=np.stack(eye_centers), mouth_center=mouth_center)
