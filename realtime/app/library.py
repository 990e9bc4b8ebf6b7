"""Named avatars: the built-in `demo` and avatar files, and a one-paragraph description of any avatar.

The demo avatar is built by the one-shot builder from `skimage.data.astronaut()` on first use and
cached at $XDG_CACHE_HOME/realtime (default ~/.cache/realtime) under a name that carries the
builder's version and settings, so a changed builder never serves a stale demo. The cache file is
our native avatar format, written atomically (a crash or a parallel build never leaves half a file).
"""

from __future__ import annotations


from pathlib import Path

from realtime.avatar.gaussians import Avatar
from realtime.avatar.native import AvatarFileError, load_avatar, save_avatar
from realtime.builder.build import BUILDER_VERSION, DEMO_SETTINGS, build_demo_avatar
from realtime.files import cache_dir
from realtime.rig.builtin import BUILTIN_VERSION

DEMO_NAME = "demo"


def demo_cache_path() -> Path:
    """Where the demo avatar of this builder, this built-in rig and these settings is cached."""
    s = DEMO_SETTINGS
    return cache_dir() / (f"demo-builder{BUILDER_VERSION}-rig{BUILTIN_VERSION}-n{s.n_gaussians}-r{s.refine_steps}"
                          f"-s{s.seed}.rtav")


def demo_avatar() -> tuple[Avatar, Path]:
    """The built-in demo avatar and its cache file; built and cached on first use (a corrupt cache is rebuilt)."""
    path = demo_cache_path()
    if path.is_file():
        try:
            return load_avatar(path), path
        except AvatarFileError:
            pass  # a cache from a broken write or another format: build it again
    avatar = build_demo_avatar()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_avatar(avatar, path)
    return avatar, path


def resolve_avatar(name_or_path: str | Path) -> tuple[Avatar, Path | None]:
    """An avatar by name ('demo') or by file path (our native format). Returns (avatar, its file)."""
    if str(name_or_path) == DEMO_NAME:
        return demo_avatar()
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"no avatar file at {path} (and {str(name_or_path)!r} is not a built-in avatar; "
                                f"the built-in one is {DEMO_NAME!r})")
    return load_avatar(path), path


def describe_avatar(avatar: Avatar, path: Path | None = None) -> str:
    """A few lines for `realtime info`: name, rig, mesh size, Gaussians, SH degree, camera, file size."""
    rig = avatar.rig
    lines = [f"avatar:     {avatar.name}",
             f"rig:        {rig.name} ({rig.n_shape} identity, {rig.n_expr} expression shapes, {rig.n_joints} joints)",
             f"mesh:       {rig.n_vertices} vertices, {rig.n_faces} faces",
             f"gaussians:  {avatar.n_gaussians}",
             f"sh degree:  {avatar.sh_degree}",
             f"camera:     {avatar.camera.width}x{avatar.camera.height}"]
    if path is not None:
        lines.append(f"file:       {path} ({Path(path).stat().st_size / 1e6:.1f} MB)")
    return "\n".join(lines)
