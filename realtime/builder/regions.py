"""Which part of the head each triangle of the built-in rig is: face, scalp and neck, mouth, teeth, eye, socket.

Read from the mesh's connectivity alone (no generator internals): the eyeballs are the closed
pieces that hold MediaPipe's iris points (468..477), the teeth the closed pieces with no
landmark at all; in the head piece, the vertices past the landmarks split into pockets by where
they join the face: at the face oval (scalp and neck), the inner lip line (mouth cavity) or an
eyelid line (eye socket: the walls round an eyeball, seen between the lids and the eye).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from realtime.face import topology as topo
from realtime.rig.model import Rig

# per-face region labels, in increasing priority (a triangle takes its most specific corner's label)
FACE, SCALP, MOUTH, TEETH, EYE, SOCKET = 0, 1, 2, 3, 4, 5


def _components(n: int, edges: np.ndarray) -> np.ndarray:
    graph = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def vertex_regions(rig: Rig) -> np.ndarray:
    """(V,) region label per vertex of a rig on MediaPipe's face topology (the built-in rig).

    Raises ValueError when the rig's mesh is not laid out that way (no iris points on closed eyeballs).
    """
    faces = np.asarray(rig.faces, dtype=np.int64)
    n = rig.n_vertices
    if n < topo.N_LANDMARKS:
        raise ValueError(f"the builder needs a rig on MediaPipe's 478-point face topology, this one has {n} vertices")
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    piece = _components(n, edges)
    label = np.full(n, FACE, dtype=np.int64)
    head = piece[0]
    iris_pieces = set(piece[topo.N_FACE:topo.N_LANDMARKS].tolist())
    if head in iris_pieces or len(iris_pieces) != 2:
        raise ValueError("the rig's iris points (468..477) do not sit on two eyeballs apart from the head")
    landmark_pieces = set(piece[:topo.N_LANDMARKS].tolist())
    for p in np.unique(piece):
        if p in iris_pieces:
            label[piece == p] = EYE
        elif p not in landmark_pieces:
            label[piece == p] = TEETH
    # the head's extra vertices: pockets joined to the face at the oval, the lips or the eyelids
    extra = (piece == head) & (np.arange(n) >= topo.N_LANDMARKS)
    inner = extra[edges[:, 0]] & extra[edges[:, 1]]
    pocket = _components(n, edges[inner])
    g = topo.groups()
    joins = {SCALP: g["face_oval"], MOUTH: g["lips_inner"],
             SOCKET: np.concatenate([g["eye_left"], g["eye_right"]])}
    for value, ring in joins.items():
        touching = edges[np.isin(edges[:, 0], ring) & extra[edges[:, 1]], 1]
        for p in np.unique(pocket[touching]):
            label[extra & (pocket == p)] = value
    return label


def face_regions(rig: Rig) -> np.ndarray:
    """(F,) region label per face: the label of its most specific corner
    (SOCKET > EYE > TEETH > MOUTH > SCALP > FACE)."""
    corners = vertex_regions(rig)[rig.faces]
    return corners.max(axis=1)


def margin_faces(rig: Rig) -> np.ndarray:
    """(F,) bool: the face-mesh triangles with a corner on an eyelid contour or the inner lip contour, the
    margins of the openings that close (eyes, mouth)."""
    g = topo.groups()
    rims = np.concatenate([g["eye_left"], g["eye_right"], g["lips_inner"]])
    faces = np.asarray(rig.faces, dtype=np.int64)
    on_face = np.all(faces < topo.N_FACE, axis=1)
    return on_face & np.isin(faces, rims).any(axis=1)

