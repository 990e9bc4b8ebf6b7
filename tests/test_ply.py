"""Our binary PLY reader/writer: round trips, the 3DGS layout, and clear errors for bad files."""

import numpy as np
import pytest

from flame_files import write_ga_ply
from realtime.avatar.ply import PlyError, read_ply, write_ply


def _columns():
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=7).astype(np.float32), "count": rng.integers(-5, 5, 7).astype(np.int32),
            "flag": rng.integers(0, 255, 7).astype(np.uint8), "w": rng.normal(size=7),
            "s": rng.integers(-300, 300, 7).astype(np.int16)}


def test_round_trip_keeps_order_types_and_bits(tmp_path):
    columns = _columns()
    write_ply(tmp_path / "a.ply", columns)
    back = read_ply(tmp_path / "a.ply")
    assert list(back) == list(columns)
    for name, value in columns.items():
        assert back[name].dtype == value.dtype and back[name].tobytes() == value.tobytes()
    header = (tmp_path / "a.ply").read_bytes().split(b"end_header\n")[0].decode()
    assert header.splitlines()[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 7"]
    assert "property float x" in header and "property double w" in header and "property uchar flag" in header


def test_reads_a_3dgs_style_file_with_comments_and_crlf(tmp_path):
    values = np.arange(6, dtype="<f4").reshape(3, 2)
    header = (b"ply\r\nformat binary_little_endian 1.0\r\ncomment written by someone\r\nobj_info x\r\n"
              b"element vertex 3\r\nproperty float32 a\r\nproperty float b\r\nend_header\r\n")
    (tmp_path / "c.ply").write_bytes(header + values.tobytes())
    back = read_ply(tmp_path / "c.ply")
    np.testing.assert_array_equal(back["a"], [0, 2, 4])
    np.testing.assert_array_equal(back["b"], [1, 3, 5])


def test_independent_writer_agrees(tmp_path):
    columns = {"x": np.array([1.5, -2.0], np.float32), "binding_0": np.array([3.0, 10143.0], np.float32)}
    write_ga_ply(tmp_path / "g.ply", columns)
    back = read_ply(tmp_path / "g.ply")
    np.testing.assert_array_equal(back["binding_0"], [3, 10143])


def _ply(header_lines, data=b""):
    return ("\n".join(header_lines) + "\n").encode() + data


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04 not a ply", "not a PLY file"),
    (_ply(["ply", "format ascii 1.0", "element vertex 1", "property float x", "end_header"], b"1.0\n"),
     "format 'ascii 1.0' is not supported"),
    (_ply(["ply", "format binary_big_endian 1.0", "element vertex 1", "property float x", "end_header"], b"\0" * 4),
     "binary_big_endian"),
    (_ply(["ply", "format binary_little_endian 1.0", "element vertex 1", "property list uchar int vertex_indices",
           "end_header"]), "unsupported property 'property list"),
    (_ply(["ply", "format binary_little_endian 1.0", "element vertex 1", "property float x", "element face 1",
           "property float y", "end_header"]), "only a single 'vertex' element"),
    (_ply(["ply", "format binary_little_endian 1.0", "element vertex 1", "property float x"]), "no 'end_header'"),
    (_ply(["ply", "format binary_little_endian 1.0", "element vertex 2", "property float x", "end_header"],
          b"\0" * 7), "truncated: 2 vertices of 4 bytes need 8 bytes of data, the file has 7"),
    (_ply(["ply", "format binary_little_endian 1.0", "element vertex 1", "property float x", "end_header"],
          b"\0" * 9), "5 unexpected bytes"),
    (_ply(["ply", "element vertex 1", "property float x", "end_header"], b"\0" * 4), "no 'format' line"),
    (_ply(["ply", "format binary_little_endian 1.0", "element vertex 1", "property float x", "property float x",
           "end_header"], b"\0" * 8), "'x' appears twice"),
    (_ply(["ply", "format binary_little_endian 1.0", "element vertex 1", "property half x", "end_header"]),
     "unsupported property"),
    (_ply(["ply", "format binary_little_endian 1.0", "end_header"]), "no vertex element"),
])
def test_bad_files_are_refused_with_the_reason(tmp_path, content, message):
    (tmp_path / "bad.ply").write_bytes(content)
    with pytest.raises(PlyError, match=message):
        read_ply(tmp_path / "bad.ply")


def test_writer_refuses_what_ply_cannot_hold(tmp_path):
    with pytest.raises(PlyError, match="must be a \\(N,\\) array with N = 2"):
        write_ply(tmp_path / "w.ply", {"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)})
    with pytest.raises(PlyError, match="cannot write property 'a' of type int64"):
        write_ply(tmp_path / "w.ply", {"a": np.zeros(2, np.int64)})
    with pytest.raises(PlyError, match="cannot write property 'a b'"):
        write_ply(tmp_path / "w.ply", {"a b": np.zeros(2, np.float32)})
    assert not list(tmp_path.iterdir())
