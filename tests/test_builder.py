"""The one-shot builder end to end on the astronaut photo, and its clear errors on bad portraits."""

import cv2
import numpy as np
import pytest
from skimage import data

from realtime.builder.build import build_avatar, crop_camera, crop_image
from realtime.builder.fit_portrait import PortraitError, detect_face, fit_portrait, load_portrait
from realtime.builder.regions import EYE, FACE, MOUTH, SCALP, SOCKET, TEETH, face_regions, margin_faces, vertex_regions
from realtime.deform.reference import deform
from realtime.face.detector import LandmarkDetector
from realtime.render import render
from realtime.rig.builtin import builtin_rig
from realtime.rig.lbs import landmarks as rig_landmarks
from realtime.rig.model import RigParams
from realtime.face.landmark_ids import FACE_OVAL


@pytest.fixture(scope="module")
def small_avatar():
    """A small astronaut avatar (8000 Gaussians, 20 refinement steps at 256 px on the CPU)."""
    lines = []
    avatar = build_avatar(data.astronaut(), n_gaussians=8000, refine_steps=20, backend="cpu", log=lines.append)
    return avatar, lines


@pytest.fixture(scope="module")
def portrait_fit():
    return fit_portrait(data.astronaut(), builtin_rig())


def _render(avatar, rotation=(0.0, 0.0, 0.0), camera=None, params=None, eyes=(0.0, 0.0)):
    """The avatar at `params` (default: its neutral), the head turned by `rotation`, the eyes by (pitch, yaw)."""
    params = RigParams.neutral(avatar.rig) if params is None else RigParams(
        **{k: np.asarray(getattr(params, k), np.float32).copy() for k in ("shape", "expr", "rotation", "neck_pose",
                                                                         "jaw_pose", "eyes_pose", "translation")})
    params.shape = avatar.shape
    params.rotation = np.array(rotation, np.float32)
    if any(eyes):
        params.eyes_pose = np.array([eyes[0], eyes[1], 0.0] * 2, np.float32)
    g = deform(avatar, params).gaussians
    image = render(g.means, g.quats, g.scales, avatar.opacities, avatar.sh, camera or avatar.camera,
                   background=(1.0, 1.0, 1.0), backend="cpu").image
    return np.round(image * 255).astype(np.uint8)


