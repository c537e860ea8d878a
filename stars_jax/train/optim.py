"""The optimizer of every stage from its config group: layer ids, learning-rate scales, parameter labels, the
optax transformation and the masked update (frozen tensors untouched).

Parameters are grouped by layer (timm's layer-wise decay numbering, SPEC §3.4, §4.6): 0 = embeddings, k + 1 =
block k, depth + 1 = final norm, depth + 2 = the stage's head (the STARS or classifier `head/`, or the MAMP
decoder and mask token). Layers below `first_tuned_layer` are FROZEN: no update and no optimizer state. Each
tuned layer trains with lr · layer_decay ** (depth + 1 - id) (the head with lr), so one table serves
pretraining (decay 1, nothing frozen), STARS tuning, the linear probe (head only) and fine-tuning.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from stars_jax.pytree import path_name
from stars_jax.train import schedules

FROZEN = "frozen"
_EMBEDDINGS = ("joints_embed", "temp_embed", "pos_embed")
_HEADS = ("head", "decoder", "mask_token")  # prefixes of the top-level names of each stage's head
OPTIMIZERS = ("adamw", "sgd")
DECAY_GROUPS = ("all", "no_1d")
CLIPS = ("none", "per_tensor", "global")
SCHEDULES = ("warmup_cosine", "constant")


def layer_id(name: str, depth: int) -> int:
  """Layer of a parameter path 'top/...': 0 embeddings, k + 1 block k, depth + 1 norm, depth + 2 head."""
  top = name.split("/")[0]
  if top in _EMBEDDINGS:
    return 0
  if top.startswith("blocks_"):
    return int(top.split("_")[1]) + 1
  if top == "norm":
    return depth + 1
  if top.startswith(_HEADS):
    return depth + 2
  raise ValueError(f"parameter {name!r} belongs to no layer (embeddings, blocks_<k>, norm, head, decoder*)")


def layer_scales(depth: int, layer_decay: float) -> dict[str, float]:
  """Learning-rate multiplier per label: layer_decay ** (depth + 1 - id) for id <= depth + 1 (block k gets
  decay ** (depth - k), the final norm 1; depth 8, decay 0.8 gives 0.1342 ... 1.0), and 1 for the head."""
  scales = {f"layer_{i}": layer_decay ** (depth + 1 - i) for i in range(depth + 2)}
  scales[f"layer_{depth + 2}"] = 1.0
  return scales


def param_labels(params: Any, depth: int, first_tuned_layer: int = 0) -> Any:
  """Label of every parameter: FROZEN below `first_tuned_layer`, else 'layer_<id>'. Raises on a parameter
  that no layer covers, so a new module cannot silently escape (or join) the optimizer."""

  def label(path, _):
    layer = layer_id(path_name(path), depth)
    return FROZEN if layer < first_tuned_layer else f"layer_{layer}"

  return jax.tree_util.tree_map_with_path(label, params)


def weight_decay_mask(params: Any) -> Any:
  """timm 0.3.2 `add_weight_decay`: no decay on 1-D tensors and biases, decay on everything else
  (including positional embeddings and the mask token), SPEC §3.2."""
  return jax.tree_util.tree_map_with_path(lambda path, p: p.ndim > 1 and not path_name(path).endswith("bias"), params)


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


def make_schedule(group: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
  """The base learning rate per step of a stage group: `schedule.name` 'warmup_cosine' (linear warmup, then
  half-cosine from optim.lr to schedule.min_lr, per iteration, SPEC §3.1) or 'constant' (optim.lr)."""
  s, lr = group.schedule, group.optim.lr
  if s.name == "constant":
    return optax.constant_schedule(lr)
  if s.name == "warmup_cosine":
    return schedules.warmup_half_cosine(
      base_lr=lr, min_lr=s.min_lr, warmup_epochs=s.warmup_epochs, epochs=group.epochs, steps_per_epoch=steps_per_epoch
    )
  raise ValueError(f"schedule.name={s.name!r}; choose one of {SCHEDULES}")


def layer_optimizer(o: ml_collections.ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
  """The optimizer of one layer group at learning rate `lr`: AdamW, or SGD with momentum after weight decay."""
  mask = None if o.decay_groups == "all" else weight_decay_mask
  if o.name == "adamw":  # PyTorch-style AdamW: decoupled decay scaled by the learning rate
    return optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=mask)
  return optax.chain(optax.add_decayed_weights(o.weight_decay, mask=mask), optax.sgd(lr, momentum=o.momentum))


def make_optimizer(
  o: ml_collections.ConfigDict, schedule: optax.Schedule, labels: Any, depth: int
) -> optax.GradientTransformation:
  """Clipping, then one optimizer per label with lr = layer scale · schedule; FROZEN gets no update or state.

  o.name: 'adamw' | 'sgd'; o.decay_groups: 'all' (every tuned tensor decays; STARS official, SPEC §7.4) or
  'no_1d' (timm groups); o.clip: 'none', 'per_tensor' (STARS official, SPEC §7.6) or 'global' (o.clip_norm).
  """
  for key, value, choices in (
    ("name", o.name, OPTIMIZERS),
    ("decay_groups", o.decay_groups, DECAY_GROUPS),
    ("clip", o.clip, CLIPS),
  ):
    if value not in choices:
      raise ValueError(f"optim.{key}={value!r}; choose one of {choices}")
  clipper = {
    "none": optax.identity,
    "per_tensor": lambda: clip_by_tensor_norm(o.clip_norm),
    "global": lambda: optax.clip_by_global_norm(o.clip_norm),
  }[o.clip]()
  scales = layer_scales(depth, o.layer_decay)
  groups = {FROZEN: optax.set_to_zero()}
  for label in sorted(set(jax.tree.leaves(labels)) - {FROZEN}):
    lr = (lambda s: lambda step: s * schedule(step))(scales[label])
    groups[label] = layer_optimizer(o, lr)
  return optax.chain(clipper, optax.multi_transform(groups, labels))


def apply_updates(params: Any, updates: Any, labels: Any) -> Any:
  """params + updates on tuned tensors; FROZEN tensors are returned untouched (bit-identical)."""
  return jax.tree.map(lambda label, p, u: p if label == FROZEN else p + u.astype(p.dtype), labels, params, updates)
