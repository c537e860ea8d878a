"""Downstream classification stages: linear probe (SPEC §3.3), fine-tune (§3.4), semi-supervised (§3.5) and
transfer (§3.6, a fine-tune whose `init` was pretrained on another dataset).

Both protocols share the model (`models.classifier.Classifier`), the jitted step (augment on device, forward,
cross-entropy with optional label smoothing, masked optimizer update) and the per-epoch test evaluation. They
differ in what trains and how: the linear probe trains the head only with SGD on a frozen encoder in inference
mode; fine-tuning trains everything with AdamW and layer-wise learning-rate decay. `config.<protocol>` holds the
settings (`recipes.linear_options` / `recipes.finetune_options`).
"""
import functools
import json
import logging
import os
import pathlib
from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from stars_jax.data import pipeline, sources
from stars_jax.data.npz import SkeletonSplit, take, without_classes
from stars_jax.evaluate import features
from stars_jax.models.classifier import Classifier
from stars_jax.models.heads import LinearHead
from stars_jax.models.mamp import encoder_of
from stars_jax.train import checkpoint, loop, schedules, sharding
from stars_jax.train.metrics import MetricWriter
from stars_jax.train.pretrain import encoder_kwargs, global_batch, prepare_clips
from stars_jax.train.state import FROZEN, apply_tuned_updates, path_name, tuning_layer, weight_decay_mask


@flax.struct.dataclass
class ClassifyState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array


def build_model(config: ml_collections.ConfigDict, protocol: str, num_classes: int) -> Classifier:
  c = config[protocol]
  return Classifier(**encoder_kwargs(config), drop_path_rate=c.get("drop_path", 0.0),
                    num_classes=num_classes, protocol=protocol, head_dropout=c.get("dropout", 0.0))


def finetune_layer(name: str, depth: int) -> int:
  """Layer id for layer-wise decay (`util/lr_decay.py`): 0 embeddings, k + 1 block k, depth + 1 the rest."""
  return min(tuning_layer(name, depth), depth + 1)


def layer_decay_scales(depth: int, layer_decay: float) -> dict[str, float]:
  """'layer_<id>' -> layer_decay ** (depth + 1 - id): depth 8, decay 0.8 gives 0.1342 ... 1.0 (SPEC §3.4)."""
  return {f"layer_{i}": layer_decay ** (depth + 1 - i) for i in range(depth + 2)}


def make_schedule(c: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
  """Per-iteration warmup + half-cosine (SPEC §3.1); the linear probe has no warmup and decays to 0."""
  return schedules.warmup_half_cosine(base_lr=c.lr, min_lr=c.min_lr, warmup_epochs=c.warmup_epochs,
                                      epochs=c.epochs, steps_per_epoch=steps_per_epoch)


def make_optimizer(protocol: str, c: ml_collections.ConfigDict, params, depth: int,
                   schedule: optax.Schedule) -> tuple[optax.GradientTransformation, Any]:
  """(tx, labels). linear: SGD with momentum on head/*, everything else FROZEN (no update, no state).
  finetune: AdamW per layer-decay group, no weight decay on 1-D tensors and biases (SPEC §3.4)."""
  if protocol == "linear":
    labels = jax.tree_util.tree_map_with_path(
        lambda p, _: "head" if path_name(p).startswith("head/") else FROZEN, params)
    sgd = optax.chain(optax.add_decayed_weights(c.weight_decay),
                      optax.sgd(schedule, momentum=c.momentum))
    return optax.multi_transform({FROZEN: optax.set_to_zero(), "head": sgd}, labels), labels
  labels = jax.tree_util.tree_map_with_path(lambda p, _: f"layer_{finetune_layer(path_name(p), depth)}", params)
  groups = {}
  for label, scale in layer_decay_scales(depth, c.layer_decay).items():
    lr = (lambda s: lambda step: s * schedule(step))(scale)
    groups[label] = optax.adamw(lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay,
                                mask=weight_decay_mask)
  return optax.multi_transform(groups, labels), labels


def smoothed_cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float) -> jax.Array:
  """Mean over the batch of CE against (1 - s) one_hot + s / C, which equals timm's LabelSmoothingCrossEntropy
  ((1 - s) NLL + s mean(-log p)); s = 0 is plain cross-entropy."""
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()


