"""Multi-process training through `jax.distributed` on localhost CPU processes, via the real command line.

A 2-process run (1 CPU device each, FSDP on) and a 1-process run (2 CPU devices, replicated) with the same
global batch must reach the same parameters, and a checkpoint written by the 2 processes must resume in one
process to the state of an uninterrupted 1-process run. The runs train with SGD (momentum 0.9) instead of AdamW:
SGD moves parameters linearly in the gradients, so reduction-order rounding stays rounding, whereas Adam turns
the rounding noise of a near-zero gradient into a full learning-rate step (the math under test is the sharding,
not the optimizer; test_pretrain.py compares AdamW's gradients across device counts).
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from stars_jax.pytree import path_name
from stars_jax.train import checkpoint

pytestmark = [pytest.mark.multihost, pytest.mark.slow]

REPO = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT_S = 600
MOMENTUM = 0.9


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _launch(
  config_file: pathlib.Path, workdir: pathlib.Path, *, processes: int, max_steps: int, fsdp: bool = False
) -> None:
  """Runs `stars_jax.main` as `processes` local processes sharing one global 2-device mesh."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={2 // processes}"}
  cmd = [
    sys.executable,
    "-m",
    "stars_jax.main",
    f"--config={config_file}",
    f"--workdir={workdir}",
    f"--config.pretrain.max_steps={max_steps}",
    f"--config.sharding.fsdp={fsdp}",
    "--config.sharding.fsdp_min_size=0",
    "--config.pretrain.optim.name=sgd",
    f"--config.pretrain.optim.momentum={MOMENTUM}",
    "--config.pretrain.optim.weight_decay=0.0",
  ]
  if processes > 1:
    cmd += [f"--coordinator_address=localhost:{_free_port()}", f"--num_processes={processes}"]
  procs = [
    subprocess.Popen(
      cmd + ([f"--process_id={i}"] if processes > 1 else []),
      cwd=REPO,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(processes)
  ]
  try:
    outputs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
  finally:
    for p in procs:
      p.kill()
  for i, (p, out) in enumerate(zip(procs, outputs)):
    assert p.returncode == 0, f"process {i} of {processes} failed:\n{out[-5000:]}"


def _params(workdir: pathlib.Path, step: int) -> dict[str, np.ndarray]:
  """The parameters saved at `step`, restored onto one device of this (single) test process."""
  item = workdir / "checkpoints" / str(step) / checkpoint.STATE_ITEM
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  saved = checkpoint.saved_structure(item)["params"]
  target = jax.tree.map(
    lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=device),
    saved,
    is_leaf=lambda m: hasattr(m, "shape"),
  )
  restored = checkpoint.restore_fields(item, {"params": target})["params"]
  return {path_name(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(restored)[0]}


def _history(workdir: pathlib.Path) -> list[dict[str, float]]:
  """The per-step log (loss, lr, grad_norm) of the run's results.json."""
  return json.loads((workdir / "results.json").read_text())["pretrain"]["loss_history"]


def _losses(workdir: pathlib.Path) -> list[float]:
  return [row["loss"] for row in _history(workdir)]


def _assert_same(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray], history: list[dict]) -> None:
  """Equal up to reduction-order rounding carried through SGD. Summed over another device order, each gradient
  element differs by at most ~1e-5 of itself plus 1e-6 of the largest gradient (test_pretrain.py's bound), so by
  less than 2e-5 * the global gradient norm (>= every element). SGD with momentum beta moves a parameter by
  lr_t * (sum of past gradients weighted by beta powers <= 1 / (1 - beta)), so after the logged steps the two
  runs differ by at most sum_t lr_t * 2e-5 * grad_norm_t / (1 - beta); plus float32 rounding of the values."""
  atol = sum(row["lr"] * row["grad_norm"] for row in history) * 2e-5 / (1 - MOMENTUM)
  assert actual.keys() == expected.keys()
  for name in expected:
    np.testing.assert_allclose(actual[name], expected[name], rtol=1e-6, atol=atol, err_msg=name)


def test_two_processes_match_one_and_resume_in_one(tmp_path, tiny_config_file):
  config_file = tiny_config_file  # conftest's tiny pretraining config
  single, multi = tmp_path / "single", tmp_path / "multi"

  _launch(config_file, single, processes=1, max_steps=6)  # checkpoints at steps 3 and 6
  _launch(config_file, multi, processes=2, max_steps=3, fsdp=True)
  assert sorted(p.name for p in (multi / "checkpoints").iterdir() if p.name.isdigit()) == ["3"]
  losses_multi = _losses(multi)  # results.json: written by process 0 only
  np.testing.assert_allclose(losses_multi, _losses(single)[:3], rtol=1e-5)
  _assert_same(_params(multi, 3), _params(single, 3), _history(single)[:3])

  _launch(config_file, multi, processes=1, max_steps=6)  # resumes the 2-process checkpoint
  _assert_same(_params(multi, 6), _params(single, 6), _history(single))
