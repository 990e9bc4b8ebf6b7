"""`realtime avatar import` on a synthetic FLAME 2023-sized model and GaussianAvatars export, run as a user would."""

import subprocess
import sys

import numpy as np
from PIL import Image

from flame_files import flame_sized_rig, random_ga_columns, write_flame_param, write_flame_pickle, write_ga_ply
from realtime.app.motions import still
from realtime.avatar.native import load_avatar
from realtime.painter import AvatarPainter
from realtime.rig.teeth import add_teeth


def _realtime(*args):
    return subprocess.run([sys.executable, "-m", "realtime.app.cli", *args], capture_output=True, text=True, timeout=300)


def test_import_then_info_and_render(tmp_path):
    rig = flame_sized_rig()
    rng = np.random.default_rng(0)
    n_v = rig.n_vertices
    model = write_flame_pickle(tmp_path / "flame2023.pkl", {
        "v_template": rig.v_template, "shapedirs": rng.normal(scale=1e-4, size=(n_v, 3, 400)),
        "posedirs": rng.normal(scale=1e-5, size=(n_v, 3, 36)), "J_regressor": rig.j_regressor,
        "weights": rig.weights, "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "f": rig.faces.astype(np.uint32)})
    folder = tmp_path / "306"
    folder.mkdir()
    n_faces_with_teeth = add_teeth(rig).n_faces
    columns = random_ga_columns(800, n_faces_with_teeth, sh_degree=3)
    columns["scale_0"] = columns["scale_1"] = columns["scale_2"] = np.full(800, -3.0, np.float32)
    write_ga_ply(folder / "point_cloud.ply", columns)
    write_flame_param(folder / "flame_param.npz", 300, 100, n_v)
    out = tmp_path / "imported.rtav"

    done = _realtime("avatar", "import", "--gaussian-avatars", str(folder), "--flame", str(model), "--out", str(out))
    assert done.returncode == 0, done.stderr
    avatar = load_avatar(out)
    assert avatar.n_gaussians == 800 and avatar.rig.n_faces == n_faces_with_teeth and avatar.sh_degree == 3
    np.testing.assert_array_equal(avatar.binding, columns["binding_0"].astype(np.int32))

    info = _realtime("info", str(out))
    assert info.returncode == 0 and "800" in info.stdout and "sh degree:  3" in info.stdout

    png = tmp_path / "still.png"
    done = _realtime("render", "--avatar", str(out), "--driver", "still", "--out", str(png), "--size", "64", "--quiet")
    assert done.returncode == 0, done.stderr
    picture = np.asarray(Image.open(png).convert("RGB"))
    assert picture.shape == (64, 64, 3)
    assert (picture.max(axis=2) > 8).mean() > 0.02, "the rendered PNG shows no avatar"
    painter = AvatarPainter(avatar, avatar.camera.resized(64, 64), backend="cpu")
    expected = painter.draw(still(avatar.rig, avatar.shape).frames[0], {})
    assert np.abs(picture.astype(int) - expected.astype(int)).max() <= 1, "the CLI's PNG is not the avatar's render"


def test_import_of_something_that_is_not_flame_says_what_was_expected(tmp_path):
    bogus = tmp_path / "model.pkl"
    bogus.write_bytes(b"not a pickle at all")
    done = _realtime("avatar", "import", "--gaussian-avatars", str(tmp_path), "--flame", str(bogus),
                     "--out", str(tmp_path / "x.rtav"))
    assert done.returncode == 2
    assert "model.pkl" in done.stderr and not (tmp_path / "x.rtav").exists()
