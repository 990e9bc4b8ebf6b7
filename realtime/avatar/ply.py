"""Binary little-endian PLY with one ``vertex`` element of scalar properties, as 3DGS and GaussianAvatars write.

    ply
    format binary_little_endian 1.0
    element vertex N
    property float x            (one line per property; char uchar short ushort int uint float double,
    ...                          or their int8 ... float64 aliases)
    end_header
    N records of the properties in header order, packed, little-endian

Comments (``comment``, ``obj_info``) are skipped. ASCII and big-endian files,
list properties and other elements are refused with an error saying so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.files import atomic_write
from realtime.avatar.gaussians import AvatarError

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
          "f4": "float", "f8": "double"}
_MAX_HEADER = 1 << 20


class PlyError(AvatarError):
    """A PLY file we cannot read (or properties we cannot write)."""


def _header_lines(data: bytes, path: Path) -> tuple[list[str], int]:
    """The header lines after 'ply' up to 'end_header', and the byte offset where the data starts."""
    if not data.startswith((b"ply\n", b"ply\r\n")):
        raise PlyError(f"{path}: not a PLY file (it does not start with 'ply')")
    lines, pos = [], data.index(b"\n") + 1
    while True:
        newline = data.find(b"\n", pos, _MAX_HEADER)
        if newline < 0:
            raise PlyError(f"{path}: the header has no 'end_header' line (truncated or not a PLY)")
        try:
            line = data[pos:newline].rstrip(b"\r").decode("ascii")
        except UnicodeDecodeError as exc:
            raise PlyError(f"{path}: the PLY header is not ASCII text") from exc
        pos = newline + 1
        if line == "end_header":
            return lines, pos
        lines.append(line)


def _parse_header(data: bytes, path: Path) -> tuple[int, int, list[tuple[str, str]]]:
    """Header of a PLY: (byte offset of the data, vertex count, [(property name, numpy type code)])."""
    lines, start = _header_lines(data, path)
    fmt, count, props = None, None, []
    for line in lines:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = " ".join(words[1:])
            if fmt != "binary_little_endian 1.0":
                raise PlyError(f"{path}: format '{fmt}' is not supported; expected 'binary_little_endian 1.0'")
        elif words[0] == "element":
            if count is not None or len(words) != 3 or words[1] != "vertex":
                raise PlyError(f"{path}: only a single 'vertex' element is supported, got '{line}'")
            if not words[2].isdigit():
                raise PlyError(f"{path}: bad vertex count in '{line}'")
            count = int(words[2])
        elif words[0] == "property":
            if count is None:
                raise PlyError(f"{path}: property before any element: '{line}'")
            if len(words) != 3 or words[1] not in _TYPES:
                raise PlyError(f"{path}: unsupported property '{line}' (only scalar {sorted(_NAMES.values())})")
            if any(words[2] == name for name, _ in props):
                raise PlyError(f"{path}: property '{words[2]}' appears twice")
            props.append((words[2], _TYPES[words[1]]))
        else:
            raise PlyError(f"{path}: unexpected header line '{line}'")
    if fmt is None:
        raise PlyError(f"{path}: the header has no 'format' line")
    if count is None or not props:
        raise PlyError(f"{path}: the header declares no vertex element with properties")
    return start, count, props


def read_ply(path: str | Path) -> dict[str, np.ndarray]:
    """The vertex properties of a binary little-endian PLY: name -> (N,) array of its stored type, in header order."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlyError(f"{path}: cannot read: {exc}") from exc
    start, count, props = _parse_header(data, path)
    record = np.dtype([(name, "<" + code) for name, code in props])
    expected = count * record.itemsize
    available = len(data) - start
    if available < expected:
        raise PlyError(f"{path}: truncated: {count} vertices of {record.itemsize} bytes need {expected} bytes of data, "
                       f"the file has {available}")
    if available > expected:
        raise PlyError(f"{path}: {available - expected} unexpected bytes after the {count} vertices")
    table = np.frombuffer(data, dtype=record, count=count, offset=start)
    return {name: table[name].astype(np.dtype(code).newbyteorder("="), copy=True) for name, code in props}


def write_ply(path: str | Path, properties: dict[str, np.ndarray]) -> None:
    """Write (N,) arrays as the vertex properties of a binary little-endian PLY, in the dict's order, atomically.

    Each array keeps its type if PLY has it (int8..uint32, float32, float64); anything else is refused.
    """
    path = Path(path)
    if not properties:
        raise PlyError("a PLY needs at least one property")
    arrays = {name: np.asarray(value) for name, value in properties.items()}
    count = next(iter(arrays.values())).shape[0] if next(iter(arrays.values())).ndim else -1
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    fields = []
    for name, a in arrays.items():
        if a.ndim != 1 or a.shape[0] != count:
            raise PlyError(f"property '{name}' must be a (N,) array with N = {count}, got {a.shape}")
        code = a.dtype.str[1:]
        if code not in _NAMES or not name or any(c.isspace() for c in name) or not name.isascii():
            raise PlyError(f"cannot write property '{name}' of type {a.dtype} to PLY")
        header.append(f"property {_NAMES[code]} {name}")
        fields.append((name, "<" + code))
    header.append("end_header")
    table = np.empty(count, dtype=fields)
    for name, a in arrays.items():
        table[name] = a
    atomic_write(path, [("\n".join(header) + "\n").encode("ascii"), table.tobytes()])
