"""benchmarks/compare_torch.py without the official code: the precision settings and a failing worker's report."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import jax
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "compare_torch.py"


def load_script():
  spec = importlib.util.spec_from_file_location("compare_torch", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_a_failing_worker_is_reported_with_the_end_of_its_stderr(tmp_path):
  out = tmp_path / "compare.json"
  proc = subprocess.run(
    [sys.executable, str(SCRIPT), "--torch-reference", str(tmp_path / "missing"), "--stages", "mamp"]
    + ["--runs", "torch-float32", "--precision", "fp32", "--out", str(out)],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 1
  assert "mamp torch-float32 failed (exit 1); its stderr ends:\nTraceback" in proc.stderr  # torch or the checkout
  assert "| mamp | torch-float32 | fp32 | failed (exit 1) |" in proc.stdout
  (row,) = json.loads(out.read_text())["rows"]
  assert row["precision"] == "fp32" and row["error"].startswith("Traceback") and "Error" in row["error"]


@pytest.mark.parametrize("precision, setting", [("tf32", "tensorfloat32"), ("fp32", "highest")])
def test_jax_precision_sets_the_matmul_precision_and_labels_the_cpu_as_plain_float32(precision, setting):
  before = jax.config.jax_default_matmul_precision
  try:
    label = load_script().jax_precision(precision)
    assert jax.config.jax_default_matmul_precision == setting
  finally:
    jax.config.update("jax_default_matmul_precision", before)
  assert label.startswith("float32 (cpu: no TF32")


def test_torch_precision_sets_matmul_and_cudnn_alike():
  torch = pytest.importorskip("torch")
  saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
  script = load_script()
  try:
    assert script.torch_precision("tf32", cuda=True) == "TF32 matmuls (both)"
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert script.torch_precision("fp32", cuda=True) == "strict FP32 matmuls (both)"
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "highest"
  finally:
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.set_float32_matmul_precision(saved[2])
