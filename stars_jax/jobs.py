"""The jobs `main` runs, one per `config.stage`; each returns the metrics that go into results.json."""
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from stars_jax.data import sources
from stars_jax.data.npz import open_split
from stars_jax.evaluate import features, probe
from stars_jax.models.mamp import encoder_of
from stars_jax.train import pretrain


def pretrain_job(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict[str, Any]:
  """MAMP pretraining, then (if `probe.enabled`) frozen-feature checks of the encoder vs a random one."""
  run = pretrain.train(config, workdir)
  results: dict[str, Any] = {"pretrain": {
      "steps": run["steps"], "steps_per_epoch": run["steps_per_epoch"],
      "wall_time_s": run["wall_time_s"], "loss_history": run["history"],
      **(run["history"][-1] if run["history"] else {})}}
  if config.probe.enabled:
    path = sources.dataset_path(config.data)
    train_split, test_split = open_split(path, "train"), open_split(path, "test")
    encoder = encoder_of(run["model"])
    trained = features.encoder_params(jax.device_get(run["state"].params))
    clip = jnp.zeros((1, 2, config.data.window, config.model.num_joints, 3))  # (N, M, T, V, C)
    init_key, _ = jax.random.split(jax.random.PRNGKey(config.seed + 1))  # as init_state does for seed + 1
    untrained = jax.jit(encoder.init)(init_key, clip)["params"]
    results.update(probe.probe(encoder, {"stage1": trained, "random_init": untrained}, train_split,
                               test_split, config.data, config.probe.batch_size, run["mesh"]))
  return results


JOBS: dict[str, Callable[[ml_collections.ConfigDict, pathlib.Path], dict[str, Any]]] = {
    "pretrain": pretrain_job,
}
