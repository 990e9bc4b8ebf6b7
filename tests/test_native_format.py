"""The native .rtav avatar file: bit-exact round trips and refusal of every kind of bad file."""

import dataclasses
import struct
import zlib

import numpy as np
import pytest

from realtime.avatar import native
from realtime.files import atomic_write
from realtime.avatar.gaussians import Avatar, AvatarError
from realtime.avatar.native import (AvatarFileError, decode_avatar, encode_avatar, load_avatar, pack, save_avatar,
                                    unpack)
from realtime.avatar.synthetic import random_avatar
from realtime.camera import Camera
from realtime.rig.model import Rig
from realtime.rig.synthetic import synthetic_rig


@pytest.fixture(scope="module")
def avatar():
    return random_avatar(synthetic_rig(n_landmarks=12), 300, seed=3, sh_degree=2)


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _assert_identical(a: Avatar, b: Avatar):
    for obj_a, obj_b in ((a, b), (a.rig, b.rig), (a.camera, b.camera)):
        for f in dataclasses.fields(obj_a):
            va, vb = getattr(obj_a, f.name), getattr(obj_b, f.name)
            if isinstance(va, np.ndarray):
                assert _same(va, vb), f.name
            elif not isinstance(va, (Rig, Camera)):
                assert va == vb and type(va) is type(vb), f.name


def test_round_trip_is_bit_exact(tmp_path, avatar):
    path = tmp_path / "person.rtav"
    save_avatar(avatar, path)
    _assert_identical(avatar, load_avatar(path))


def test_round_trip_keeps_other_dtypes(tmp_path, avatar):
    wide = dataclasses.replace(avatar, rig=avatar.rig.astype(np.float32), name="wide ünïcode",
                               local_means=avatar.local_means.astype(np.float64), binding=avatar.binding.astype(np.int64))
    save_avatar(wide, tmp_path / "w.rtav")
    back = load_avatar(tmp_path / "w.rtav")
    _assert_identical(wide, back)
    assert back.rig.v_template.dtype == np.float32 and back.local_means.dtype == np.float64


def test_every_field_is_stored(avatar):
    arrays, metadata = unpack(encode_avatar(avatar))
    stored = set(arrays) | set(metadata)
    for prefix, cls in (("rig.", Rig), ("", Avatar), ("camera.", Camera)):
        for f in dataclasses.fields(cls):
            if f.name not in ("rig", "camera"):
                assert prefix + f.name in stored, prefix + f.name


def test_file_layout(avatar):
    data = encode_avatar(avatar)
    magic, version, header_len = struct.unpack_from("<8sII", data)
    assert (magic, version) == (b"RTAVATAR", 1)
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == zlib.crc32(data[:-4])
    arrays, _ = unpack(data)
    assert arrays["sh"].shape == (300, 9, 3)


@pytest.mark.parametrize("keep", [0, 10, 19, 30, 200, -5000, -1])
def test_truncated_file_is_refused(tmp_path, avatar, keep):
    data = encode_avatar(avatar)
    (tmp_path / "t.rtav").write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    with pytest.raises(AvatarFileError, match="truncated"):
        load_avatar(tmp_path / "t.rtav")


@pytest.mark.parametrize("where", [30, -20000, -100, -2])
def test_corrupt_byte_is_refused(tmp_path, avatar, where):
    data = bytearray(encode_avatar(avatar))
    data[where] ^= 0x10
    (tmp_path / "c.rtav").write_bytes(bytes(data))
    with pytest.raises(AvatarFileError, match="checksum mismatch|not a valid avatar header"):
        load_avatar(tmp_path / "c.rtav")


def test_wrong_magic_version_and_trailing_bytes(avatar):
    data = encode_avatar(avatar)
    with pytest.raises(AvatarFileError, match="not an avatar file"):
        decode_avatar(b"PK\x03\x04" + data[4:])
    with pytest.raises(AvatarFileError, match="format version 2 is not supported"):
        decode_avatar(data[:8] + struct.pack("<I", 2) + data[12:])
    with pytest.raises(AvatarFileError, match="3 unexpected bytes after the checksum"):
        decode_avatar(data + b"abc")


