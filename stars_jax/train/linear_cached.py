"""The linear probe's fast mode (`linear.mode='cached'`, not the official protocol): pooled features of the
un-augmented eval crop are extracted once, then the same head, optimizer and schedule train on them."""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from stars_jax.data import sources
from stars_jax.evaluate import features
from stars_jax.models import factory
from stars_jax.models.heads import LinearHead
from stars_jax.models.mamp import encoder_of, encoder_params
from stars_jax.train import classify, optim, runner
from stars_jax.train import state as state_lib


def train(config: ml_collections.ConfigDict, init: str | dict, mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """The cached-feature linear probe of `init` (a checkpoint directory or encoder parameters). Runs in seconds,
  so it keeps no checkpoints (a rerun gives the same result); it trains `epochs` epochs (max_steps does not apply)."""
  c = config.linear
  train_split = classify.labelled_train_split(config, "linear", None)
  test_split = sources.open_seen_split(config.data, "test")
  num_classes = c.num_classes if c.num_classes > 0 else train_split.num_classes
  model = factory.classifier(config, "linear", num_classes)
  spe, _ = runner.run_length(c, len(train_split))
  schedule = optim.make_schedule(c, spe)
  create, _, _ = classify.fresh_state(config, "linear", model, schedule)
  state, _ = state_lib.create_sharded(create, mesh, config.sharding)
  if isinstance(init, dict) or init:
    state = classify.load_encoder(state, init, "linear.init", c.init_epoch)
  embed = features.make_embed_fn(encoder_of(model), config.data, mesh)
  encoder = encoder_params(state.params)
  train_x, train_y = features.extract(embed, encoder, train_split, c.eval_batch_size, mesh)
  test_x, test_y = features.extract(embed, encoder, test_split, c.eval_batch_size, mesh)
  train_x, train_y, test_x = jnp.asarray(train_x), jnp.asarray(train_y), jnp.asarray(test_x)  # (N, D), (N,)

  head = LinearHead(num_classes)
  head_vars = {"params": state.params["head"], "batch_stats": state.batch_stats["head"]}
  tx = optim.layer_optimizer(c.optim, schedule)  # the head's optimizer of the full protocol

  @jax.jit
  def epoch(head_vars, opt_state, order):  # order: (spe, B) sample indices
    def step(carry, idx):
      variables, opt_state = carry

      def loss_fn(params):
        logits, mutated = head.apply(
          {"params": params, "batch_stats": variables["batch_stats"]}, train_x[idx], train=True, mutable=["batch_stats"]
        )
        return classify.smoothed_cross_entropy(logits, train_y[idx], c.label_smoothing), mutated["batch_stats"]

      grads, batch_stats = jax.grad(loss_fn, has_aux=True)(variables["params"])
      updates, opt_state = tx.update(grads, opt_state, variables["params"])
      return (
        {"params": optax.apply_updates(variables["params"], updates), "batch_stats": batch_stats},
        opt_state,
      ), None

    return jax.lax.scan(step, (head_vars, opt_state), order)[0]

  predict = jax.jit(lambda variables: jnp.argmax(head.apply(variables, test_x, train=False), axis=-1))
  opt_state = tx.init(head_vars["params"])
  rng = np.random.default_rng(config.seed)
  history = []
  for e in range(1, c.epochs + 1):
    order = rng.permutation(len(train_y))[: spe * c.batch_size].reshape(spe, c.batch_size)
    head_vars, opt_state = epoch(head_vars, opt_state, jnp.asarray(order))
    history.append({"step": e * spe, "top1": 100.0 * float(np.mean(np.asarray(predict(head_vars)) == test_y))})
  best = max(history, key=lambda h: h["top1"])
  return {
    "mode": "cached (un-augmented features; not the official protocol)",
    "best": best["top1"],
    "best_step": best["step"],
    "last": history[-1]["top1"],
    "history": history,
    "steps": spe * c.epochs,
    "steps_per_epoch": spe,
  }
