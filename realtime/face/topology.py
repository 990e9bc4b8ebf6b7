"""MediaPipe face-mesh topology: triangles, contours and named vertex groups.

MediaPipe publishes its face mesh only as an edge list (``FACEMESH_TESSELATION``,
2556 directed edges). Each triangle of the canonical mesh contributes its three
edges in its own winding order, (a, b), (b, c), (c, a), and adjacent triangles
share an edge in opposite directions. So every directed edge lies in exactly
one triangle, which is an exact-cover problem over the directed 3-cycles: we
solve it by unit propagation (a directed edge with one remaining candidate
fixes that candidate). The result is 852 triangles over the 468 face vertices,
one consistent winding, and an edge-manifold surface whose only boundaries are
the face oval (36 edges), the inner lip line (20) and the two eyelid lines
(16 each). The undirected 3-cliques (854) are not the faces: some cliques are
not triangles and some triangles sit in several cliques.

Landmark ids 468..477 are the iris points (refine_landmarks=True): 468 and 473
are the right and left iris centres, 469..472 and 474..477 their rims.
"Left" and "right" are the subject's, as in MediaPipe's own names.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np

from realtime.face.landmark_ids import (LEFT_IRIS_CENTER, LEFT_IRIS_RIM, N_FACE, N_LANDMARKS,  # noqa: F401
                                        RIGHT_IRIS_CENTER, RIGHT_IRIS_RIM)


def _connections():
    """MediaPipe's connection lists (imported on first use: importing mediapipe takes a second or two)."""
    from mediapipe.python.solutions import face_mesh_connections

    return face_mesh_connections


class TopologyError(RuntimeError):
    """MediaPipe's published edge list does not decompose into triangles as expected."""


