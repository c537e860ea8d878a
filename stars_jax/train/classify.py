"""Downstream classification stages: linear probe (SPEC §3.3), fine-tune (§3.4), semi-supervised (§3.5) and
transfer (§3.6, a fine-tune whose `init` was pretrained on another dataset).

Both protocols share the model (`models.classifier.Classifier`), the jitted step (augment on device, forward,
cross-entropy with optional label smoothing, masked optimizer update) and the per-epoch test evaluation. They
differ in what trains and how: the linear probe trains the head only with SGD on a frozen encoder in inference
mode; fine-tuning trains everything with AdamW and layer-wise learning-rate decay. `config.<protocol>` holds the
settings (`configs/linear.py:linear_group` / `configs/finetune.py:finetune_group`).
"""

import functools
import logging
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from stars_jax import io
from stars_jax.data import sources, transforms
from stars_jax.data.npz import take
from stars_jax.evaluate import features
from stars_jax.models import factory
from stars_jax.models.classifier import Classifier
from stars_jax.models.mamp import encoder_params
from stars_jax.train import checkpoint, guards, optim, runner
from stars_jax.train.hooks import AccuracyHook
from stars_jax.train.state import TrainState

TEST_SCORES = "test_scores.npz"  # the final state's test logits and labels, under the stage's workdir
# First tuned layer (models/stars.py numbering) of each protocol: the head only, or everything.
LINEAR_MODES = ("full", "cached")  # augmented clips through the frozen encoder every step / features cached once
SUBSET_DRAWS = ("seeded", "official")  # the semi-supervised subset: one draw from the seed / per rank (SPEC §7.13)
FIRST_TUNED = {"linear": lambda depth: depth + 2, "finetune": lambda depth: 0}


def smoothed_cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float) -> jax.Array:
  """Mean over the batch of CE against (1 - s) one_hot + s / C, which equals timm's LabelSmoothingCrossEntropy
  ((1 - s) NLL + s mean(-log p)); s = 0 is plain cross-entropy."""
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()


def train_step(
  state: TrainState, batch: runner.Batch, *, model: Classifier, config, tx, labels, schedule, smoothing: float
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One step on raw samples batch['x'] (N, 300, 150) with labels batch['label'] (N,)."""
  x, y = batch["x"], batch["label"]
  aug_key, dropout_key, drop_path_key = jax.random.split(jax.random.fold_in(state.rng, state.step), 3)
  clips = transforms.train_clips(aug_key, x, config.data)  # (N, M, T, V, C)

  def loss_fn(params):
    logits, mutated = model.apply(
      {"params": params, "batch_stats": state.batch_stats},
      clips,
      train=True,
      mutable=["batch_stats"],
      rngs={"dropout": dropout_key, "drop_path": drop_path_key},
    )
    return smoothed_cross_entropy(logits, y, smoothing), (logits, mutated["batch_stats"])

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  metrics = {"loss": loss, "lr": schedule(state.step), "train_top1": 100.0 * jnp.mean(jnp.argmax(logits, -1) == y)}
  return state.replace(
    step=state.step + 1,
    params=optim.apply_updates(state.params, updates, labels),
    batch_stats=batch_stats,
    opt_state=opt_state,
  ), metrics


def load_encoder(state: TrainState, init: str | dict, config_key: str, epochs: int = -1) -> TrainState:
  """Encoder weights from a checkpoint directory of ours (a MAMP or STARS run: decoder, mask token and
  pretraining head dropped, SPEC §3.7; its newest step, or with `epochs` > 0 the one saved after that many
  epochs) or from an in-memory encoder parameter tree; the head stays fresh."""
  target = encoder_params(state.params)
  if isinstance(init, dict):
    restored = jax.tree.map(
      lambda t, v: jax.device_put(jnp.asarray(v, t.dtype), t.sharding), target, encoder_params(init)
    )
  else:
    restored = checkpoint.restore_params(init, target, config_key, epochs)
  return state.replace(params={**state.params, **restored})


def label_subset(labels: np.ndarray, ratio: float, seed: int, class_balanced: bool) -> np.ndarray:
  """Sorted indices of the labelled subset for semi-supervised training, drawn once from `seed` alone (the
  same on any number of devices, unlike the official per-rank draw, SPEC §7.13). Default: the first
  int(N * ratio) of a seeded permutation, as the official feeder (NTU-60 XSub: 400 at 1 %, 4,009 at 10 %);
  class_balanced: max(1, round(ratio * n_c)) of each class."""
  _check_ratio(ratio)
  rng = np.random.default_rng(seed)
  if not class_balanced:
    return np.sort(rng.permutation(len(labels))[: int(len(labels) * ratio)])
  picks = [
    rng.permutation(np.flatnonzero(labels == c))[: max(1, int(round(ratio * np.sum(labels == c))))]
    for c in np.unique(labels)
  ]
  return np.sort(np.concatenate(picks))


def official_label_subset(num_samples: int, ratio: float, seed: int, world_size: int) -> np.ndarray:
  """The official semi-supervised draw (SPEC §1.6, §7.13): each of `world_size` ranks seeds numpy's global RNG
  with seed + rank and keeps the first int(N * ratio) of a permutation, so each trains on its own subset. Returns
  the sorted union of the ranks' subsets (about world_size times the labels of one draw)."""
  _check_ratio(ratio)
  if world_size < 1:
    raise ValueError(f"world_size must be >= 1 for the official draw, got {world_size}")
  keep = int(num_samples * ratio)
  draws = [np.random.RandomState(seed + rank).permutation(num_samples)[:keep] for rank in range(world_size)]
  return np.unique(np.concatenate(draws))


def _check_ratio(ratio: float) -> None:
  if not 0.0 < ratio <= 1.0:
    raise ValueError(f"data_ratio must be in (0, 1], got {ratio}")


def labelled_train_split(config: ml_collections.ConfigDict, protocol: str, workdir: pathlib.Path | None):
  """The training split of a protocol: the seen classes, or with `data_ratio` < 1 the labelled subset (saved as
  workdir/subset_indices.json when a workdir is given)."""
  c = config[protocol]
  train_split = sources.open_seen_split(config.data, "train")
  if c.data_ratio >= 1.0:
    return train_split
  if c.subset_draw == "official":
    subset = official_label_subset(len(train_split), c.data_ratio, config.seed, c.world_size)
  elif c.subset_draw == "seeded":
    subset = label_subset(np.asarray(train_split.labels), c.data_ratio, config.seed, c.class_balanced)
  else:
    raise ValueError(f"{protocol}.subset_draw={c.subset_draw!r}; choose one of {SUBSET_DRAWS}")
  if workdir is not None:
    workdir.mkdir(parents=True, exist_ok=True)
    draw = {"subset_draw": c.subset_draw, **({"world_size": c.world_size} if c.subset_draw == "official" else {})}
    io.write_json_atomic(
      workdir / "subset_indices.json",
      {
        "data_ratio": c.data_ratio,
        "class_balanced": c.class_balanced,
        "seed": config.seed,
        **draw,
        "indices": subset.tolist(),
      },
    )
  return take(train_split, subset)


def fresh_state(config: ml_collections.ConfigDict, protocol: str, model: Classifier, schedule: optax.Schedule):
  """(create, tx, labels): the state factory of a fresh classifier with its optimizer (SGD on the head for
  'linear', layer-decayed AdamW on everything for 'finetune', as config.<protocol>.optim says)."""
  init_key, state_key = jax.random.split(jax.random.PRNGKey(config.seed))
  clip = jnp.zeros((1, 2, config.data.window, config.model.num_joints, 3), jnp.float32)  # (N, M, T, V, C)
  abstract_params = jax.eval_shape(functools.partial(model.init, train=False), init_key, clip)["params"]
  labels = optim.param_labels(abstract_params, model.depth, FIRST_TUNED[protocol](model.depth))
  tx = optim.make_optimizer(config[protocol].optim, schedule, labels, model.depth)

  def create() -> TrainState:
    variables = model.init(init_key, clip, train=False)
    return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=variables["params"],
      batch_stats=variables["batch_stats"],
      opt_state=tx.init(variables["params"]),
      rng=state_key,
    )

  return create, tx, labels


