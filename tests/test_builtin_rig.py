import os
from collections import defaultdict

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from realtime.avatar.binding import triangle_frames
from realtime.geometry import axis_angle_to_matrix
from realtime.rig import builtin, lbs
from realtime.face import topology as topo
from realtime.rig.builtin_shapes import SHAPE_NAMES
from realtime.face.landmark_ids import NOSE
from realtime.rig.builtin_neutral import EYEBALL_RADIUS, INTERPUPIL_DISTANCE, metric_transform
from realtime.rig.builtin_expressions import LIP_CLOSE
from realtime.rig.builtin_relax import CORNER_CARRY, NEUTRAL_LIP_GAP, RELAX_RADIUS
from realtime.rig.mesh_ops import adjacency, boundary_loops, strip
from realtime.rig.model import FLAME_PARENTS, RigParams

REQUIRED_EXPRESSIONS = {
    "eyeBlinkLeft", "eyeBlinkRight", "eyeWideLeft", "eyeWideRight", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "browInnerUp", "browDownLeft", "browDownRight", "browOuterUpLeft",
    "browOuterUpRight", "mouthPucker", "mouthFunnel", "cheekPuff", "mouthLeft", "mouthRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthPressLeft", "mouthPressRight", "noseSneerLeft",
    "noseSneerRight", "jawForward"}

