"""The downstream classifier: head structure, parameter counts of SPEC §2.10, frozen encoder under the probe."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stars_jax.models.classifier import Classifier
from stars_jax.models.mamp import Encoder
from stars_jax.pytree import path_name

CLIP = jnp.zeros((2, 2, 120, 25, 3))  # (N, M, T, V, C)


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("num_classes,total", [(60, 19_572_284), (120, 19_695_224), (51, 19_553_843)])
def test_official_finetune_model_size(num_classes, total):
  variables = jax.eval_shape(
    lambda: Classifier(num_classes=num_classes, protocol="finetune").init(jax.random.PRNGKey(0), CLIP)
  )
  assert _count(variables["params"]) == total  # SPEC §2.10 B (num_batches_tracked excluded)
  head = {path_name(p): x.shape for p, x in jax.tree_util.tree_flatten_with_path(variables["params"]["head"])[0]}
  assert head == {
    "fc1/kernel": (6400, 2048),
    "fc1/bias": (2048,),
    "bn/scale": (2048,),
    "bn/bias": (2048,),
    "fc2/kernel": (2048, num_classes),
    "fc2/bias": (num_classes,),
  }


def test_linear_head_is_batchnorm_without_affine_then_linear():
  variables = jax.eval_shape(lambda: Classifier(num_classes=60).init(jax.random.PRNGKey(0), CLIP))
  head = variables["params"]["head"]
  assert set(head) == {"fc_1"} and _count(head) == 256 * 60 + 60  # SPEC §2.10 C: trainable 256 C + C
  assert {k: v.shape for k, v in variables["batch_stats"]["head"]["fc_0"].items()} == {"mean": (256,), "var": (256,)}


def test_linear_probe_normalises_with_eps_1e6_and_trains_only_the_head():
  model = Classifier(dim=16, depth=1, num_heads=2, num_frames=8, num_classes=3)
  clips = jax.random.normal(jax.random.PRNGKey(1), (4, 2, 8, 25, 3))
  variables = model.init(jax.random.PRNGKey(0), clips)
  params = variables["params"]

  def loss(p):
    logits, _ = model.apply(
      {"params": p, "batch_stats": variables["batch_stats"]}, clips, train=True, mutable=["batch_stats"]
    )
    return jnp.sum(logits**2)

  grads = jax.grad(loss)(params)
  assert all(float(jnp.abs(g).max()) == 0.0 for k, g in grads.items() if k != "head" for g in jax.tree.leaves(g))
  assert float(jnp.abs(grads["head"]["fc_1"]["kernel"]).max()) > 0.0
  # In train mode the head sees (h - mean) / sqrt(var + 1e-6) of the pooled batch features.
  feats = model.apply({"params": params}, clips, method=Encoder.__call__).mean(axis=(1, 2, 3))  # (N, D)
  normed = (feats - feats.mean(0)) / jnp.sqrt(feats.var(0) + 1e-6)
  expected = normed @ params["head"]["fc_1"]["kernel"] + params["head"]["fc_1"]["bias"]
  logits, _ = model.apply(variables, clips, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_finetune_dropout_only_in_training():
  model = Classifier(
    dim=16,
    depth=1,
    num_heads=2,
    num_frames=8,
    num_classes=3,
    protocol="finetune",
    head_hidden_dim=8,
    drop_path_rate=0.5,
  )
  clips = jax.random.normal(jax.random.PRNGKey(1), (4, 2, 8, 25, 3))
  variables = model.init(jax.random.PRNGKey(0), clips)
  eval_a = model.apply(variables, clips)
  eval_b = model.apply(variables, clips)
  np.testing.assert_array_equal(eval_a, eval_b)
  rngs = lambda s: {"dropout": jax.random.PRNGKey(s), "drop_path": jax.random.PRNGKey(s + 1)}  # noqa: E731
  train_a, _ = model.apply(variables, clips, train=True, mutable=["batch_stats"], rngs=rngs(0))
  train_b, _ = model.apply(variables, clips, train=True, mutable=["batch_stats"], rngs=rngs(2))
  assert float(jnp.abs(train_a - train_b).max()) > 1e-4


def test_unknown_protocol_is_rejected():
  with pytest.raises(ValueError, match="protocol='probe'"):
    Classifier(protocol="probe").init(jax.random.PRNGKey(0), CLIP)