def _directed_triangle_candidates(edges: set[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Every directed 3-cycle (a, b, c) whose edges (a, b), (b, c), (c, a) are all in `edges`, smallest id first."""
    successors = defaultdict(set)
    for a, b in edges:
        successors[a].add(b)
    found = set()
    for a, b in edges:
        for c in successors[b]:
            if (c, a) in edges:
                t = (a, b, c)
                k = t.index(min(t))
                found.add(t[k:] + t[:k])
    return sorted(found)


def _cycle_edges(t: tuple[int, int, int]) -> tuple[tuple[int, int], ...]:
    return (t[0], t[1]), (t[1], t[2]), (t[2], t[0])


def triangles_from_directed_edges(edges: set[tuple[int, int]]) -> np.ndarray:
    """The triangles whose directed edges cover `edges` exactly once. Returns (F, 3) int32, sorted.

    Raises TopologyError when unit propagation leaves an edge uncovered.
    """
    candidates = _directed_triangle_candidates(edges)
    by_edge = defaultdict(list)
    for t in candidates:
        for e in _cycle_edges(t):
            by_edge[e].append(t)
    alive = set(candidates)
    chosen, covered = [], set()
    progress = True
    while progress:
        progress = False
        for e in sorted(edges):
            if e in covered:
                continue
            options = [t for t in by_edge[e] if t in alive]
            if len(options) != 1:
                continue
            t = options[0]
            chosen.append(t)
            for e2 in _cycle_edges(t):
                covered.add(e2)
                alive.difference_update(by_edge[e2])
            progress = True
    if len(covered) != len(edges):
        raise TopologyError(f"{len(edges) - len(covered)} directed edges are in no unambiguous triangle")
    return np.array(sorted(chosen), dtype=np.int32)


@lru_cache(maxsize=1)
def face_triangles() -> np.ndarray:
    """The 852 triangles of MediaPipe's 468-vertex face mesh: (852, 3) int32.

    Wound counter-clockwise seen from in front of the face in a right-handed
    frame with y up and z towards the viewer (the rig frame), so normals point
    out of the face.
    """
    faces = triangles_from_directed_edges(set(_connections().FACEMESH_TESSELATION))
    # By the right-hand rule these normals point to the camera in MediaPipe's image frame
    # (x right, y down, z away); the rig frame flips y and z, which keeps handedness.
    faces.setflags(write=False)
    return faces


def ordered_loop(edges) -> np.ndarray:
    """Vertex ids of a closed contour given as an unordered edge set: (N,) int64.

    Starts at the smallest id and walks to its smaller-id neighbour first.
    """
    nbrs = defaultdict(list)
    for a, b in edges:
        nbrs[a].append(b)
        nbrs[b].append(a)
    if any(len(n) != 2 for n in nbrs.values()):
        raise TopologyError("edge set is not a single closed loop")
    start = min(nbrs)
    loop, prev, cur = [start], None, start
    nxt = min(nbrs[start])
    while nxt != start:
        loop.append(nxt)
        prev, cur = cur, nxt
        a, b = nbrs[cur]
        nxt = b if a == prev else a
    if len(loop) != len(nbrs):
        raise TopologyError("edge set holds more than one loop")
    return np.array(loop, dtype=np.int64)


def open_path(edges, start: int, end: int) -> np.ndarray:
    """Vertex ids along an open contour from `start` to `end` (edge set forms a simple path): (N,) int64."""
    nbrs = defaultdict(list)
    for a, b in edges:
        nbrs[a].append(b)
        nbrs[b].append(a)
    path, prev = [start], None
    while path[-1] != end:
        options = [n for n in nbrs[path[-1]] if n != prev]
        if len(options) != 1:
            raise TopologyError(f"edge set is not a simple path from {start} to {end}")
        prev = path[-1]
        path.append(options[0])
    return np.array(path, dtype=np.int64)


def _lip_edges(inner: bool) -> set[tuple[int, int]]:
    inner_ids = {78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415}
    return {e for e in _connections().FACEMESH_LIPS if (e[0] in inner_ids) == inner}


@lru_cache(maxsize=1)
def groups() -> dict[str, np.ndarray]:
    """Named vertex-id groups of the face mesh (subject's left/right), each (N,) int64.

    Contours walk from one corner to the other:
    face_oval                       closed loop, 36 ids
    lips_inner / lips_outer         closed loops, 20 ids each
    lip_upper_inner / lip_lower_inner, lip_upper_outer / lip_lower_outer: mouth corner to corner
    eye_left / eye_right            closed eyelid loops, 16 ids
    eyelid_upper_left / eyelid_lower_left (and _right): eye corner to eye corner, 9 ids
    brow_left / brow_right          the eyebrow contours (both lines)
    iris_left / iris_right          iris centre then rim, 5 ids
    """
    fmc = _connections()
    g = {"face_oval": ordered_loop(fmc.FACEMESH_FACE_OVAL),
         "lips_inner": ordered_loop(_lip_edges(True)),
         "lips_outer": ordered_loop(_lip_edges(False)),
         "eye_left": ordered_loop(fmc.FACEMESH_LEFT_EYE),
         "eye_right": ordered_loop(fmc.FACEMESH_RIGHT_EYE)}
    upper_inner = {13, 82, 81, 80, 191, 312, 311, 310, 415}
    upper_outer = {185, 40, 39, 37, 0, 267, 269, 270, 409}
    inner, outer = _lip_edges(True), _lip_edges(False)
    g["lip_upper_inner"] = open_path({e for e in inner if e[0] in upper_inner or e[1] in upper_inner}, 78, 308)
    g["lip_lower_inner"] = open_path({e for e in inner if e[0] not in upper_inner and e[1] not in upper_inner}, 78, 308)
    g["lip_upper_outer"] = open_path({e for e in outer if e[0] in upper_outer or e[1] in upper_outer}, 61, 291)
    g["lip_lower_outer"] = open_path({e for e in outer if e[0] not in upper_outer and e[1] not in upper_outer}, 61, 291)
    eyes = {"left": (fmc.FACEMESH_LEFT_EYE, 362, 263, {466, 388, 387, 386, 385, 384, 398}),
            "right": (fmc.FACEMESH_RIGHT_EYE, 133, 33, {246, 161, 160, 159, 158, 157, 173})}
    for side, (edges, inner_corner, outer_corner, upper) in eyes.items():
        g[f"eyelid_upper_{side}"] = open_path({e for e in edges if e[0] in upper or e[1] in upper},
                                              inner_corner, outer_corner)
        g[f"eyelid_lower_{side}"] = open_path({e for e in edges if e[0] not in upper and e[1] not in upper},
                                              inner_corner, outer_corner)
    g["brow_left"] = np.array(sorted({v for e in fmc.FACEMESH_LEFT_EYEBROW for v in e}), dtype=np.int64)
    g["brow_right"] = np.array(sorted({v for e in fmc.FACEMESH_RIGHT_EYEBROW for v in e}), dtype=np.int64)
    g["iris_left"] = np.array((LEFT_IRIS_CENTER,) + LEFT_IRIS_RIM, dtype=np.int64)
    g["iris_right"] = np.array((RIGHT_IRIS_CENTER,) + RIGHT_IRIS_RIM, dtype=np.int64)
    for a in g.values():
        a.setflags(write=False)
    return g
