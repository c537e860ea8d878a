"""Stage 2: self-supervised tuning of a MAMP encoder with `stars.objective` (SPEC §4, §4.11).

  nnclr  STARS' nearest-neighbour contrastive tuning (`stars_jax.train.nnclr`), the paper's method
  moco   the repository's MoCo ablation: momentum teacher and key queue (`stars_jax.train.moco`)
  dino   the repository's DINO ablation: momentum teacher, Sinkhorn–Knopp targets, KoLeo (`stars_jax.train.dino`)

Every objective runs on the same stage (`stars_jax.train.tuning`): recipe layers, optimizer, initialisation,
kNN monitor and model selection.
"""

import pathlib

import jax
import ml_collections

from stars_jax.train import dino, moco, nnclr, runner, tuning

OBJECTIVES = {"nnclr": nnclr.objective, "moco": moco.objective, "dino": dino.objective}


def stage(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> runner.Stage:
  """The tuning stage of `config.stars.objective`; its settings are checked here, before anything trains (also
  before the first step of a pipeline trains)."""
  name = config.stars.objective
  if name not in OBJECTIVES:
    raise ValueError(f"stars.objective={name!r}; choose one of {tuple(OBJECTIVES)}")
  return tuning.stage(config, mesh, OBJECTIVES[name])


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, mesh: jax.sharding.Mesh) -> runner.RunResult:
  """Tunes under workdir (resuming from workdir/checkpoints); `selected` is the monitor's best state (also in
  workdir/best), or the last state when the monitor never ran."""
  result = runner.run(stage(config, mesh), config, workdir, mesh)
  if result.selected is None:
    result.selected = result.state
  return result
