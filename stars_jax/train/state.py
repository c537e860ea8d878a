"""The one train state of every stage, and its creation directly in the sharded placement."""

from collections.abc import Callable, Sequence
from typing import Any

import flax
import jax
import ml_collections

from stars_jax import sharding


@flax.struct.dataclass
class TrainState:
  """Everything a step reads and writes. `rng` is the run's base key; step keys are fold_in(rng, step).
  `batch_stats` is {} for models without BatchNorm; `queue` (a SupportQueue) is None outside the NNCLR and MoCo
  tuning stages; `teacher` ({'params', 'batch_stats'}, the EMA model of MoCo and DINO tuning) is None elsewhere."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  queue: Any | None = None
  teacher: Any | None = None


def create_sharded(
  create: Callable[[], TrainState],
  mesh: jax.sharding.Mesh,
  sharding_config: ml_collections.ConfigDict,
  extra_rules: Sequence[tuple[str, str]] = (),
) -> tuple[TrainState, Any]:
  """`create()` run under jit straight into its placement: `extra_rules` first, then replicated or FSDP
  parameters (`sharding_config.fsdp`). Returns (state, state shardings)."""
  abstract = jax.eval_shape(create)
  rules = [*extra_rules, *sharding.default_rules(sharding_config.fsdp)]
  shardings = sharding.tree_shardings(abstract, mesh, rules, sharding_config.fsdp_min_size)
  return jax.jit(create, out_shardings=shardings)(), shardings
