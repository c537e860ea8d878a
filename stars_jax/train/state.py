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
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


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


# --- STARS partial tuning (SPEC §4.6) -------------------------------------------------------------------------
FROZEN = "frozen"
_EMBEDDINGS = ("joints_embed", "temp_embed", "pos_embed")


@flax.struct.dataclass
class TuneState:
  """The STARS stage's state: params (encoder + head), BatchNorm statistics, optimizer state, support queue."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  queue: Any     # stars_jax.support_queue.SupportQueue
  rng: jax.Array


def tuning_layer(name: str, depth: int) -> int:
  """Layer id of a parameter path (models/stars.py): 0 embeddings, k + 1 block k, depth + 1 norm, depth + 2 head."""
  top = name.split("/")[0]
  if top in _EMBEDDINGS:
    return 0
  if top.startswith("blocks_"):
    return int(top.split("_")[1]) + 1
  if top == "norm":
    return depth + 1
  if top == "head":
    return depth + 2
  raise ValueError(f"parameter {name!r} belongs to no tuning layer")


def tuning_labels(params, depth: int, first_tuned_layer: int) -> Any:
  """Per-parameter optimizer group: FROZEN below `first_tuned_layer`, else 'layer_<id>'."""
  def label(path, _):
    layer = tuning_layer(path_name(path), depth)
    return FROZEN if layer < first_tuned_layer else f"layer_{layer}"
  return jax.tree_util.tree_map_with_path(label, params)


def layer_lr_scales(depth: int, layer_decay: float) -> dict[str, float]:
  """Learning-rate multiplier per group: layer_decay ** (depth + 1 - id), so block k gets decay ** (depth - k)
  and the final norm 1 (SPEC §4.6 table); the head (id depth + 2) also gets 1."""
  scales = {f"layer_{i}": layer_decay ** (depth + 1 - i) for i in range(depth + 2)}
  scales[f"layer_{depth + 2}"] = 1.0
  return scales


def clip_by_tensor_norm(max_norm: float, eps: float = 1e-6) -> optax.GradientTransformation:
  """Each tensor separately: g <- g * min(1, max_norm / (||g|| + eps)), as the official loop of
  `clip_grad_norm_` over single parameters does (SPEC §4.6, §7.6)."""
  def update(updates, state, params=None):
    del params
    def clip(g):
      norm = jnp.sqrt(jnp.sum(jnp.square(g.astype(jnp.float32))))
      return (g * jnp.minimum(1.0, max_norm / (norm + eps))).astype(g.dtype)
    return jax.tree.map(clip, updates), state
  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def tuning_optimizer(labels, scales: dict[str, float], schedule: optax.Schedule, *, b1: float, b2: float,
                     eps: float, weight_decay: float, decay_groups: str, clip: str,
                     clip_norm: float) -> optax.GradientTransformation:
  """Clipping, then AdamW per learning-rate group; FROZEN parameters get no update and no optimizer state.

  decay_groups: 'all' (official effective: every tuned tensor decays, SPEC §7.4) or 'no_1d' (timm groups).
  clip: 'per_tensor' (official, SPEC §7.6), 'global' (global-norm clipping) or 'none'.
  """
  clippers = {"per_tensor": lambda: clip_by_tensor_norm(clip_norm),
              "global": lambda: optax.clip_by_global_norm(clip_norm), "none": optax.identity}
  if clip not in clippers:
    raise ValueError(f"optim.clip={clip!r}; choose one of {sorted(clippers)}")
  if decay_groups not in ("all", "no_1d"):
    raise ValueError(f"optim.decay_groups={decay_groups!r}; choose 'all' or 'no_1d'")
  mask = None if decay_groups == "all" else weight_decay_mask
  groups = {FROZEN: optax.set_to_zero()}
  for label in sorted(set(jax.tree.leaves(labels)) - {FROZEN}):
    lr = (lambda s: lambda step: s * schedule(step))(scales[label])
    groups[label] = optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=mask)
  return optax.chain(clippers[clip](), optax.multi_transform(groups, labels))


def apply_tuned_updates(params, updates, labels) -> Any:
  """params + updates on tuned tensors; FROZEN tensors are returned untouched (bit-identical)."""
  return jax.tree.map(lambda label, p, u: p if label == FROZEN else p + u.astype(p.dtype),
                      labels, params, updates)