def stage(
  config: ml_collections.ConfigDict, workdir: pathlib.Path | None, protocol: str, init: str | dict | None = None
) -> runner.Stage:
  """The '{protocol}' stage from `init` (default `config.<protocol>.init`; '' = random encoder)."""
  if protocol not in FIRST_TUNED:
    raise ValueError(f"protocol={protocol!r}; choose one of {sorted(FIRST_TUNED)}")
  c = config[protocol]
  guards.check_group(c, protocol)
  train_split = labelled_train_split(config, protocol, workdir)
  test_split = sources.open_seen_split(config.data, "test")
  num_classes = c.num_classes if c.num_classes > 0 else train_split.num_classes
  spe, _ = runner.run_length(c, len(train_split))
  model = factory.classifier(config, protocol, num_classes)
  schedule = optim.make_schedule(c, spe)
  create, tx, labels = fresh_state(config, protocol, model, schedule)
  init = c.init if init is None else init

  def initialize(state: TrainState, ctx: runner.RunContext) -> TrainState:
    if isinstance(init, dict) or init:
      return load_encoder(state, init, f"{protocol}.init", c.init_epoch)
    logging.warning("%s.init is empty: training from a randomly initialised encoder", protocol)
    return state

  def hooks(ctx: runner.RunContext) -> list[runner.Hook]:
    predict = features.make_feature_fn(
      lambda variables, clips: model.apply(variables, clips, train=False), config.data, ctx.mesh
    )
    return [
      AccuracyHook(
        predict,
        test_split,
        c.eval_batch_size,
        ctx.steps_per_epoch * c.eval_every_epochs,
        ctx.mesh,
        ctx.writer,
        scores_path=ctx.workdir / TEST_SCORES,
      )
    ]

  step = functools.partial(
    train_step, model=model, config=config, tx=tx, labels=labels, schedule=schedule, smoothing=c.label_smoothing
  )
  return runner.Stage(
    name=protocol,
    key=protocol,
    group=c,
    train_split=train_split,
    create=create,
    step=step,
    feed=("x", "label"),
    initialize=initialize,
    hooks=hooks,
  )


def train(
  config: ml_collections.ConfigDict,
  workdir: str | pathlib.Path,
  protocol: str,
  mesh: jax.sharding.Mesh,
  init: str | dict | None = None,
) -> runner.RunResult:
  """Trains `protocol` ('linear' | 'finetune') under workdir, resuming from workdir/checkpoints. The summary
  holds test top-1 best (official: max over epochs) / last / history and the training-set size."""
  workdir = pathlib.Path(workdir)
  st = stage(config, workdir, protocol, init)
  result = runner.run(st, config, workdir, mesh)
  result.summary["num_train"] = len(st.train_split)
  return result
