"""The benchmark suite: `python -m benchmarks --smoke` runs every section and writes the JSON (with where and
what it measured), the Markdown report and its plots (fields and files are checked, timings are not); a failed
section is reported; README.md's performance section is replaced between its markers only; the torch baseline
compositor draws our renderer's picture; `realtime bench` fails clearly where it cannot run, and finds the
installed benchmarks package from any folder; each benchmark is a module of it (`python -m benchmarks.<name>`)."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from benchmarks import bench_baselines, plots, report, run_all
from benchmarks.profiles import PROFILES
from realtime.app import cli
from realtime.camera import head_and_shoulders_camera
from realtime.render.cpu import rasterize
from realtime.render.tiles import sort_and_bin
from realtime.render.gsplat_backend import cuda_usable
from realtime.render.project import project
from realtime.render.synthetic import head_scene

ROOT = Path(__file__).resolve().parents[1]

SECTIONS = {"live", "render", "deform", "encode", "stream", "stream_quality", "baselines"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """The output folder of one smoke run (CPU only)."""
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--backend", "cpu", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def load_suite(folder: Path) -> dict:
    (path,) = folder.glob("suite_*.json")
    return json.loads(path.read_text())


def test_smoke_run_writes_every_section_with_where_it_was_measured(smoke):
    suite = load_suite(smoke)
    meta = suite["meta"]
    for key in ("date", "commit", "platform", "cpu_model", "cpu_cores", "gpu", "load_average_1_5_15_min",
                "numba_threads", "torch_threads"):
        assert key in meta, key
    assert {"python", "numpy", "numba", "torch", "av", "aiortc"} <= set(meta["versions"])
    assert len(meta["load_average_1_5_15_min"]) == 3 and len(suite["load_average_1_5_15_min_after"]) == 3
    assert suite["profile"]["name"] == "smoke" and suite["cuda"] == {"deform": False, "render": False}
    assert set(suite["sections"]) == SECTIONS
    for name, result in suite["sections"].items():
        assert "error" not in result, (name, result.get("error"))
        assert result["run"]["seconds"] > 0 and "load_average_1m_before" in result["run"], name


def test_smoke_sections_hold_their_measurements(smoke):
    s = load_suite(smoke)["sections"]
    profile = PROFILES["smoke"]
    cells = {(r["gaussians"], r["size"][0]) for r in s["render"]["cpu"]}
    assert cells == {(n, z) for n in profile.render_counts for z in profile.render_sizes}
    assert "cuda" not in s["render"]
    for row in s["render"]["cpu"]:
        assert row["frame"]["frames"] == profile.render_frames and row["coverage"] > 0.05
        assert set(row["stages_p50_ms"]) == {"project_sh", "sort_bin", "rasterize"}
    (deform,) = s["deform"]["results"]
    assert s["deform"]["backends"] == ["numpy", "numba", "torch-cpu"]
    assert deform["numpy"]["frame"]["frames"] > 0 and deform["torch-cpu"]["frame"]["frames"] > 0
    assert set(s["encode"]["encoders"]) == {"aiortc-vp8", "aiortc-h264", "pyav-x264-ultrafast"}
    for encoder in s["encode"]["encoders"].values():
        assert encoder["kbit_per_s_at_30fps"] > 0  # the encoder produced a stream
    (stream,) = s["stream"]["runs"]
    (peer,) = stream["python"]
    assert peer["glass_to_glass_ms"]["frames"] > 0 and min(peer["fps_per_viewer"]) > 0
    quality = s["stream_quality"]
    assert [(r["size"], r["content"]) for r in quality["psnr"]] == [
        (z, c) for z in profile.quality_sizes for c in profile.quality_contents]
    for row in quality["psnr"]:
        assert row["psnr_y_db"]["frames"] > 0 and row["measured_bps"] > 0 and row["bitrate_bps"] > 0
    assert [(r["size"], r["viewers"]) for r in quality["fanout"]] == [
        (z, n) for z in profile.quality_sizes for n in profile.quality_viewers]
    for row in quality["fanout"]:
        assert row["fps_min"] > 0 and row["frames_encoded"] > 0 and row["server_cpu_ms_per_frame"] > 0
    live = s["live"]
    assert {key for _, key in plots.IN_PROCESS} <= set(live["stages"]["stages_ms"])
    assert [run["label"] for run in live["runs"]] == ["Python sender + viewer", "tour driver, Python viewer"]
    for run in live["runs"]:
        assert run["glass_to_glass_ms"]["frames"] > 0 and {"deform", "render"} <= set(run["stages_ms"])
    (frame,) = s["baselines"]["avatar_frame"]
    assert set(frame["ratios_over_ours_p50"]) == {"baseline_torch", "baseline_torch_1_thread"}
    for label, ratios in frame["ratios_over_ours_p50"].items():
        assert set(ratios) == {"deform", "render", "total"} and frame[label]["total"]["frames"] > 0
    (cpu,) = s["baselines"]["cpu_renderer_vs_reference"]
    assert "total" in cpu["ratio_reference_over_ours_p50"]
    assert cpu["image_abs_difference"]["max"] < 0.02  # the baseline draws the same picture


def test_report_shows_every_plot_and_where_it_was_measured(smoke):
    text = (smoke / "report.md").read_text()
    suite = load_suite(smoke)
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(images) == sorted(plots.PLOTS)
    for name in images:
        picture = matplotlib.image.imread(smoke / name)  # a real PNG
        assert picture.ndim == 3 and picture.shape[0] > 200 and picture.shape[1] > 500
    for heading in ("## Where measured", "## Live loop", "## Rendering", "### Deformation", "### Encoders",
                    "## Glass-to-glass", "## Stream quality", "## Baselines", "## Reproduce"):
        assert heading in text
    assert suite["meta"]["cpu_model"] in text and suite["meta"]["commit"][:12] in text
    assert "Sections that failed" not in text and "Not measured in this run" not in text


def test_a_failed_section_is_reported_and_its_stale_plot_removed(smoke, tmp_path):
    suite = load_suite(smoke)
    suite["sections"]["render"] = {"error": "RuntimeError: the renderer broke", "run": {"seconds": 1.0}}
    (tmp_path / "suite_x.json").write_text(json.dumps(suite))
    (tmp_path / "render_fps.png").write_bytes(b"a stale picture")
    written = report.write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## Sections that failed" in text and "RuntimeError: the renderer broke" in text
    assert not (tmp_path / "render_fps.png").exists() and "](render_fps.png)" not in text
    assert tmp_path / "baselines.png" in written


def test_readme_section_comes_from_full_runs_only(smoke, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    with pytest.raises(ValueError, match="full runs only"):
        report.update_readme(smoke, readme)
    assert readme.read_text() == "# Title\n"


def test_readme_section_is_appended_then_replaced_between_its_markers(smoke, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    suite = load_suite(smoke)
    suite["profile"]["name"] = "full"
    (results / "suite_x.json").write_text(json.dumps(suite))
    report.write_report(results)
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nIntro.\n")
    report.update_readme(results, readme)
    first = readme.read_text()
    assert first.startswith("# Title\n\nIntro.\n\n" + report.START) and first.rstrip().endswith(report.END)
    section = first[first.index(report.START):]
    assert "## Performance" in section and suite["meta"]["cpu_model"] in section and "results/report.md" in section
    for link in re.findall(r"\]\(([^)]+)\)", section):
        assert (readme.parent / link).is_file(), link
    readme.write_text(first.rstrip("\n") + "\n\n## After\n\nkept\n")
    report.update_readme(results, readme)
    second = readme.read_text()
    assert second.count(report.START) == 1 and second.count(report.END) == 1
    assert second.startswith("# Title\n\nIntro.\n\n") and second.endswith("\n\n## After\n\nkept\n")


def test_replace_section_refuses_broken_markers():
    with pytest.raises(ValueError, match="broken performance section"):
        report.replace_section(f"a {report.END} b {report.START} c", "new")
    with pytest.raises(ValueError, match="broken performance section"):
        report.replace_section(f"a {report.START} b", "new")
    assert report.replace_section(f"a {report.START} old {report.END} b", "new") == "a new b"


def test_torch_baseline_compositor_draws_the_cpu_renderers_picture():
    scene = head_scene(3000, sh_degree=1, seed=3)
    camera = head_and_shoulders_camera(scene.vertices, 88, 72)  # not a multiple of the 16-pixel tiles
    viewmat, K = camera.viewmat.astype(np.float32), camera.K.astype(np.float32)
    background = np.array([0.2, 0.3, 0.4], np.float32)
    projected = project(scene.means, scene.quats, scene.scales, scene.opacities, scene.sh, viewmat, K, 88, 72,
                        sh_degree=1, antialiased=False)
    offsets, ids = sort_and_bin(projected, 88, 72)
    ours, _ = rasterize(projected, offsets, ids, 88, 72, background)
    theirs = bench_baselines.composite_tiles(
        *(torch.from_numpy(a) for a in (projected.means2d, projected.conics, projected.opacities, projected.colors)),
        torch.from_numpy(offsets), torch.from_numpy(ids.astype(np.int64)), 88, 72, torch.from_numpy(background),
        max_elements=1 << 16)  # several chunks of tiles
    assert theirs.shape == (72, 88, 3)
    assert (np.abs(ours - background).max(axis=2) > 0.05).mean() > 0.1  # the head is in the picture
    np.testing.assert_allclose(theirs.numpy(), ours, atol=1e-5)


def test_realtime_bench_needs_a_source_checkout(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "benchmarks", None)  # an installation without the benchmarks package
    assert cli.main(["bench", "--quick"]) == 2
    assert "source checkout" in capsys.readouterr().err


def test_realtime_bench_without_a_dependency_says_which(monkeypatch, capsys):
    import benchmarks

    for name in ("run_all", "report", "plots"):  # imported afresh, as in a new process
        monkeypatch.delattr(benchmarks, name)
        monkeypatch.delitem(sys.modules, f"benchmarks.{name}")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # an installation without the dev extra
    assert cli.main(["bench", "--quick"]) == 2
    assert "the benchmarks need matplotlib" in capsys.readouterr().err


@pytest.mark.skipif(cuda_usable(), reason="checks the error on a machine without CUDA")
def test_realtime_bench_cuda_without_a_device_is_a_clear_error(tmp_path):
    """Run as a user would, outside the repository: the installed `benchmarks` package is found as it is."""
    done = subprocess.run([sys.executable, "-m", "realtime.app.cli", "bench", "--backend", "cuda", "--out", "out"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "CUDA" in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py")))
def test_each_benchmark_is_a_module_of_the_package(name):
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.main) and f"python -m benchmarks.{name}" in module.__doc__


def test_report_only_without_results_is_a_clear_error(tmp_path, capsys):
    assert run_all.main(["--report-only", "--out", str(tmp_path)]) == 2
    assert "no suite_*.json" in capsys.readouterr().err
