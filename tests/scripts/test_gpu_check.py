"""scripts/gpu_check.sh: the GPU check and timing report, run here on the CPU with tiny sizes (as in CI)."""

import os
import subprocess
import sys

import pytest

from repo_scripts import REPO_ROOT as ROOT, load_script


def _report_module():
    return load_script("scripts/gpu_report.py", "gpu_report")


def _env():
    return dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
                CUDA_VISIBLE_DEVICES="")


def test_report_names_every_missing_step(tmp_path):
    report = _report_module()
    (tmp_path / "steps.tsv").write_text("pytest_gpu 0 12.0\nbench_unet 124 150.0\n")
    (tmp_path / "bench_unet.log").write_text("building model\n")
    text, ok = report.build_report(str(tmp_path), "cuda", small=False)
    assert not ok
    for section in report.SECTIONS:
        assert f"## {section}\n" in text
    assert "No results: step `bench_unet` timed out, 150 s." in text and "building model" in text
    assert "No results: step `bench_scene` not run." in text


def test_bad_option_is_one_error_line(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--device", "tpu"], env=_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr == "error: --device tpu: use cuda, cuda:N or cpu\n"


@pytest.mark.slow
def test_small_cpu_run_reports_every_section(tmp_path):
    out = tmp_path / "gpu_check"
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--device", "cpu", "--small",
                             "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = _report_module()
    written = (out / "report.md").read_text()
    assert result.stdout == written  # ONE report, printed and written
    for section in report.SECTIONS:
        assert f"## {section}\n" in written, section
    for step in ("pytest_gpu", "bench_unet", "bench_render", "bench_sample", "bench_scene"):
        assert f"| {step} | ok, " in written, step
    assert "test_cuda_matches_cpu_unet_fp32" in written and "tests.geometry.test_warp::test_cuda_matches_cpu" in written
    assert "| faithful | auto | 10/2 | bf16 |" in written and "| fast | dpmpp_2m | 5/2 | fp32 |" in written
    assert "n/a (not a CUDA run)" in written and "Overall: all steps ran and every test passed." in written