def train_step(state: ClassifyState, x: jax.Array, y: jax.Array, *, model: Classifier, config, tx, labels,
               schedule, smoothing: float) -> tuple[ClassifyState, dict[str, jax.Array]]:
  """One step on raw samples x (N, 300, 150) with labels y (N,)."""
  aug_key, dropout_key, drop_path_key = jax.random.split(jax.random.fold_in(state.rng, state.step), 3)
  clips = prepare_clips(aug_key, x, config)  # (N, M, T, V, C)

  def loss_fn(params):
    logits, mutated = model.apply({"params": params, "batch_stats": state.batch_stats}, clips, train=True,
                                  mutable=["batch_stats"],
                                  rngs={"dropout": dropout_key, "drop_path": drop_path_key})
    return smoothed_cross_entropy(logits, y, smoothing), (logits, mutated["batch_stats"])

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  metrics = {"loss": loss, "lr": schedule(state.step),
             "train_top1": 100.0 * jnp.mean(jnp.argmax(logits, -1) == y)}
  return state.replace(step=state.step + 1, params=apply_tuned_updates(state.params, updates, labels),
                       batch_stats=batch_stats, opt_state=opt_state), metrics


def init_state(config, model: Classifier, protocol: str, schedule, mesh):
  """Fresh state in its sharded placement. Returns (state, shardings, tx, labels)."""
  init_key, state_key = jax.random.split(jax.random.PRNGKey(config.seed))
  clip = jnp.zeros((1, 2, config.data.window, config.model.num_joints, 3), jnp.float32)  # (N, M, T, V, C)
  abstract_params = jax.eval_shape(functools.partial(model.init, train=False), init_key, clip)["params"]
  tx, labels = make_optimizer(protocol, config[protocol], abstract_params, model.depth, schedule)

  def create():
    variables = model.init(init_key, clip, train=False)
    return ClassifyState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                         batch_stats=variables["batch_stats"], opt_state=tx.init(variables["params"]),
                         rng=state_key)

  shardings = sharding.tree_shardings(jax.eval_shape(create), mesh, sharding.default_rules(config.sharding.fsdp),
                                      config.sharding.fsdp_min_size)
  return jax.jit(create, out_shardings=shardings)(), shardings, tx, labels


def load_encoder(state: ClassifyState, init: str | dict, config_key: str) -> ClassifyState:
  """Encoder weights from a checkpoint directory of ours (a MAMP or STARS run: decoder, mask token and
  pretraining head dropped, SPEC §3.7) or from an in-memory encoder parameter tree; the head stays fresh."""
  target = features.encoder_params(state.params)
  if isinstance(init, dict):
    restored = jax.tree.map(lambda t, v: jax.device_put(jnp.asarray(v, t.dtype), t.sharding), target,
                            features.encoder_params(init))
  else:
    restored = checkpoint.restore_params(init, target, config_key)
  return state.replace(params={**state.params, **restored})


def label_subset(labels: np.ndarray, ratio: float, seed: int, class_balanced: bool) -> np.ndarray:
  """Sorted indices of the labelled subset for semi-supervised training, drawn once from `seed` alone (the
  same on any number of devices, unlike the official per-rank draw, SPEC §7.13). Default: the first
  int(N * ratio) of a seeded permutation, as the official feeder (NTU-60 XSub: 400 at 1 %, 4,009 at 10 %);
  class_balanced: max(1, round(ratio * n_c)) of each class."""
  if not 0.0 < ratio <= 1.0:
    raise ValueError(f"data_ratio must be in (0, 1], got {ratio}")
  rng = np.random.default_rng(seed)
  if not class_balanced:
    return np.sort(rng.permutation(len(labels))[:int(len(labels) * ratio)])
  picks = [rng.permutation(np.flatnonzero(labels == c))[:max(1, int(round(ratio * np.sum(labels == c))))]
           for c in np.unique(labels)]
  return np.sort(np.concatenate(picks))


