"""The factory resolves config.model's 'auto' choices once per model build and refuses impossible ones up front."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from recipe_files import common, mamp

from stars_jax import device
from stars_jax.models import factory
from stars_jax.models.transformer import Attention
from stars_jax.train import guards


def test_auto_builds_the_cpu_model_of_before():
  config = mamp.recipe("ntu60", "xsub")
  assert config.model.attention_impl == "auto"
  assert factory.execution(config).to_dict() == device.execution("auto", "auto", device.describe(), (32, 32)).to_dict()
  model = factory.mamp(config)
  assert model.attention_impl == "chunked" and model.dtype == jnp.float32


@pytest.mark.parametrize(
  "key, value", [("attention_impl", "cudnn"), ("attention_impl", "flash"), ("compute_dtype", "f8")]
)
def test_impossible_choice_is_refused_before_anything_is_traced(key, value):
  config = mamp.recipe("ntu60", "xsub")
  config.model[key] = value
  with pytest.raises(device.ChoiceError, match=f"model.{key}="):
    factory.mamp(config)


def test_attention_built_directly_resolves_auto_as_the_factory_does():
  """The same kernel runs, so the outputs are bit-identical (no tolerance)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 10, 16))
  params = Attention(4, implementation="chunked").init(jax.random.PRNGKey(1), x)
  chunked = np.asarray(Attention(4, implementation="chunked").apply(params, x))
  for impl in (None, "", "auto"):
    np.testing.assert_array_equal(Attention(4, implementation=impl).apply(params, x), chunked)


def test_run_started_with_empty_attention_resumes_under_auto():
  config = common.base("ntu60", "xsub", "pretrain")
  group = mamp.pretrain_group("ntu60")
  config.model.attention_impl = ""
  saved = json.loads(json.dumps(guards.math_settings(config, "pretrain", group), default=str))  # as checkpointed
  config.model.attention_impl = "auto"
  guards.check_resumed_config(saved, config, "pretrain", group)
  assert factory.execution(config).attention_impl == device.attention_impl("", device.describe(), "float32", (32,))
