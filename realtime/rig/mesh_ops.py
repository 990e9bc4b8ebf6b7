"""Small triangle-mesh tools for building rigs: strips, caps, boundaries, neighbourhoods, smooth fields.

Faces are (F, 3) integer arrays wound counter-clockwise seen from outside.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from scipy.sparse.linalg import spsolve


class MeshError(ValueError):
    """A mesh that is not the oriented edge-manifold a step needs."""


def strip(loop_a: np.ndarray, loop_b: np.ndarray, param_a: np.ndarray | None = None,
          param_b: np.ndarray | None = None) -> np.ndarray:
    """Triangles joining two closed loops running side by side in the same direction.

    loop_a, loop_b: (Na,), (Nb,) vertex ids; param_a, param_b: their positions
    along the loop in [0, 1), increasing (default: evenly spaced); a_0 and b_0
    should sit side by side. If a_i -> a_(i+1) is a boundary edge of an oriented
    mesh, the strip continues that mesh with the same orientation and leaves
    b_j -> b_(j+1) as the new boundary. Returns (Na + Nb, 3) int64.
    """
    na, nb = len(loop_a), len(loop_b)
    pa = np.arange(na) / na if param_a is None else np.asarray(param_a, float)
    pb = np.arange(nb) / nb if param_b is None else np.asarray(param_b, float)
    pa, pb = np.append(pa, 1.0 + pa[0]), np.append(pb, 1.0 + pb[0])
    faces, i, j = [], 0, 0
    while i < na or j < nb:
        advance_a = j >= nb or (i < na and pa[i + 1] <= pb[j + 1])
        a, a1, b, b1 = loop_a[i % na], loop_a[(i + 1) % na], loop_b[j % nb], loop_b[(j + 1) % nb]
        if advance_a:
            faces.append((a1, a, b))
            i += 1
        else:
            faces.append((a, b, b1))
            j += 1
    return np.asarray(faces, dtype=np.int64)


def cap(loop: np.ndarray, pole: int) -> np.ndarray:
    """A fan closing the boundary loop (running b_j -> b_(j+1)) at vertex `pole`. Returns (N, 3) int64."""
    loop = np.asarray(loop)
    return np.stack([np.roll(loop, -1), loop, np.full_like(loop, pole)], axis=1).astype(np.int64)


def undirected_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct edges (E, 2) with smaller id first, and how many faces use each (E,)."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    edges, counts = np.unique(e, axis=0, return_counts=True)
    return edges, counts


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Boundary loops of an oriented edge-manifold mesh, each (N,) int64 following its free half-edges.

    Raises MeshError if an edge has more than two faces, if two faces run an edge
    the same way (inconsistent orientation), or if a boundary vertex is pinched.
    """
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    counts = Counter(map(tuple, half.tolist()))
    if max(counts.values()) > 1:
        raise MeshError("two faces run an edge in the same direction (inconsistent orientation or a duplicate face)")
    _, use = undirected_edges(faces)
    if use.max() > 2:
        raise MeshError(f"{int((use > 2).sum())} edges have more than two faces")
    nxt = {}
    for a, b in counts:
        if (b, a) not in counts:
            if a in nxt:
                raise MeshError(f"boundary vertex {a} is pinched (two boundary loops meet there)")
            nxt[a] = b
    loops = []
    while nxt:
        start = min(nxt)
        loop = [start]
        cur = nxt.pop(start)
        while cur != start:
            loop.append(cur)
            cur = nxt.pop(cur)
        loops.append(np.array(loop, dtype=np.int64))
    return loops


def adjacency(faces: np.ndarray, n_vertices: int, vertices: np.ndarray | None = None) -> sp.csr_matrix:
    """(V, V) symmetric sparse matrix of mesh edges: 1 per edge, or its length when `vertices` (V, 3) is given."""
    edges, _ = undirected_edges(faces)
    if vertices is None:
        w = np.ones(len(edges))
    else:
        w = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    a = sp.coo_matrix((w, (edges[:, 0], edges[:, 1])), shape=(n_vertices, n_vertices))
    return (a + a.T).tocsr()


def geodesic_distance(vertices: np.ndarray, faces: np.ndarray, sources, limit: float = np.inf) -> np.ndarray:
    """Shortest distance along mesh edges from the nearest of `sources` to every vertex: (V,); inf beyond `limit`."""
    graph = adjacency(faces, len(vertices), vertices)
    return dijkstra(graph, directed=False, indices=np.atleast_1d(sources), min_only=True, limit=limit)


def uniform_laplacian(faces: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    """(V, V) graph Laplacian D - A of the mesh edges (positive semi-definite)."""
    a = adjacency(faces, n_vertices)
    return (sp.diags(np.asarray(a.sum(1)).ravel()) - a).tocsr()


def smooth_fill(laplacian: sp.csr_matrix, fixed: np.ndarray, values: np.ndarray, order: int = 2) -> np.ndarray:
    """Harmonic (order 1) or biharmonic (order 2) interpolation of fixed vertex values over the rest.

    laplacian: (V, V); fixed: (K,) vertex ids with values (K, C). Free vertices
    solve L^order x = 0. Returns (V, C). Every free vertex must be connected to
    some fixed vertex.
    """
    n = laplacian.shape[0]
    values = np.asarray(values, float).reshape(len(fixed), -1)
    op = laplacian if order == 1 else (laplacian @ laplacian).tocsr()
    is_fixed = np.zeros(n, bool)
    is_fixed[fixed] = True
    free = np.flatnonzero(~is_fixed)
    out = np.zeros((n, values.shape[1]))
    out[fixed] = values
    if len(free):
        rhs = -op[free][:, fixed] @ values
        solved = spsolve(op[free][:, free].tocsc(), rhs)
        out[free] = solved.reshape(len(free), -1)
    return out
