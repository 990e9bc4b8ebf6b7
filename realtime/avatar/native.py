"""Our own avatar file (``.rtav``): one file, versioned, no pickle, checked before anything is built.

Layout of format version 1 (all integers little-endian):

    offset 0        8 bytes   magic b"RTAVATAR"
    offset 8        u32       format version (1)
    offset 12       u32       H, length of the header
    offset 16       H bytes   header: UTF-8 JSON
                                {"arrays": {name: {"dtype": "<f4", "shape": [...], "offset": o, "nbytes": n}},
                                 "metadata": {name: str | int | [str, ...]},
                                 "payload_bytes": P}
    offset 16 + H   P bytes   payload: the arrays' raw little-endian C-order bytes, each at its
                              offset (relative to the payload start, 64-byte aligned)
    offset 16+H+P   u32       CRC-32 (zlib) of every byte before it

The file stores the whole avatar: its rig (``rig.*`` arrays, ``rig.name``, ``rig.expr_names``),
its identity and Gaussians, and its default camera (``camera.K``, ``camera.viewmat``,
``camera.width``, ``camera.height``). Arrays keep their dtype, so a round trip is bit-exact.

Loading checks, in order: size, magic, version, header, exact file length, checksum, the set of
arrays and metadata, every array's dtype, shape and bounds; then builds Rig, Camera and Avatar,
whose own validation checks sizes, index ranges (binding, faces) and NaN. Any failure raises
AvatarFileError naming the problem; nothing is returned half-loaded. Saving writes a temporary
file and renames it over the target.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from realtime.avatar.gaussians import Avatar, AvatarError
from realtime.camera import Camera
from realtime.files import atomic_write
from realtime.rig.model import ARRAY_NAMES as RIG_ARRAYS, Rig, RigError

MAGIC = b"RTAVATAR"
FORMAT_VERSION = 1
EXTENSION = ".rtav"
_PREFIX = struct.Struct("<8sII")
_CRC = struct.Struct("<I")
_ALIGN = 64
_DTYPES = {"|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "<f2", "<f4", "<f8"}

AVATAR_ARRAYS = ("shape", "static_offset", "binding", "local_means", "local_quats", "log_scales", "opacity_logits",
                 "sh")
CAMERA_ARRAYS = ("K", "viewmat")
ARRAY_NAMES = (*(f"rig.{n}" for n in RIG_ARRAYS), *AVATAR_ARRAYS, *(f"camera.{n}" for n in CAMERA_ARRAYS))
INTEGER_ARRAYS = ("rig.parents", "rig.faces", "rig.lmk_ids", "rig.lmk_faces", "binding")
METADATA_TYPES = {"name": str, "rig.name": str, "rig.expr_names": list, "camera.width": int, "camera.height": int}


class AvatarFileError(AvatarError):
    """An avatar file that cannot be loaded (truncated, corrupt, wrong format or inconsistent content)."""


def pack(arrays: dict[str, np.ndarray], metadata: dict) -> bytes:
    """The container bytes for named arrays and JSON-able metadata (no check of what they mean)."""
    entries, chunks, offset = {}, [], 0
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        if array.dtype.str not in _DTYPES:
            raise AvatarFileError(f"array '{name}' has unsupported dtype {array.dtype}")
        pad = -offset % _ALIGN
        chunks.append(b"\0" * pad)
        offset += pad
        entries[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset,
                         "nbytes": array.nbytes}
        chunks.append(array.tobytes())
        offset += array.nbytes
    header = json.dumps({"arrays": entries, "metadata": metadata, "payload_bytes": offset}).encode("utf-8")
    body = b"".join([_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)), header, *chunks])
    return body + _CRC.pack(zlib.crc32(body))


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_crc(data: bytes, end: int) -> None:
    if zlib.crc32(data[:end]) != _CRC.unpack_from(data, end)[0]:
        raise AvatarFileError("checksum mismatch: the file is corrupt")


def unpack(data: bytes) -> tuple[dict[str, np.ndarray], dict]:
    """Named arrays (native byte order, own memory) and metadata from container bytes, after every format check."""
    size = len(data)
    if size < _PREFIX.size + _CRC.size:
        raise AvatarFileError(f"truncated: {size} bytes is shorter than any avatar file")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise AvatarFileError(f"not an avatar file: magic {magic!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise AvatarFileError(f"format version {version} is not supported (this build reads version {FORMAT_VERSION})")
    payload_start = _PREFIX.size + header_len
    if payload_start + _CRC.size > size:
        raise AvatarFileError(f"truncated: the header alone needs {payload_start + _CRC.size} bytes, "
                              f"the file has {size}")
    try:
        header = json.loads(data[_PREFIX.size:payload_start].decode("utf-8"))
        payload_len = header["payload_bytes"]
        entries, metadata = header["arrays"], header["metadata"]
        if not (_is_count(payload_len) and isinstance(entries, dict) and isinstance(metadata, dict)):
            raise TypeError("bad header types")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        _check_crc(data, size - _CRC.size)
        raise AvatarFileError(f"the header is not a valid avatar header: {exc}") from exc
    end = payload_start + payload_len
    if end + _CRC.size > size:
        raise AvatarFileError(f"truncated: expected {end + _CRC.size} bytes, the file has {size}")
    if end + _CRC.size < size:
        raise AvatarFileError(f"{size - end - _CRC.size} unexpected bytes after the checksum")
    _check_crc(data, end)
    payload = memoryview(data)[payload_start:end]
    arrays = {}
    for name, entry in entries.items():
        try:
            if entry["dtype"] not in _DTYPES:
                raise ValueError(f"unsupported dtype {entry['dtype']!r}")
            dtype, shape, offset, nbytes = np.dtype(entry["dtype"]), entry["shape"], entry["offset"], entry["nbytes"]
            if not (isinstance(shape, list) and all(_is_count(s) for s in shape)):
                raise ValueError(f"bad shape {shape!r}")
            count = math.prod(shape)
            if not (_is_count(nbytes) and _is_count(offset) and nbytes == count * dtype.itemsize
                    and offset + nbytes <= payload_len):
                raise ValueError(f"{nbytes} bytes at offset {offset} do not fit shape {shape} in {payload_len} bytes")
        except (KeyError, TypeError, ValueError) as exc:
            raise AvatarFileError(f"array '{name}': bad entry: {exc}") from exc
        array = np.frombuffer(payload, dtype=dtype, count=count, offset=offset).reshape(shape)
        arrays[name] = array.astype(dtype.newbyteorder("="), copy=True)
    return arrays, metadata


def encode_avatar(avatar: Avatar) -> bytes:
    """The .rtav bytes of an avatar, rig and camera included."""
    arrays = {f"rig.{n}": getattr(avatar.rig, n) for n in RIG_ARRAYS}
    arrays.update({n: getattr(avatar, n) for n in AVATAR_ARRAYS})
    arrays.update({f"camera.{n}": getattr(avatar.camera, n) for n in CAMERA_ARRAYS})
    metadata = {"name": avatar.name, "rig.name": avatar.rig.name, "rig.expr_names": list(avatar.rig.expr_names),
                "camera.width": int(avatar.camera.width), "camera.height": int(avatar.camera.height)}
    return pack(arrays, metadata)


def _check_names(found, expected, what: str) -> None:
    missing = [n for n in expected if n not in found]
    unknown = sorted(set(found) - set(expected))
    if missing:
        raise AvatarFileError(f"missing {what}: {', '.join(missing)}")
    if unknown:
        raise AvatarFileError(f"unknown {what}: {', '.join(unknown)}")


def decode_avatar(data: bytes) -> Avatar:
    """An Avatar from .rtav bytes; AvatarFileError naming the first problem otherwise."""
    arrays, metadata = unpack(data)
    _check_names(arrays, ARRAY_NAMES, "arrays")
    _check_names(metadata, METADATA_TYPES, "metadata")
    for name, array in arrays.items():
        if (array.dtype.kind in "iu") != (name in INTEGER_ARRAYS) or array.dtype.kind == "b":
            raise AvatarFileError(f"array '{name}' must hold {'integers' if name in INTEGER_ARRAYS else 'floats'}, "
                                  f"got {array.dtype}")
    for key, kind in METADATA_TYPES.items():
        if not isinstance(metadata[key], kind) or isinstance(metadata[key], bool):
            raise AvatarFileError(f"metadata '{key}' must be {kind.__name__}, got {metadata[key]!r}")
    if not all(isinstance(n, str) for n in metadata["rig.expr_names"]):
        raise AvatarFileError("metadata 'rig.expr_names' must list strings")
    try:
        rig = Rig(**{n: arrays[f"rig.{n}"] for n in RIG_ARRAYS}, expr_names=tuple(metadata["rig.expr_names"]),
                  name=metadata["rig.name"])
    except (RigError, IndexError, TypeError) as exc:
        raise AvatarFileError(f"the stored rig is invalid: {exc}") from exc
    try:
        camera = Camera(K=arrays["camera.K"], viewmat=arrays["camera.viewmat"], width=metadata["camera.width"],
                        height=metadata["camera.height"])
    except (ValueError, IndexError, TypeError) as exc:
        raise AvatarFileError(f"the stored camera is invalid: {exc}") from exc
    try:
        return Avatar(rig=rig, camera=camera, name=metadata["name"], **{n: arrays[n] for n in AVATAR_ARRAYS})
    except (AvatarError, IndexError, TypeError) as exc:
        raise AvatarFileError(f"the stored avatar is invalid: {exc}") from exc


def save_avatar(avatar: Avatar, path: str | Path) -> None:
    """Write `avatar` to `path` (conventionally ending in .rtav), atomically."""
    atomic_write(path, [encode_avatar(avatar)])


def load_avatar(path: str | Path) -> Avatar:
    """Read an avatar written by :func:`save_avatar`; AvatarFileError naming the file and the problem otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AvatarFileError(f"{path}: cannot read: {exc}") from exc
    try:
        return decode_avatar(data)
    except AvatarFileError as exc:
        raise AvatarFileError(f"{path}: {exc}") from exc
