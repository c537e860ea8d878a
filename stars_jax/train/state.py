"""Train state and optimizer construction."""
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  """Everything a step reads and writes. `rng` is the run's base key; step keys are fold_in(rng, step)."""
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  apply_fn: Callable = flax.struct.field(pytree_node=False)
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, *, params, tx: optax.GradientTransformation, apply_fn: Callable, rng: jax.Array):
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=rng,
               apply_fn=apply_fn, tx=tx)

  def apply_gradients(self, grads) -> "TrainState":
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                        opt_state=opt_state)


def path_name(path) -> str:
  """A parameter's path as 'a/b/c' (the names used by partition rules and parameter labels)."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def weight_decay_mask(params) -> Any:
  """timm 0.3.2 `add_weight_decay`: no decay on 1-D tensors and biases, decay on everything else
  (including positional embeddings and the mask token), SPEC §3.2."""
  return jax.tree_util.tree_map_with_path(
      lambda path, p: p.ndim > 1 and not path_name(path).endswith("bias"), params)


def adamw(schedule: optax.Schedule, *, b1: float, b2: float, eps: float, weight_decay: float,
          params) -> optax.GradientTransformation:
  """PyTorch-style AdamW (decoupled decay scaled by the learning rate) with the pretraining decay groups."""
  return optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                     mask=weight_decay_mask(params))
