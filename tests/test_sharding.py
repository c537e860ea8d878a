"""Partition rules (stars_jax/sharding.py): first match wins, FSDP shards the largest divisible axis of large
tensors, 'rows' splits the leading axis, unmatched parameters and unknown placements raise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from stars_jax import sharding


def _specs(tree, rules, min_size=1):
  placed = sharding.tree_shardings(tree, sharding.make_mesh(), rules, min_size)
  return jax.tree.map(lambda s: s.spec, placed, is_leaf=lambda s: isinstance(s, jax.sharding.NamedSharding))


def test_mesh_spans_every_device_on_the_data_axis():
  mesh = sharding.make_mesh()
  assert mesh.axis_names == (sharding.DATA_AXIS,) and mesh.shape[sharding.DATA_AXIS] == jax.device_count() == 8


def test_fsdp_shards_the_largest_divisible_axis_and_keeps_small_tensors_whole():
  tree = {
    "a": jax.ShapeDtypeStruct((12, 64), jnp.float32),  # 64 divides over 8: axis 1
    "b": jax.ShapeDtypeStruct((16, 24), jnp.float32),  # both divide: the larger, axis 1
    "c": jax.ShapeDtypeStruct((7, 9), jnp.float32),  # none divides: replicated
    "d": jax.ShapeDtypeStruct((8,), jnp.float32),
  }  # below min_size: replicated
  specs = _specs(tree, sharding.default_rules(fsdp=True), min_size=16)
  assert specs == {"a": P(None, "data"), "b": P(None, "data"), "c": P(), "d": P()}
  assert _specs(tree, sharding.default_rules(fsdp=False)) == {k: P() for k in tree}


def test_first_matching_rule_wins_and_rows_split_the_leading_axis():
  tree = {
    "queue": {"embeddings": jnp.zeros((16, 4)), "ids": jnp.zeros((16,), jnp.int32), "ptr": jnp.zeros(())},
    "w": jnp.zeros((8, 8)),
  }
  rules = [("queue/(embeddings|ids)", sharding.ROWS), *sharding.default_rules(fsdp=True)]
  specs = _specs(tree, rules)
  assert specs["queue"] == {"embeddings": P("data"), "ids": P("data"), "ptr": P()}
  assert specs["w"] == P("data", None)  # fsdp: the first of two equally large axes


def test_unmatched_parameter_and_unknown_placement_raise():
  with pytest.raises(ValueError, match="No partition rule matches parameter 'b/kernel'"):
    _specs({"a": jnp.zeros(2), "b": {"kernel": jnp.zeros(2)}}, [("a", sharding.REPLICATE)])
  with pytest.raises(ValueError, match="Unknown placement 'tensor'"):
    _specs({"a": jnp.zeros(2)}, [(".*", "tensor")])


def test_global_batch_splits_every_field_over_data():
  mesh = sharding.make_mesh()
  batch = sharding.global_batch({"x": np.arange(16.0).reshape(8, 2), "label": np.arange(8)}, mesh)
  for value in batch.values():
    assert value.sharding.spec == P("data") and len(value.addressable_shards) == 8
  np.testing.assert_array_equal(batch["label"], np.arange(8))