# Landmark regions (subject's left = +x).
G = topo.groups()
REGIONS = {
    "eye_l": np.concatenate([G["eye_left"]]), "eye_r": np.concatenate([G["eye_right"]]),
    "brow_l": G["brow_left"], "brow_r": G["brow_right"],
    "mouth": np.concatenate([G["lips_inner"], G["lips_outer"]]),
    "corner_l": np.array([291, 308]), "corner_r": np.array([61, 78]),
    "nose": np.array([1, 4, 5, 195, 197]), "forehead": np.array([10, 151, 9]), "chin": np.array([152, 175]),
}
# expression -> (regions it must move by at least 1 mm somewhere, regions it must leave exactly still)
LOCALITY = {
    "eyeBlinkLeft": ({"eye_l"}, {"eye_r", "mouth", "brow_l", "brow_r", "nose"}),
    "eyeBlinkRight": ({"eye_r"}, {"eye_l", "mouth", "brow_l", "brow_r", "nose"}),
    "eyeWideLeft": ({"eye_l"}, {"eye_r", "mouth"}),
    "browInnerUp": ({"brow_l", "brow_r"}, {"mouth", "chin", "nose"}),
    "browDownLeft": ({"brow_l"}, {"brow_r", "mouth", "eye_l"}),
    "browOuterUpRight": ({"brow_r"}, {"brow_l", "mouth"}),
    "mouthSmileLeft": ({"corner_l"}, {"brow_l", "brow_r", "eye_l", "eye_r", "forehead"}),
    "mouthSmileRight": ({"corner_r"}, {"brow_l", "brow_r", "eye_l", "eye_r", "forehead"}),
    "mouthFrownLeft": ({"corner_l"}, {"brow_l", "eye_l", "forehead"}),
    "mouthPucker": ({"mouth"}, {"eye_l", "eye_r", "brow_l", "forehead"}),
    "cheekPuff": (set(), {"eye_l", "eye_r", "brow_l", "forehead"}),
    "noseSneerLeft": (set(), {"eye_r", "brow_r", "chin"}),
    "mouthClose": ({"mouth"}, {"eye_l", "eye_r", "brow_l", "brow_r", "forehead"}),
    "mouthRollLower": ({"mouth"}, {"eye_l", "brow_l", "forehead", "nose"}),
    "jawForward": ({"chin"}, {"eye_l", "brow_l", "forehead", "nose"}),
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """The built-in rig through its public entry point, with the disk cache in a temporary folder."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    builtin._builtin.cache_clear()
    try:
        yield builtin.builtin_rig()
    finally:
        builtin._builtin.cache_clear()
        if old is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="module")
def photo_points():
    """MediaPipe on the astronaut photo, run here independently of the generator."""
    from skimage import data

    from realtime.face.detector import LandmarkDetector

    with LandmarkDetector(static_image_mode=True) as detector:
        return detector.detect_largest(data.astronaut()).points


def posed(rig, **kw):
    params = RigParams.neutral(rig, np.float64)
    for k, value in kw.items():
        setattr(params, k, np.asarray(value, np.float64))
    return lbs.forward(rig, params).vertices


def component_ids(rig):
    return connected_components(adjacency(rig.faces, rig.n_vertices), directed=False)[1]


# --- topology -------------------------------------------------------------------------------------

def test_face_triangles_use_every_tessellation_edge_once_in_its_direction():
    faces = topo.face_triangles()
    assert faces.shape == (852, 3)
    half = {(int(a), int(b)) for f in faces for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    assert len(half) == 3 * len(faces)
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION
    assert half == set(FACEMESH_TESSELATION)


def test_face_mesh_holes_are_exactly_oval_mouth_and_eyes():
    loops = boundary_loops(topo.face_triangles().astype(np.int64))
    got = {frozenset(loop.tolist()) for loop in loops}
    want = {frozenset(G[k].tolist()) for k in ("face_oval", "lips_inner", "eye_left", "eye_right")}
    assert got == want
    assert sorted(len(loop) for loop in loops) == [16, 16, 20, 36]


def test_triangles_from_directed_edges_rejects_an_ambiguous_list():
    # Two triangles on the same three vertices, one each way: no unique cover.
    # Every directed edge of four mutually joined vertices: a tetrahedron wound either way covers them.
    with pytest.raises(topo.TopologyError):
        topo.triangles_from_directed_edges({(a, b) for a in range(4) for b in range(4) if a != b})
    with pytest.raises(topo.TopologyError):  # an edge on no triangle
        topo.triangles_from_directed_edges({(0, 1), (1, 2), (2, 0), (3, 4)})
    # A two-sided triangle is a (tiny) closed surface: both windings are found.
    both = topo.triangles_from_directed_edges({(0, 1), (1, 2), (2, 0), (1, 0), (2, 1), (0, 2)})
    assert both.tolist() == [[0, 1, 2], [0, 2, 1]]


def test_strip_joins_loops_of_different_sizes_into_an_oriented_band():
    a, b = np.arange(4), 4 + np.arange(8)
    band = strip(a, b)
    assert len(band) == 12
    loops = boundary_loops(band)
    assert sorted(len(x) for x in loops) == [4, 8]


def test_whole_head_is_closed_oriented_and_vertex_manifold(rig):
    faces = rig.faces
    assert boundary_loops(faces) == []  # closed, every edge has two faces running it both ways
    assert np.array_equal(np.unique(faces), np.arange(rig.n_vertices))  # no stray vertices
    # Around every vertex the faces form one fan (a single cycle of edges).
    ring = defaultdict(dict)
    for a, b, c in faces.tolist():
        ring[a][b] = c
        ring[b][c] = a
        ring[c][a] = b
    for v, succ in ring.items():
        start = next(iter(succ))
        cur, steps = succ[start], 1
        while cur != start:
            cur, steps = succ[cur], steps + 1
        assert steps == len(succ), f"vertex {v} is not manifold"
    # Five closed surfaces: skin with its pockets, two eyeballs, two teeth; each a sphere with outward normals.
    comp = component_ids(rig)
    assert comp.max() + 1 == 5
    v = rig.v_template
    for k in range(5):
        f = faces[comp[faces[:, 0]] == k]
        n_v = len(np.unique(f))
        n_e = len(f) * 3 // 2
        assert n_v - n_e + len(f) == 2
        volume = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
        assert volume > 0


def test_parts_have_sensible_sizes_and_no_degenerate_triangles(rig):
    v, faces = rig.v_template, rig.faces
    comp = component_ids(rig)
    sizes = sorted(np.bincount(comp))
    assert sizes[-1] > 1000 and rig.n_vertices < 3000
    area = 0.5 * np.linalg.norm(np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]]), axis=1)
    assert area.min() > 1e-9
    frames = triangle_frames(v, faces)
    assert np.all(np.isfinite(frames.rotations)) and np.all(frames.scales > 0)
    # Head-sized: about 15 cm wide, 23 cm tall without the neck, 20 cm deep.
    skin = v[comp == comp[0]]
    assert 0.13 < np.ptp(skin[:, 0]) < 0.18
    assert 0.18 < np.ptp(skin[:, 2]) < 0.24
    assert 0.28 < np.ptp(skin[:, 1]) < 0.36


def test_face_normals_point_out_of_the_face(rig):
    v = rig.v_template
    f = rig.faces[:852]
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert np.mean(n[:, 2] > 0) > 0.95
    assert n.sum(0)[2] / np.linalg.norm(n.sum(0)) > 0.9


# --- template and landmarks -----------------------------------------------------------------------

def test_template_is_the_photos_face_with_the_mouth_at_rest(rig, photo_points):
    transform = builtin.builtin_landmark_transform()
    photo = transform.apply(photo_points)
    got = lbs.landmarks(rig, rig.v_template)
    assert np.array_equal(rig.lmk_ids, np.arange(478))
    # Eyes, brows, nose and the face away from the mouth are the photo's MediaPipe points, which the generator
    # rounds to 1/64 px (0.02 mm here).
    mouth = 0.5 * (photo[13] + photo[14])
    reach = 0.5 * (photo[291, 0] - photo[61, 0]) + CORNER_CARRY + RELAX_RADIUS  # the relaxation's reach
    far = np.flatnonzero(np.linalg.norm(photo - mouth, axis=1) > reach)
    assert len(far) > 40
    still = np.concatenate([G["eye_left"], G["eye_right"], G["brow_left"], G["brow_right"], list(NOSE), far,
                            np.arange(468, 478)])
    rounding = np.sqrt(3) * 0.5 / 64 * transform.scale
    np.testing.assert_allclose(got[still], photo[still], atol=rounding)
    assert np.abs(got[still] - photo[still]).max() > 0  # rounded, so not bit-identical
    # The photo smiles with parted lips and raised corners; the template's lips are closed and its corners
    # level with them, the mouth as wide as the photo's.
    assert photo[14, 1] < photo[13, 1] - 0.005
    stomion = 0.5 * (got[13, 1] + got[14, 1])
    assert min(photo[61, 1], photo[291, 1]) > stomion + 0.001
    upper, lower = G["lip_upper_inner"], G["lip_lower_inner"]
    np.testing.assert_allclose(got[upper, 1] - got[lower, 1], NEUTRAL_LIP_GAP * (np.arange(len(upper)) % 10 > 0),
                               atol=1e-9)
    assert got[61, 1] == pytest.approx(stomion) and got[291, 1] == pytest.approx(stomion)
    np.testing.assert_allclose(got[[61, 291], 0], photo[[61, 291], 0], atol=rounding)
    # The embedding is exact: each landmark is a triangle corner of its own vertex with weight 1.
    corner = rig.faces[rig.lmk_faces, np.argmax(rig.lmk_bary, axis=1)]
    assert np.array_equal(corner, np.arange(478)) and np.all(rig.lmk_bary.max(1) == 1.0)


def test_metric_transform_is_a_similarity_that_makes_the_face_upright(rig, photo_points):
    t = builtin.builtin_landmark_transform()
    np.testing.assert_allclose(t.rotation @ t.rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(t.rotation) == pytest.approx(1.0)
    v = rig.v_template
    assert np.linalg.norm(v[473] - v[468]) == pytest.approx(INTERPUPIL_DISTANCE)
    # Mirror pairs straddle x = 0 at equal height and depth; left (+x) is the subject's left.
    _, mirror = metric_transform(photo_points)
    assert np.array_equal(mirror[mirror], np.arange(478))
    assert {int(i) for i in mirror[G["eye_left"]]} == set(G["eye_right"].tolist())
    assert np.abs(v[:478, 0] + v[mirror, 0]).mean() < 0.002
    assert np.abs(v[:478, 1:] - v[mirror, 1:]).mean() < 0.002
    assert v[473, 0] > 0 > v[468, 0]
    # Upright and facing +z: forehead above the chin, the nose tip the most forward point of the face.
    assert v[10, 1] - v[152, 1] > 0.13
    assert np.argmax(v[:468, 2]) in (1, 4, 5, 19, 44, 274)
    assert abs(v[168, 2] - v[199, 2]) < 1e-9  # the nasion-chin line is vertical


# --- joints and skinning --------------------------------------------------------------------------

def test_joints_sit_where_flames_do_and_the_regressor_finds_them(rig):
    assert np.array_equal(rig.parents, FLAME_PARENTS)
    assert np.all(rig.j_regressor >= 0)
    np.testing.assert_allclose(rig.j_regressor.sum(1), 1.0)
    joints = rig.j_regressor @ rig.v_template
    v = rig.v_template
    root, neck, jaw, eye_l, eye_r = joints
    np.testing.assert_allclose(eye_l, v[473] - [0, 0, EYEBALL_RADIUS], atol=1e-12)
    np.testing.assert_allclose(eye_r, v[468] - [0, 0, EYEBALL_RADIUS], atol=1e-12)
    for j in (root, neck, jaw):
        assert abs(j[0]) < 1e-9
        assert j[1] < eye_l[1] and j[2] < v[1, 2] - 0.06  # below the eyes, well behind the nose tip
    assert neck[1] < root[1] and jaw[2] > neck[2]
    assert v[152, 1] < jaw[1] < v[13, 1] + 0.03  # jaw hinge between the eyes and the chin
    # The eye joints move with the eyeballs under identity shapes (regressed from the eyeball vertices).
    spread = rig.shape_dirs[:, :, list(SHAPE_NAMES).index("eye_spacing")]
    moved = rig.j_regressor @ (rig.v_template + spread)
    assert moved[3, 0] - joints[3, 0] > 0.001 and moved[4, 0] - joints[4, 0] < -0.001


def test_skinning_weights_partition_the_head(rig):
    w = rig.weights
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(1), 1.0)
    comp = component_ids(rig)
    eye_l, eye_r = comp[473], comp[468]
    assert np.all(w[comp == eye_l, 3] == 1) and np.all(w[comp == eye_r, 4] == 1)
    assert np.all(w[(comp != eye_l) & (comp != eye_r)][:, 3:] == 0)  # eyes drive only the eyeballs
    assert np.all(w[G["lip_upper_inner"][1:-1], 2] == 0)
    # the lower lip goes with the jaw over its middle and eases down towards the corners (61 left in the image)
    lip = np.array(G["lip_lower_outer"])[1:-1]  # the corners (61, 291) themselves are between the lips
    share = w[lip, 2]
    middle = np.abs(rig.v_template[lip, 0] - rig.v_template[[61, 291], 0].mean()) < 0.25 * np.ptp(rig.v_template[lip, 0])
    assert np.all(share[middle] == 1) and 0.5 <= share.min() < 0.7 and share[lip == 17] == 1
    assert w[152, 2] == 1 and w[10, 2] == 0 and w[1, 2] == 0
    bottom = rig.v_template[:, 1] < -0.175
    assert bottom.sum() > 10 and np.all(w[bottom, 0] == 1)


def test_jaw_rotation_opens_the_mouth_and_leaves_the_upper_head(rig):
    rest = rig.v_template
    opened = posed(rig, jaw_pose=[0.3, 0.0, 0.0])
    move = np.linalg.norm(opened - rest, axis=1)
    assert opened[152, 1] < rest[152, 1] - 0.01 and opened[17, 1] < rest[17, 1] - 0.01
    assert np.linalg.norm(opened[14] - opened[13]) > np.linalg.norm(rest[14] - rest[13]) + 0.01
    still = [10, 151, 9, 1, 4, 13, 0, 468, 473, 33, 263, 105, 334]
    assert move[still].max() < 1e-12
    assert move[rest[:, 1] > 0.05].max() < 1e-12  # nothing above the eyes
    comp = component_ids(rig)
    teeth = [k for k in np.unique(comp) if k not in (comp[0], comp[468], comp[473])]
    lower = max(teeth, key=lambda k: -rest[comp == k, 1].mean())
    assert move[comp == lower].min() > 0.003  # the lower teeth go with the jaw
    # The cheeks between share the motion partially.
    assert 0.0 < move[[192, 416]].min() < move[152]


def test_opened_mouth_shows_its_cavity_not_a_hole(rig):
    """Rays from the front through the open mouth first meet the inside of the mouth, facing them, just
    behind the lips; through a hole they would meet the back of the head from inside (facing away)."""
    v = posed(rig, jaw_pose=[0.35, 0.0, 0.0])
    f = rig.faces
    e1, e2 = v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]
    d = np.array([0.0, 0.0, -1.0])
    p = np.cross(d, e2)
    det = (e1 * p).sum(1)  # = -dot(d, normal): positive when the triangle faces the ray
    ok = np.abs(det) > 1e-15
    lips_z = v[[13, 14], 2].min()
    for x in np.linspace(-0.012, 0.012, 5):
        for y in np.linspace(v[14, 1] + 0.002, v[13, 1] - 0.002, 5):
            s = np.array([x, y, 0.3]) - v[f[:, 0]]
            q = np.cross(s, e1)
            with np.errstate(divide="ignore", invalid="ignore"):
                u, w, t = (s * p).sum(1) / det, (q @ d) / det, (q * e2).sum(1) / det
                hit = ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 0)
            first = np.flatnonzero(hit)[np.argmin(t[hit])]
            assert det[first] > 0
            assert 0.3 - t[first] > lips_z - 0.06


def test_rigid_head_motion_moves_every_vertex_rigidly(rig):
    rng = np.random.default_rng(1)
    expr = rng.normal(0, 0.3, rig.n_expr)
    shape = rng.normal(0, 1.0, rig.n_shape)
    kw = dict(expr=expr, shape=shape, jaw_pose=[0.2, 0.02, 0.0], neck_pose=[0.1, -0.2, 0.05],
              eyes_pose=[0.1, 0.2, 0.0, 0.1, 0.2, 0.0])
    base = posed(rig, **kw)
    rotvec, shift = np.array([0.3, -0.5, 0.2]), np.array([0.01, -0.02, 0.5])
    moved = posed(rig, rotation=rotvec, translation=shift, **kw)
    joints = rig.j_regressor @ (rig.v_template + rig.shape_dirs @ shape + rig.expr_dirs @ expr)
    r = axis_angle_to_matrix(rotvec)
    expected = (base - joints[0]) @ r.T + joints[0] + shift  # FLAME rotates about the root joint
    np.testing.assert_allclose(moved, expected, atol=1e-12)


def test_float32_rig_matches_float64(rig):
    rng = np.random.default_rng(2)
    params = RigParams.neutral(rig, np.float64)
    params.expr = rng.uniform(0, 1, rig.n_expr)
    params.shape = rng.normal(0, 1, rig.n_shape)
    params.jaw_pose = np.array([0.25, 0.0, 0.0])
    params.rotation = np.array([0.1, 0.4, -0.1])
    params.translation = np.array([0.0, 0.0, 0.6])
    full = lbs.forward(rig, params).vertices
    fast_rig = rig.astype(np.float32)
    fast = lbs.forward(fast_rig, params).vertices
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, full, atol=2e-6)


def test_neck_turns_the_head_over_a_fixed_neck_base(rig):
    rest = rig.v_template
    turned = posed(rig, neck_pose=[0.0, 0.6, 0.0])
    move = np.linalg.norm(turned - rest, axis=1)
    assert move[rest[:, 1] < -0.175].max() < 1e-12
    assert move[[1, 10, 152]].min() > 0.03


def test_eye_rotation_turns_only_the_eyeballs(rig):
    rest = rig.v_template
    looked = posed(rig, eyes_pose=[0.0, 0.3, 0.0, 0.0, 0.3, 0.0])
    move = np.linalg.norm(looked - rest, axis=1)
    assert looked[473, 0] > rest[473, 0] + 0.002 and looked[468, 0] > rest[468, 0] + 0.002
    comp = component_ids(rig)
    others = (comp != comp[473]) & (comp != comp[468])
    assert move[others].max() < 1e-12
    # An eyeball turns about its centre: every vertex keeps its distance to the eye joint.
    centre = rig.j_regressor[3] @ rest
    ball = comp == comp[473]
    np.testing.assert_allclose(np.linalg.norm(looked[ball] - centre, axis=1),
                               np.linalg.norm(rest[ball] - centre, axis=1), atol=1e-12)


# --- blend shapes ---------------------------------------------------------------------------------

def test_expression_names_cover_the_arkit_set(rig):
    names = set(rig.expr_names)
    assert len(rig.expr_names) == len(names) >= 20
    assert REQUIRED_EXPRESSIONS <= names
    assert not any(n.startswith("jawOpen") or n.startswith("eyeLook") for n in names)  # those are joints


@pytest.mark.parametrize("name", sorted(LOCALITY))
def test_each_expression_moves_its_own_region_only(rig, name):
    d = np.linalg.norm(rig.expr_dirs[:, :, rig.expr_names.index(name)], axis=1)
    moves, still = LOCALITY[name]
    for region in moves:
        assert d[REGIONS[region]].max() > 0.001, f"{name} should move {region}"
    for region in still:
        assert d[REGIONS[region]].max() < 1e-4, f"{name} should leave {region} still"
    assert d[:478].max() > 0.0015  # a tracker sees it in the landmarks


def test_expressions_are_distinct_in_landmark_space(rig):
    lm = rig.expr_dirs[:478].reshape(-1, rig.n_expr)
    assert np.linalg.matrix_rank(lm, tol=1e-6) == rig.n_expr
    unit = lm / np.linalg.norm(lm, axis=0)
    cos = unit.T @ unit
    np.fill_diagonal(cos, 0)
    assert cos.max() < 0.95


def test_blink_closes_the_lid_without_entering_the_eyeball(rig):
    v = rig.v_template
    k = rig.expr_names.index("eyeBlinkLeft")
    centre = rig.j_regressor[3] @ v
    upper, lower = G["eyelid_upper_left"][1:-1], G["eyelid_lower_left"][1:-1]
    gap_rest = np.linalg.norm(v[upper] - v[lower], axis=1).mean()
    closed = v + rig.expr_dirs[:, :, k]
    assert gap_rest > 0.006
    assert np.linalg.norm(closed[upper] - closed[lower], axis=1).max() < 0.001
    assert closed[386, 1] < v[386, 1] - 0.005  # the upper lid comes down
    for a in np.linspace(0, 1, 11):
        lids = v[np.concatenate([upper, lower])] + a * rig.expr_dirs[np.concatenate([upper, lower]), :, k]
        assert np.linalg.norm(lids - centre, axis=1).min() > EYEBALL_RADIUS


def test_directions_of_named_motions(rig, photo_points):
    def d(name, vid):
        return rig.expr_dirs[vid, :, rig.expr_names.index(name)]

    assert d("mouthSmileLeft", 291)[1] > 0.003 and d("mouthSmileRight", 61)[1] > 0.003
    assert d("mouthFrownLeft", 291)[1] < -0.003
    assert d("browInnerUp", 107)[1] > 0.004 and d("browDownRight", 105)[1] < -0.003
    assert d("mouthPucker", 0)[2] > 0.003 and d("mouthPucker", 291)[0] < -0.004 < 0.004 < d("mouthPucker", 61)[0]
    assert d("mouthLeft", 13)[0] > 0.004 and d("mouthRight", 13)[0] < -0.004
    assert d("cheekPuff", 416)[0] > 0.002 and d("cheekPuff", 192)[0] < -0.002
    assert d("mouthClose", 13)[1] == pytest.approx(-LIP_CLOSE) and d("mouthClose", 14)[1] == pytest.approx(LIP_CLOSE)
    assert d("jawForward", 152)[2] == pytest.approx(0.005)
    # Left and right shapes mirror each other.
    mirror = metric_transform(photo_points)[1]
    for base in ("mouthSmile", "eyeBlink", "browDown", "noseSneer"):
        left = rig.expr_dirs[:478, :, rig.expr_names.index(base + "Left")]
        right = rig.expr_dirs[:478, :, rig.expr_names.index(base + "Right")]
        np.testing.assert_allclose(right[mirror] * [-1, 1, 1], left, atol=0.0015)


def test_identity_shapes_are_smooth_and_keep_eyes_and_teeth_rigid(rig):
    assert rig.n_shape == len(SHAPE_NAMES) >= 10
    assert rig.pose_dirs.shape[2] == 0
    comp = component_ids(rig)
    for k in range(rig.n_shape):
        s = rig.shape_dirs[:, :, k]
        assert 0.001 < np.linalg.norm(s, axis=1).max() < 0.015
        for part in set(np.unique(comp)) - {comp[0]}:  # eyeballs and teeth
            block = s[comp == part]
            np.testing.assert_allclose(block, np.broadcast_to(block[0], block.shape), atol=1e-15)
    # Neighbouring skin vertices move alike: no tearing.
    edges = np.concatenate([rig.faces[:, [0, 1]], rig.faces[:, [1, 2]], rig.faces[:, [2, 0]]])
    length = np.linalg.norm(rig.v_template[edges[:, 0]] - rig.v_template[edges[:, 1]], axis=1)
    skin = comp[edges[:, 0]] == comp[0]
    stretch = np.linalg.norm(rig.shape_dirs[edges[:, 0]] - rig.shape_dirs[edges[:, 1]], axis=1).max(1)
    assert np.max(stretch[skin] / length[skin]) < 0.35
    wide = rig.v_template + rig.shape_dirs[:, :, SHAPE_NAMES.index("head_width")]
    assert np.ptp(wide[:, 0]) > np.ptp(rig.v_template[:, 0]) + 0.005


# --- caching and determinism ----------------------------------------------------------------------

def test_generation_is_deterministic_and_matches_the_cached_rig(rig):
    fresh, transform = builtin.generate_builtin()
    for name in ("v_template", "shape_dirs", "expr_dirs", "j_regressor", "weights", "faces", "lmk_faces", "lmk_bary"):
        assert np.array_equal(getattr(fresh, name), getattr(rig, name)), name
    assert fresh.expr_names == rig.expr_names and fresh.name == rig.name == "builtin-mediapipe"
    assert fresh.v_template.dtype == np.float64


def test_disk_cache_is_written_atomically_and_read_back(rig, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    builtin._builtin.cache_clear()
    try:
        path = builtin.cache_path()
        assert not path.exists()
        first = builtin.builtin_rig()
        assert path.exists() and path.parent == tmp_path / "realtime"
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
        builtin._builtin.cache_clear()
        again = builtin.builtin_rig()
        assert again is not first and np.array_equal(again.expr_dirs, first.expr_dirs)
        assert builtin.builtin_rig() is again  # kept in memory
        path.write_bytes(b"not a zip file")  # a damaged cache is regenerated
        builtin._builtin.cache_clear()
        assert np.array_equal(builtin.builtin_rig().v_template, first.v_template)
    finally:
        builtin._builtin.cache_clear()