class AccuracyHook:
  """Loop hook: test top-1 (percent) every `every_steps` steps; keeps the history, the best (official
  convention: the maximum over epochs, SPEC §7.9) and the last value."""
  name = "eval"

  def __init__(self, predict: features.EmbedFn, split: SkeletonSplit, batch_size: int, every_steps: int,
               mesh, writer: MetricWriter):
    self._predict, self._split, self._bs, self._every = predict, split, batch_size, every_steps
    self._mesh, self._writer = mesh, writer
    self.history: list[dict[str, float]] = []

  def evaluate(self, variables: dict) -> float:
    logits, y = features.extract(self._predict, variables, self._split, self._bs, self._mesh)
    return 100.0 * float(np.mean(np.argmax(logits, axis=-1) == y))

  def after_step(self, step: int, state: ClassifyState) -> None:
    if step % self._every == 0:
      self.record(step, state)

  def record(self, step: int, state: ClassifyState) -> None:
    top1 = self.evaluate({"params": state.params, "batch_stats": state.batch_stats})
    self.history.append({"step": step, "top1": top1})
    self._writer.write_scalars(step, {"eval/test_top1": top1})
    logging.info("step %d: test top-1 %.2f", step, top1)

  def summary(self) -> dict[str, Any]:
    best = max(self.history, key=lambda h: h["top1"])
    return {"best": best["top1"], "best_step": best["step"], "last": self.history[-1]["top1"],
            "history": self.history}

  def get_state(self) -> dict[str, Any]:
    return {"history": self.history}

  def set_state(self, state: dict[str, Any]) -> None:
    self.history = list(state["history"])


def _write_json_atomic(path: pathlib.Path, payload: Any) -> None:
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(payload))
  os.replace(tmp, path)


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, protocol: str,
          init: Optional[str | dict] = None) -> dict[str, Any]:
  """Trains `protocol` ('linear' | 'finetune') from `init` (default `config.<protocol>.init`; '' = random
  encoder, the scratch baseline), resuming from workdir/checkpoints. Returns test top-1 best/last and history."""
  workdir = pathlib.Path(workdir)
  c = config[protocol]
  train_split, test_split = (without_classes(sources.open_split(config.data, split),
                                             config.data.held_out_classes) for split in ("train", "test"))
  if c.get("data_ratio", 1.0) < 1.0:
    subset = label_subset(np.asarray(train_split.labels), c.data_ratio, config.seed, c.class_balanced)
    workdir.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(workdir / "subset_indices.json",
                       {"data_ratio": c.data_ratio, "class_balanced": c.class_balanced, "seed": config.seed,
                        "indices": subset.tolist()})
    train_split = take(train_split, subset)
  num_classes = c.num_classes if c.num_classes > 0 else train_split.num_classes
  spe = pipeline.steps_per_epoch(len(train_split), c.batch_size)
  total_steps = spe * c.epochs if config.max_steps <= 0 else min(spe * c.epochs, config.max_steps)

  mesh = sharding.make_mesh()
  model = build_model(config, protocol, num_classes)
  schedule = make_schedule(c, spe)
  state, shardings, tx, labels = init_state(config, model, protocol, schedule, mesh)
  step = functools.partial(train_step, model=model, config=config, tx=tx, labels=labels, schedule=schedule,
                           smoothing=c.get("label_smoothing", 0.0))
  data = sharding.batch_sharding(mesh)
  step_fn = jax.jit(step, in_shardings=(shardings, data, data),
                    out_shardings=(shardings, sharding.replicated(mesh)), donate_argnums=0)

  ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
  writer = MetricWriter(workdir / "tensorboard")
  predict = features.make_feature_fn(lambda variables, clips: model.apply(variables, clips, train=False),
                                     config.data, mesh)
  hook = AccuracyHook(predict, test_split, c.eval_batch_size, spe * c.eval_every_epochs, mesh, writer)
  data_iter = pipeline.train_iterator(
      train_split, global_batch_size=c.batch_size, seed=config.seed, process_index=jax.process_index(),
      process_count=jax.process_count(), num_threads=config.data.num_threads, prefetch=config.data.prefetch)
  init = c.init if init is None else init
  try:
    if ckpt.latest_step() is not None:
      state = loop.restore(ckpt, state, data_iter, [hook])
    elif init is not None and (isinstance(init, dict) or init):
      state = load_encoder(state, init, f"{protocol}.init")
    else:
      logging.warning("%s.init is empty: training from a randomly initialised encoder", protocol)
    feed = lambda batch: (global_batch(batch["x"], mesh), global_batch(batch["label"], mesh))  # noqa: E731
    state, history, wall_time = loop.fit(
        state, step_fn, feed, data_iter, ckpt=ckpt, writer=writer, total_steps=total_steps,
        batch_size=c.batch_size, log_every=config.log_every_steps,
        checkpoint_every=min(config.checkpoint_every_steps, spe), desc=protocol, hooks=[hook])
  finally:
    data_iter.close()
    ckpt.close()
    writer.close()
  if not hook.history or hook.history[-1]["step"] != total_steps:  # the run did not end on an epoch boundary
    hook.record(total_steps, state)
  return {"state": state, "model": model, "steps": total_steps, "steps_per_epoch": spe,
          "num_train": len(train_split), "train_history": history, "wall_time_s": wall_time, **hook.summary()}