def test_load_portrait_reads_files_and_arrays_and_names_bad_input(tmp_path):
    image = data.astronaut()
    path = tmp_path / "me.png"
    cv2.imwrite(str(path), image[..., ::-1])
    assert np.array_equal(load_portrait(path), image)
    assert load_portrait(image[..., 0]).shape == (512, 512, 3)                  # grey
    assert np.array_equal(load_portrait(np.dstack([image, image[..., :1]])), image)  # RGBA
    assert np.array_equal(load_portrait(image / 255.0), image)                   # float in [0, 1]
    with pytest.raises(PortraitError, match="not found"):
        load_portrait(tmp_path / "nobody.jpg")
    garbage = tmp_path / "broken.jpg"
    garbage.write_bytes(b"\x00\x01 this is not a picture" * 10)
    with pytest.raises(PortraitError, match="cannot read the portrait"):
        load_portrait(garbage)
    with pytest.raises(PortraitError, match=r"\(H, W\)"):
        load_portrait(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(PortraitError, match="NaN"):
        load_portrait(np.full((4, 4, 3), np.nan))


def test_no_face_several_faces_and_tiny_faces_are_refused():
    with pytest.raises(PortraitError, match="no face found"):
        detect_face(data.coffee())
    head = data.astronaut()[0:256, 128:384]
    with pytest.raises(PortraitError, match="found 2 faces"):
        detect_face(np.ascontiguousarray(np.concatenate([head, head], axis=1)))
    tiny = cv2.resize(data.astronaut(), (96, 96), interpolation=cv2.INTER_AREA)
    with pytest.raises(PortraitError, match="(pixels wide|no face found)"):
        detect_face(np.ascontiguousarray(np.pad(tiny, ((208, 208), (208, 208), (0, 0)))))
    with pytest.raises(PortraitError, match="no face found"):
        build_avatar(data.coffee(), n_gaussians=2000, refine_steps=0)


def test_regions_follow_the_head_generator_parts():
    from realtime.rig.builtin_head import build_head

    rig = builtin_rig()
    parts = build_head(rig.v_template[:478]).parts
    assert np.array_equal(build_head(rig.v_template[:478]).faces, rig.faces)
    expected = np.full(rig.n_vertices, FACE)
    for name, value in (("scalp", SCALP), ("mouth", MOUTH), ("teeth_upper", TEETH), ("teeth_lower", TEETH),
                        ("eyeball_left", EYE), ("eyeball_right", EYE), ("socket_left", SOCKET),
                        ("socket_right", SOCKET)):
        expected[parts[name]] = value
    assert np.array_equal(vertex_regions(rig), expected)
    regions = face_regions(rig)
    assert set(np.unique(regions)) == {FACE, SCALP, MOUTH, TEETH, EYE, SOCKET}
    margins = margin_faces(rig)
    assert 50 < margins.sum() < 300 and np.all(regions[margins] == FACE)  # the face's edges round eyes and lips


def test_fit_puts_the_mesh_on_the_landmarks_in_the_portrait_view(portrait_fit):
    rig = builtin_rig()
    fit = portrait_fit
    assert fit.residual_px.mean() < 1.0  # the rig was made from this photo
    # the rest mesh through the portrait camera lands on MediaPipe's points (pose is in the camera)
    mesh = deform_rest(rig, fit)
    points = rig_landmarks(rig.astype(np.float64), mesh)[:468]
    cam = points @ fit.camera.viewmat[:3, :3].T + fit.camera.viewmat[:3, 3]
    uv = cam[:, :2] / cam[:, 2:] @ fit.camera.K[:2, :2].T + fit.camera.K[:2, 2]
    error = np.linalg.norm(uv - fit.landmarks[:468, :2], axis=1)
    assert np.median(error) < 0.5 and error.max() < 3.0
    assert np.all(cam[:, 2] > 0.3)  # in front of the camera, at a portrait distance


def deform_rest(rig, fit):
    from realtime.rig.lbs import forward

    return forward(rig.astype(np.float64), fit.view_params, static_offset=fit.static_offset).vertices


def test_the_portraits_smile_is_its_expression_not_its_rest(portrait_fit):
    names = builtin_rig().expr_names
    expr = dict(zip(names, portrait_fit.view_params.expr))
    assert expr["mouthSmileLeft"] > 0.1 and expr["mouthSmileRight"] > 0.1  # the astronaut smiles
    assert portrait_fit.view_params.jaw_pose[0] >= 0.0
    posed = deform_rest(builtin_rig(), portrait_fit)
    for mesh, smiling in ((portrait_fit.rest_vertices, False), (posed, True)):
        iod = np.linalg.norm(mesh[473] - mesh[468])
        parted = (mesh[13, 1] - mesh[14, 1]) / iod
        raised = (mesh[[61, 291], 1] - 0.5 * (mesh[13, 1] + mesh[14, 1])).min()
        # in the portrait's pose the lips part and the corners rise; at rest the lips close, corners level
        assert (parted > 0.1 and raised > 0.003) if smiling else (parted < 0.02 and raised < 0.001)


def test_small_build_reproduces_the_portrait_head(small_avatar, portrait_fit):
    avatar, lines = small_avatar
    assert avatar.n_gaussians == 8000 and avatar.sh_degree == 0
    assert any("refined 20 steps on cpu" in line for line in lines)
    rendered = _render(avatar, params=portrait_fit.view_params)  # posed as the portrait shows the face
    # the default camera is the portrait's own view cropped around the head: the face the photo shows at
    # (u, v) is drawn at (u, v) - shift
    shift = _crop_shift(avatar)
    with LandmarkDetector(static_image_mode=True) as detector:
        expected = detector.detect(data.astronaut())[0].points[:, :2] - shift
        found = detector.detect(rendered)
    assert len(found) == 1
    assert np.median(np.linalg.norm(found[0].points[:, :2] - expected, axis=1)) < 3.0
    # photometric: inside the face oval the render matches the photo
    reference = crop_image(data.astronaut().astype(np.float32) / 255, *map(int, np.round(shift)),
                           avatar.camera.width, avatar.camera.width)
    mask = np.zeros(rendered.shape[:2], np.uint8)
    hull = cv2.convexHull(expected[list(FACE_OVAL)].astype(np.float32))
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    diff = rendered[mask > 0] / 255.0 - reference[mask > 0]
    assert 10 * np.log10(1.0 / np.mean(diff ** 2)) > 24.0


def _crop_shift(avatar):
    """(x0, y0): where the avatar camera's pixel (0, 0) sits in the portrait (same focal length, shifted)."""
    from realtime.builder.fit_portrait import portrait_camera

    photo = portrait_camera(512, 512)
    assert np.isclose(avatar.camera.K[0, 0], photo.K[0, 0])
    return photo.K[:2, 2] - avatar.camera.K[:2, 2]


@pytest.mark.parametrize("rotation", [(0, 0.52, 0), (0, -0.52, 0), (0.26, 0, 0), (-0.26, 0, 0)])
def test_turned_heads_still_look_like_faces(small_avatar, rotation):
    avatar, _ = small_avatar
    with LandmarkDetector(static_image_mode=True) as detector:
        assert len(detector.detect(_render(avatar, rotation))) == 1


def test_crop_camera_and_image_agree():
    from realtime.camera import Camera, intrinsics, rig_to_opencv

    camera = Camera(K=intrinsics(100, 80, 40.0), viewmat=rig_to_opencv(), width=100, height=80)
    crop = crop_camera(camera, 30, 10, 40, 20)
    ray = np.array([0.05, 0.02])  # x/z, y/z of a point in camera space
    uv = camera.K[:2, :2] @ ray + camera.K[:2, 2]
    assert np.allclose(crop.K[:2, :2] @ ray + crop.K[:2, 2], (uv - [30, 10]) * 0.5)
    image = np.arange(80 * 100, dtype=np.float32).reshape(80, 100, 1)
    assert np.array_equal(crop_image(image, 30, 10, 40, 40)[..., 0], image[10:50, 30:70, 0])
    padded = crop_image(image, -5, 70, 20, 20)[..., 0]  # past the borders: zeros
    assert np.all(padded[10:, :] == 0) and np.all(padded[:, :5] == 0)
    assert np.array_equal(padded[:10, 5:], image[70:80, 0:15, 0])


def test_the_neutral_avatar_rests_its_mouth_and_its_eyes_follow_their_gaze(small_avatar):
    from realtime.face.signals import face_signals

    avatar, _ = small_avatar
    with LandmarkDetector(static_image_mode=True) as detector:
        neutral = face_signals(detector.detect_largest(_render(avatar)).points[None])
        photo = face_signals(detector.detect_largest(data.astronaut()).points[None])
        gaze = [face_signals(detector.detect_largest(_render(avatar, eyes=(0.0, yaw))).points[None])["gaze_x"][0]
                for yaw in (-0.4, 0.4)]
    assert neutral["mouth_open"][0] < 0.05 < photo["mouth_open"][0]       # lips closed, where the photo parts them
    assert gaze[1] - gaze[0] > 0.12  # the painted irises turn with the eyes (eye widths, MediaPipe's reading)
