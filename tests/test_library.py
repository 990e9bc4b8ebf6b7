"""Named avatars: the demo's cache (build once, reuse, rebuild when broken), files by path, the description."""

from pathlib import Path

import numpy as np
import pytest

from realtime.app import library
from realtime.avatar.native import save_avatar
from realtime.avatar.synthetic import random_avatar
from realtime.builder.build import DEMO_SETTINGS
from realtime.rig.synthetic import synthetic_rig


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "realtime"


def test_cache_dir_follows_xdg_and_defaults_to_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert library.cache_dir() == tmp_path / "c" / "realtime"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert library.cache_dir() == tmp_path / "home" / ".cache" / "realtime"


def test_demo_is_built_once_then_read_from_the_cache(cache, monkeypatch):
    built = []
    small = random_avatar(synthetic_rig(8, 10), 50, seed=1)

    def fake_build():
        built.append(1)
        return small

    monkeypatch.setattr(library, "build_demo_avatar", fake_build)
    avatar, path = library.resolve_avatar("demo")
    assert built == [1] and path.parent == cache and path.is_file()
    assert str(DEMO_SETTINGS.n_gaussians) in path.name  # the settings key the file
    again, path2 = library.resolve_avatar("demo")
    assert built == [1] and path2 == path
    assert np.array_equal(again.sh, small.sh) and np.array_equal(again.binding, small.binding)
    path.write_bytes(b"RTAVATAR broken")  # a damaged cache file is rebuilt, not an error
    library.resolve_avatar("demo")
    assert built == [1, 1]
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary files left behind


def test_a_path_loads_the_file_and_a_bad_name_says_what_exists(tmp_path):
    avatar = random_avatar(synthetic_rig(8, 10), 64, seed=2)
    path = tmp_path / "a.rtav"
    save_avatar(avatar, path)
    loaded, where = library.resolve_avatar(str(path))
    assert where == path and np.array_equal(loaded.local_means, avatar.local_means)
    with pytest.raises(FileNotFoundError, match="no avatar file at .*'demo'"):
        library.resolve_avatar(tmp_path / "missing.rtav")


def test_describe_names_the_rig_sizes_and_file(tmp_path):
    rig = synthetic_rig(8, 10)
    avatar = random_avatar(rig, 123, seed=3, sh_degree=1)
    path = tmp_path / "a.rtav"
    save_avatar(avatar, path)
    text = library.describe_avatar(avatar, path)
    assert rig.name in text
    assert f"{rig.n_vertices} vertices, {rig.n_faces} faces" in text
    assert "gaussians:  123" in text and "sh degree:  1" in text
    size_mb = path.stat().st_size / 1e6
    assert f"({size_mb:.1f} MB)" in text
    assert "file:" not in library.describe_avatar(avatar, None)


@pytest.mark.slow
def test_the_real_demo_builds_and_caches(cache):
    avatar, path = library.resolve_avatar("demo")
    assert avatar.name == "demo" and avatar.n_gaussians == DEMO_SETTINGS.n_gaussians
    assert avatar.rig.name == "builtin-mediapipe"
    again, _ = library.resolve_avatar("demo")
    assert np.array_equal(again.sh, avatar.sh) and np.array_equal(again.log_scales, avatar.log_scales)
    assert Path(path).stat().st_size < 20e6