def train_linear_cached(config: ml_collections.ConfigDict, init: str | dict) -> dict[str, Any]:
  """The linear probe's fast mode (`linear.mode='cached'`, not the official protocol): pooled features of the
  un-augmented eval crop are extracted once, then the same head, optimizer and schedule train on them. Runs
  in seconds, so it keeps no checkpoints (a rerun gives the same result)."""
  c = config.linear
  train_split, test_split = (without_classes(sources.open_split(config.data, split),
                                             config.data.held_out_classes) for split in ("train", "test"))
  num_classes = c.num_classes if c.num_classes > 0 else train_split.num_classes
  mesh = sharding.make_mesh()
  model = build_model(config, "linear", num_classes)
  spe = pipeline.steps_per_epoch(len(train_split), c.batch_size)
  schedule = make_schedule(c, spe)
  state, _, _, _ = init_state(config, model, "linear", schedule, mesh)
  if isinstance(init, dict) or init:
    state = load_encoder(state, init, "linear.init")
  embed = features.make_embed_fn(encoder_of(model), config.data, mesh)
  encoder = features.encoder_params(state.params)
  train_x, train_y = features.extract(embed, encoder, train_split, c.eval_batch_size, mesh)
  test_x, test_y = features.extract(embed, encoder, test_split, c.eval_batch_size, mesh)
  train_x, train_y, test_x = jnp.asarray(train_x), jnp.asarray(train_y), jnp.asarray(test_x)  # (N, D), (N,)

  head = LinearHead(num_classes)
  head_vars = {"params": state.params["head"], "batch_stats": state.batch_stats["head"]}
  tx = optax.chain(optax.add_decayed_weights(c.weight_decay), optax.sgd(schedule, momentum=c.momentum))

  @jax.jit
  def epoch(head_vars, opt_state, order):  # order: (spe, B) sample indices
    def step(carry, idx):
      variables, opt_state = carry
      def loss_fn(params):
        logits, mutated = head.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                     train_x[idx], train=True, mutable=["batch_stats"])
        return smoothed_cross_entropy(logits, train_y[idx], 0.0), mutated["batch_stats"]
      grads, batch_stats = jax.grad(loss_fn, has_aux=True)(variables["params"])
      updates, opt_state = tx.update(grads, opt_state, variables["params"])
      return ({"params": optax.apply_updates(variables["params"], updates), "batch_stats": batch_stats},
              opt_state), None
    return jax.lax.scan(step, (head_vars, opt_state), order)[0]

  predict = jax.jit(lambda variables: jnp.argmax(head.apply(variables, test_x, train=False), axis=-1))
  opt_state = tx.init(head_vars["params"])
  rng = np.random.default_rng(config.seed)
  history = []
  for e in range(1, c.epochs + 1):
    order = rng.permutation(len(train_y))[:spe * c.batch_size].reshape(spe, c.batch_size)
    head_vars, opt_state = epoch(head_vars, opt_state, jnp.asarray(order))
    history.append({"step": e * spe, "top1": 100.0 * float(np.mean(np.asarray(predict(head_vars)) == test_y))})
  best = max(history, key=lambda h: h["top1"])
  return {"mode": "cached (un-augmented features; not the official protocol)", "best": best["top1"],
          "best_step": best["step"], "last": history[-1]["top1"], "history": history,
          "steps": spe * c.epochs, "steps_per_epoch": spe}
