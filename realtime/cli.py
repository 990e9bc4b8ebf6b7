"""The `realtime` command line: info, render, track, serve, avatar build, bench."""

from __future__ import annotations

import argparse
import sys


def _cmd_info(args: argparse.Namespace) -> int:
    from realtime.library import describe_avatar, resolve_avatar

    avatar, path = resolve_avatar(args.avatar)
    print(describe_avatar(avatar, path))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from realtime.library import resolve_avatar
    from realtime.offline import render_to_file

    avatar, _ = resolve_avatar(args.avatar)
    render_to_file(avatar, args.driver, args.out, size=args.size, backend=args.backend, progress=not args.quiet)
    return 0


def _cmd_avatar_build(args: argparse.Namespace) -> int:
    from realtime.builder.build import build_avatar_file

    avatar = build_avatar_file(args.portrait, args.out, n_gaussians=args.gaussians, refine_steps=args.refine_steps,
                               backend=args.backend, log=print)
    print(f"wrote {args.out} ({avatar.n_gaussians} Gaussians)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="realtime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="summarise an avatar file (or 'demo')")
    info.add_argument("avatar", help="avatar file, or 'demo' for the built-in demo avatar")
    info.set_defaults(run=_cmd_info)

    render = sub.add_parser("render", help="render an avatar offline to a video or a picture")
    render.add_argument("--avatar", default="demo", help="avatar file, or 'demo' (default)")
    render.add_argument("--driver", default="tour",
                        help="still | turntable | tour | PARAMS.npz | VIDEO.mp4 (default: tour)")
    render.add_argument("--out", required=True, help="OUT.mp4 (H.264) or OUT.png (one frame)")
    render.add_argument("--size", type=int, default=512, help="output height in pixels (default 512)")
    render.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="auto")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    render.set_defaults(run=_cmd_render)

    avatar = sub.add_parser("avatar", help="make avatars").add_subparsers(dest="avatar_command", required=True)
    build = avatar.add_parser("build", help="build an avatar from one portrait photo")
    build.add_argument("--portrait", required=True, help="IMAGE with one clearly visible face")
    build.add_argument("--out", required=True, help="AVATAR file to write (.rtav)")
    build.add_argument("--gaussians", type=int, default=40000, help="number of Gaussians (default 40000)")
    build.add_argument("--refine-steps", type=int, default=100,
                       help="photometric refinement steps, 0 for none (default 100)")
    build.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="auto",
                       help="refinement on gsplat (cuda) or the CPU (default: auto)")
    build.set_defaults(run=_cmd_avatar_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError) as exc:
        print(f"realtime {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
