"""The compute dtype and attention kernel each chip resolves 'auto' to, and the refusals, on fake chips."""

import os
import pathlib
import subprocess
import sys

import pytest

from stars_jax import device

CPU = device.Chip("cpu", "cpu")
TPU = device.Chip("tpu", "TPU v5 lite")
H100 = device.Chip("gpu", "NVIDIA H100 80GB HBM3", (9, 0))
A100 = device.Chip("gpu", "NVIDIA A100-SXM4-40GB", (8, 0))
T4 = device.Chip("gpu", "Tesla T4", (7, 5))
ROCM = device.Chip("gpu", "AMD Instinct MI250X", None)
NTU = (32, 32)  # the NTU-60 model: encoder and decoder 256 wide, 8 heads


@pytest.mark.parametrize(
  "chip, dtype",
  [(CPU, "float32"), (TPU, "bfloat16"), (H100, "bfloat16"), (A100, "bfloat16"), (T4, "float32"), (ROCM, "float32")],
)
def test_auto_dtype_is_bf16_only_on_native_bf16_units(chip, dtype):
  assert device.compute_dtype("auto", chip) == dtype


@pytest.mark.parametrize(
  "chip, impl", [(CPU, "chunked"), (TPU, "xla"), (H100, "cudnn"), (A100, "cudnn"), (T4, "xla"), (ROCM, "xla")]
)
def test_auto_execution_per_chip(chip, impl):
  choice = device.execution("auto", "auto", chip, NTU)
  assert choice.attention_impl == impl
  assert choice.device_kind == chip.kind


def test_old_configs_empty_attention_is_auto():
  for chip in (CPU, TPU, H100, T4):
    assert device.attention_impl("", chip, "bfloat16", NTU) == device.attention_impl("auto", chip, "bfloat16", NTU)


@pytest.mark.parametrize(
  "dtype, head_dims, impl",
  [
    ("float32", NTU, "xla"),  # cuDNN's fused attention is half precision only
    ("float16", NTU, "cudnn"),
    ("bfloat16", (16, 20), "xla"),  # 20 is no multiple of 8
    ("bfloat16", (256, 32), "cudnn"),
    ("bfloat16", (264, 32), "xla"),  # above 256
  ],
)
def test_auto_attention_on_hopper_by_dtype_and_head_dim(dtype, head_dims, impl):
  assert device.attention_impl("auto", H100, dtype, head_dims) == impl


def test_ampere_cudnn_head_dim_limit_is_128():
  assert device.attention_impl("auto", A100, "bfloat16", (128,)) == "cudnn"
  assert device.attention_impl("auto", A100, "bfloat16", (256,)) == "xla"


def test_explicit_choices_pass_through_where_they_run():
  assert device.execution("float32", "xla", H100, NTU).attention_impl == "xla"
  assert device.execution("bfloat16", "chunked", CPU, NTU).attention_impl == "chunked"
  assert device.execution("float32", "einsum", TPU, NTU).compute_dtype == "float32"
  assert device.execution("bfloat16", "auto", T4, NTU).attention_impl == "xla"  # emulated bf16: no cuDNN


@pytest.mark.parametrize(
  "dtype, impl, chip, key",
  [
    ("float32", "cudnn", H100, "model.attention_impl"),
    ("auto", "cudnn", T4, "model.attention_impl"),  # auto is float32 there, and 7.5 has no fused kernel
    ("bfloat16", "cudnn", CPU, "model.attention_impl"),
    ("bfloat16", "cudnn", ROCM, "model.attention_impl"),
    ("auto", "chunked", H100, "model.attention_impl"),
    ("auto", "chunked", TPU, "model.attention_impl"),
    ("auto", "flash", CPU, "model.attention_impl"),
    ("fp8", "auto", H100, "model.compute_dtype"),
  ],
)
def test_impossible_choices_are_refused_in_one_line_naming_the_key(dtype, impl, chip, key):
  with pytest.raises(device.ChoiceError, match=key) as error:
    device.execution(dtype, impl, chip, NTU)
  assert "\n" not in str(error.value)


def test_cudnn_head_dim_refused():
  with pytest.raises(device.ChoiceError, match="multiples of 8"):
    device.attention_impl("cudnn", H100, "bfloat16", (32, 12))


def test_describe_reads_this_host():
  chip = device.describe()
  assert chip.platform == "cpu" and chip.compute_capability is None
  assert device.execution("auto", "auto", chip, NTU).to_dict() == {
    "compute_dtype": "float32",
    "attention_impl": "chunked",
    "platform": "cpu",
    "device_kind": "cpu",
    "compute_capability": None,
  }


def test_the_job_refuses_an_impossible_choice_in_one_line_before_compiling(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run(
    [sys.executable, "-m", "stars_jax.main", "--config=configs/synthetic.py:tiny", f"--workdir={tmp_path / 'run'}"]
    + [f"--config.data.synthetic.dir={tmp_path / 'data'}", "--config.model.attention_impl=cudnn"],
    env=env,
    cwd=pathlib.Path(__file__).resolve().parents[1],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "model.attention_impl='cudnn' needs an NVIDIA GPU" in proc.stderr and "Traceback" not in proc.stderr
  assert not (tmp_path / "data").exists()  # refused before the job made its data