def _arrays_and_metadata(avatar):
    return unpack(encode_avatar(avatar))


@pytest.mark.parametrize("change, message", [
    (lambda a, m: a.pop("local_quats"), "missing arrays: local_quats"),
    (lambda a, m: a.update(extra=np.zeros(3)), "unknown arrays: extra"),
    (lambda a, m: m.pop("camera.width"), "missing metadata: camera.width"),
    (lambda a, m: m.update(**{"camera.width": "512"}), "metadata 'camera.width' must be int"),
    (lambda a, m: a.update(local_means=a["local_means"][:, :2]), r"local_means must have shape \(300, 3\)"),
    (lambda a, m: a.update(opacity_logits=a["opacity_logits"][:-1]), r"opacity_logits must have shape \(300,\)"),
    (lambda a, m: a.update(binding=a["binding"] + 10**6), "binding index out of range"),
    (lambda a, m: a.update(binding=a["binding"].astype(np.float32)), "'binding' must hold integers"),
    (lambda a, m: a["sh"].__setitem__((4, 0, 1), np.nan), "sh holds NaN"),
    (lambda a, m: a["rig.v_template"].__setitem__((0, 0), np.inf), "stored rig is invalid: v_template holds NaN"),
    (lambda a, m: a.update(**{"rig.faces": a["rig.faces"] + 10**6}), "stored rig is invalid: faces index"),
    (lambda a, m: m.update(**{"rig.expr_names": ["a"]}), "stored rig is invalid: expr_names has 1 names"),
    (lambda a, m: a.update(**{"rig.parents": np.array(-1, np.int32)}), "stored rig is invalid"),
    (lambda a, m: a.update(binding=np.array(3, np.int32)), "stored avatar is invalid"),
    (lambda a, m: a.update(**{"camera.K": np.eye(4)}), "stored camera is invalid"),
])
def test_inconsistent_content_is_refused(avatar, change, message):
    arrays, metadata = _arrays_and_metadata(avatar)
    change(arrays, metadata)
    with pytest.raises(AvatarFileError, match=message):
        decode_avatar(pack(arrays, metadata))


def test_bad_array_entries_are_refused(avatar):
    data = encode_avatar(avatar)
    header_len = struct.unpack_from("<I", data, 12)[0]
    header = data[16:16 + header_len]
    for old, new in ((b'"<f4"', b'"|O8"'), (b'"offset": 0,', b'"offset": 9999999999,')):
        assert old in header
        bad_header = header.replace(old, new, 1)
        body = data[:12] + struct.pack("<I", len(bad_header)) + bad_header + data[16 + header_len:-4]
        with pytest.raises(AvatarFileError, match="bad entry"):
            decode_avatar(body + struct.pack("<I", zlib.crc32(body)))


def test_errors_are_avatar_errors_naming_the_file(tmp_path):
    (tmp_path / "x.rtav").write_bytes(b"nonsense" * 10)
    with pytest.raises(AvatarError, match="x.rtav: not an avatar file"):
        load_avatar(tmp_path / "x.rtav")
    with pytest.raises(AvatarFileError, match="cannot read"):
        load_avatar(tmp_path / "absent.rtav")


def test_save_replaces_atomically(tmp_path, avatar, monkeypatch):
    path = tmp_path / "a.rtav"
    path.write_bytes(b"old content")

    def chunks():
        yield b"partial"
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, chunks())
    assert path.read_bytes() == b"old content" and [p.name for p in tmp_path.iterdir()] == ["a.rtav"]

    monkeypatch.setattr(native, "encode_avatar", lambda a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        save_avatar(avatar, path)
    assert path.read_bytes() == b"old content"
    monkeypatch.undo()
    save_avatar(avatar, path)
    _assert_identical(avatar, load_avatar(path))
    assert [p.name for p in tmp_path.iterdir()] == ["a.rtav"]
