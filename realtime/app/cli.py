"""The `realtime` command line: info, render, track, serve, avatar build, bench."""

from __future__ import annotations

import argparse
import sys


def _cmd_info(args: argparse.Namespace) -> int:
    from realtime.app.library import describe_avatar, resolve_avatar

    avatar, path = resolve_avatar(args.avatar)
    print(describe_avatar(avatar, path))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from realtime.app.library import resolve_avatar
    from realtime.app.offline import render_to_file

    avatar, _ = resolve_avatar(args.avatar)
    render_to_file(avatar, args.driver, args.out, size=args.size, backend=args.backend, progress=not args.quiet)
    return 0


def _cmd_avatar_build(args: argparse.Namespace) -> int:
    from realtime.builder.build import build_avatar_file

    avatar = build_avatar_file(args.portrait, args.out, n_gaussians=args.gaussians, refine_steps=args.refine_steps,
                               backend=args.backend, log=print)
    print(f"wrote {args.out} ({avatar.n_gaussians} Gaussians)")
    return 0


def _cmd_avatar_import(args: argparse.Namespace) -> int:
    from realtime.avatar.gaussian_avatars import import_gaussian_avatars
    from realtime.avatar.native import save_avatar
    from realtime.rig.flame import load_flame

    flame = load_flame(args.flame, landmark_embedding=args.landmarks)
    avatar = import_gaussian_avatars(args.gaussian_avatars, flame)
    save_avatar(avatar, args.out)
    print(f"wrote {args.out} ({avatar.n_gaussians} Gaussians on {avatar.rig.name}, "
          f"{avatar.rig.n_faces} faces with teeth)")
    return 0


def _cmd_track(args: argparse.Namespace) -> int:
    from realtime.app.library import resolve_avatar
    from realtime.track.params_file import save_params_npz
    from realtime.track.video import track_video

    avatar, _ = resolve_avatar(args.avatar)
    sequence = track_video(args.video, avatar.rig, progress=not args.quiet)
    save_params_npz(args.out, sequence)
    print(f"wrote {args.out}: {len(sequence)} frames at {sequence.fps:g} fps, "
          f"face found in {int(sequence.face_found.sum())}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from realtime.app.serve import serve_main

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    serve_main(args.avatar or ["demo"], args.driver, args.host, args.port, args.token, args.size, args.backend,
               args.max_sessions, codec=args.codec,
               bitrate=None if args.bitrate is None else args.bitrate * 1000,
               keyframe_interval_s=args.keyframe_interval, publish=args.publish)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    try:
        from benchmarks import run_all
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == "benchmarks":
            raise OSError("`realtime bench` runs the benchmarks of a source checkout, and this installation has no "
                          "`benchmarks` package: install a clone of the repository (pip install -e .), or run "
                          "`python -m benchmarks` in one") from exc
        if missing.partition(".")[0] in ("benchmarks", "realtime"):
            raise  # a broken import in this project's own code: the traceback says where
        raise OSError(f"the benchmarks need {missing}, which is not installed: pip install -e '.[dev]'") from exc
    return run_all.main([*(["--quick"] if args.quick else []), "--backend", args.backend,
                         *(["--out", args.out] if args.out else [])])


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

    track = sub.add_parser("track", help="track a face video into rig parameters (.npz)")
    track.add_argument("video", help="a face video")
    track.add_argument("--out", required=True, help="PARAMS.npz to write")
    track.add_argument("--avatar", default="demo", help="the avatar whose rig to fit (default: demo)")
    track.add_argument("--quiet", action="store_true", help="no progress bar")
    track.set_defaults(run=_cmd_track)

    from realtime.stream.encoder import CODECS, KEYFRAME_INTERVAL_S

    serve = sub.add_parser("serve", help="serve the live avatar over WebRTC to browsers")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--avatar", action="append",
                       help="avatar file or 'demo' (default); repeat to offer several to switch between")
    serve.add_argument("--driver", default="browser",
                       help="browser (default; the expression tour plays until a browser sends its camera) | "
                            "webcam[:N] | tour | VIDEO")
    serve.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="auto")
    serve.add_argument("--size", type=int, default=512, help="output frame size, square (default 512)")
    serve.add_argument("--token", default=None, help="access token; required to listen beyond 127.0.0.1")
    serve.add_argument("--max-sessions", type=int, default=8, help="concurrent viewers + sender (default 8)")
    serve.add_argument("--codec", choices=sorted(CODECS), default="vp8",
                       help="the stream's video codec, encoded once for every viewer (default vp8)")
    serve.add_argument("--bitrate", type=int, default=None, metavar="KBIT_S",
                       help="stream bitrate in kbit/s, the same for every viewer (default: by frame size)")
    serve.add_argument("--keyframe-interval", type=float, default=KEYFRAME_INTERVAL_S, metavar="SECONDS",
                       help=f"seconds between periodic keyframes (default {KEYFRAME_INTERVAL_S:g})")
    serve.add_argument("--publish", metavar="URL", default=None,
                       help="also publish the stream into a Janus VideoRoom, for Janus to fan out: its HTTP API "
                            "with the room, http://127.0.0.1:8088/janus?room=1234 (see README)")
    serve.set_defaults(run=_cmd_serve)

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
    imp = avatar.add_parser("import", help="import a GaussianAvatars export (point_cloud.ply + flame_param.npz)")
    imp.add_argument("--gaussian-avatars", required=True, metavar="FOLDER",
                     help="folder holding point_cloud.ply and flame_param.npz (or the .ply itself)")
    imp.add_argument("--flame", required=True, metavar="MODEL.pkl",
                     help="the FLAME 2023 model pickle you downloaded after accepting its licence")
    imp.add_argument("--landmarks", metavar="EMBEDDING.npz",
                     help="MediaPipe landmark embedding for FLAME (lmk_face_idx, lmk_b_coords, landmark_indices); "
                          "needed to drive the avatar from a camera")
    imp.add_argument("--out", required=True, help="AVATAR file to write (.rtav)")
    imp.set_defaults(run=_cmd_avatar_import)

    bench = sub.add_parser("bench", help="run every benchmark: JSON results, a Markdown report with plots")
    bench.add_argument("--quick", action="store_true", help="under 3 minutes on a 2-core CPU (default: the full run)")
    bench.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="auto",
                       help="cpu: CPU paths only; cuda: also CUDA (error without it); auto (default): CUDA when usable")
    bench.add_argument("--out", help="output folder (default benchmarks/results; --quick: benchmarks/results/quick)")
    bench.set_defaults(run=_cmd_bench)
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
