"""The analytic MAMP FLOP count vs. the matmuls the code really traces and vs. XLA's cost analysis.

Three independent checks:
* exact: the analytic count equals the dot_general / conv flops found in the model's jaxpr (so the
  formula counts precisely the matmuls the Flax code executes, nothing more, nothing less);
* XLA: `compile().cost_analysis()['flops']` also counts elementwise work (LayerNorm, softmax, the erf
  polynomial of the exact GELU, residual and embedding adds, the un-shuffle), so it is an upper bound.
  Measured on CPU (jax 0.10): full size 1.045 × analytic; the small dim-32 model 1.31 × (at width 32
  the elementwise ops per token — GELU over 128 hidden units, softmax over heads × tokens — are no
  longer small next to the 24·d² matmul flops per token). Tolerances: full size [1, 1.10], small [1, 1.40];
* hand-computed terms for the full-size NTU-60 config.
"""

import functools
import math

import jax
import jax.numpy as jnp
import pytest
from jax.extend import core as jcore
from recipe_files import mamp

from stars_jax import masking
from stars_jax.models.mamp import MAMP
from stars_jax.train import flops


def _jaxpr_matmul_flops(jaxpr) -> int:
  """2 × multiply-adds of every dot_general and convolution in a jaxpr, recursing into sub-jaxprs."""
  total = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "dot_general":
      (lhs_contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[i] for i in lhs_contract)
    elif eqn.primitive.name == "conv_general_dilated":
      kernel = eqn.invars[1].aval.shape
      per_output = math.prod(kernel[i] for i in eqn.params["dimension_numbers"].rhs_spec[1:])
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * per_output // eqn.params["feature_group_count"]
    for sub in jcore.jaxprs_in_params(eqn.params):
      total += _jaxpr_matmul_flops(sub)
  return total


@functools.cache
def _setup(dim, depth, decoder_depth, num_frames, num_heads, clips=1):
  """A MAMP forward, abstract (params, input of `clips` clips with 2 persons folded, masking), analytic count.

  Everything stays abstract (ShapeDtypeStructs): tracing and compiling need shapes only.
  """
  model = MAMP(
    dim=dim,
    depth=depth,
    num_heads=num_heads,
    decoder_dim=dim,
    decoder_depth=decoder_depth,
    decoder_heads=num_heads,
    num_frames=num_frames,
    dtype=jnp.float32,
    # The CPU default 'chunked' runs the same matmuls one head at a time inside a loop, whose trip count neither
    # this jaxpr walk nor XLA's cost analysis multiplies in; the whole-batch spelling shows them all.
    attention_impl="einsum",
  )
  x = jax.ShapeDtypeStruct((2 * clips, num_frames, 25, 3), jnp.float32)
  mask = jax.eval_shape(
    lambda x: masking.sample_masking(jax.random.PRNGKey(0), x, t_patch=4, mask_ratio=0.9, tau=0.8), x
  )
  params = jax.eval_shape(lambda x, m: model.init(jax.random.PRNGKey(0), x, m), x, mask)["params"]
  analytic = flops.mamp_step_flops(
    batch_clips=clips,
    num_frames=num_frames,
    dim=dim,
    depth=depth,
    num_heads=num_heads,
    decoder_dim=dim,
    decoder_depth=decoder_depth,
    num_visible=mask.ids_keep.shape[1],
  )
  forward = lambda p, x, m: model.apply({"params": p}, x, m)  # noqa: E731
  return forward, (params, x, mask), analytic


SMALL = dict(dim=32, depth=2, decoder_depth=1, num_frames=16, num_heads=4)
FULL = dict(dim=256, depth=8, decoder_depth=3, num_frames=120, num_heads=8)


@pytest.mark.parametrize("size", [SMALL, FULL], ids=["small", "full"])
def test_analytic_equals_traced_matmuls(size):
  forward, args, analytic = _setup(**size)
  assert _jaxpr_matmul_flops(jax.make_jaxpr(forward)(*args).jaxpr) == analytic["forward"]


def test_backward_is_about_twice_forward():
  forward, args, analytic = _setup(**SMALL)
  loss = lambda *a: jnp.mean(forward(*a) ** 2)  # noqa: E731
  grad_matmuls = _jaxpr_matmul_flops(jax.make_jaxpr(jax.grad(loss))(*args).jaxpr)
  # Forward + backward; slightly below 3x: no input gradient is formed for the raw skeleton.
  assert grad_matmuls / analytic["train"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("size,upper", [(SMALL, 1.40), (FULL, 1.10)], ids=["small", "full"])
def test_xla_cost_analysis_agrees(size, upper):
  forward, args, analytic = _setup(**size)
  cost = jax.jit(forward).lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  if not cost or "flops" not in cost:
    pytest.skip("this backend reports no cost analysis")
  ratio = cost["flops"] / analytic["forward"]
  assert 1.0 <= ratio <= upper, ratio


def test_full_size_hand_numbers():
  # One person-sequence: L = 30 * 25 = 750 tokens, K = int(750 * 0.1) = 74 visible, d = 256, hidden 1024.
  enc_block = 2 * 74 * 256 * 768 + 2 * 74 * 74 * 256 * 2 + 2 * 74 * 256 * 256 + 2 * 74 * 256 * 1024 * 2
  assert enc_block == 121_999_360
  dec_block = 2 * 750 * 256 * 768 + 2 * 750 * 750 * 256 * 2 + 2 * 750 * 256 * 256 + 2 * 750 * 256 * 1024 * 2
  assert dec_block == 1_755_648_000
  embed = 2 * 750 * 12 * 256  # Conv (4, 1) over xyz == Dense 12 -> 256 per token
  heads = 2 * 74 * 256 * 256 + 2 * 750 * 256 * 12  # decoder_embed + decoder_pred
  per_sequence = embed + 8 * enc_block + 3 * dec_block + heads
  assert per_sequence == 6_261_854_208

  f = flops.from_config(mamp.recipe("ntu60", "xsub"), batch_clips=128)
  assert (f["tokens"], f["visible"], f["sequences"]) == (750, 74, 256)
  assert f["encoder_block"]["attn_scores"] == 2 * 74 * 74 * 256
  assert f["embed"] == 256 * embed
  assert f["encoder"] == 256 * 8 * enc_block
  assert f["decoder"] == 256 * 3 * dec_block
  assert f["heads"] == 256 * heads
  assert f["forward"] == 256 * per_sequence == f["embed"] + f["encoder"] + f["decoder"] + f["heads"]
  assert f["train"] == 3 * f["forward"] == 4_809_104_031_744  # ~4.81 TFLOP per 128-clip step
  assert f["per_clip_train"] == 6 * per_sequence  # 2 persons x 3 (fwd + bwd)
  # The decoder's 750-token attention dominates: 84 % of the forward flops.
  assert f["decoder"] / f["forward"] == pytest.approx(0.841, abs=1e-3)


def test_from_config_ntu120_has_five_decoder_blocks():
  f60 = flops.from_config(mamp.recipe("ntu60", "xsub"), batch_clips=1)
  f120 = flops.from_config(mamp.recipe("ntu120", "xsub"), batch_clips=1)
  assert f120["decoder"] == f60["decoder"] * 5 // 3
  assert f120["encoder"] == f60["encoder"]


def test_rejects_inconsistent_shapes():
  with pytest.raises(ValueError):
    flops.mamp_step_flops(batch_clips=1, num_frames=30)  # not a multiple of t_patch 4
  with pytest.raises(ValueError):
    flops.mamp_step_flops(batch_clips=1, num_visible=751)
