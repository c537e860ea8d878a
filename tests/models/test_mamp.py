"""Model structure against SPEC §2.10 and forward-pass behaviour."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stars_jax import masking
from stars_jax.models import transformer
from stars_jax.models.mamp import MAMP, Encoder, encoder_of, encoder_params
from stars_jax.pytree import path_name

TORCH_BLOCK = {  # SPEC §2.10 block(P) -> Flax leaf shapes
  "norm1/scale": (256,),
  "norm1/bias": (256,),
  "attn/proj/kernel": (256, 256),
  "attn/proj/bias": (256,),
  "attn/qkv/kernel": (256, 768),
  "attn/qkv/bias": (768,),
  "norm2/scale": (256,),
  "norm2/bias": (256,),
  "mlp/fc1/kernel": (256, 1024),
  "mlp/fc1/bias": (1024,),
  "mlp/fc2/kernel": (1024, 256),
  "mlp/fc2/bias": (256,),
}


def _shapes(model, x, mask):
  tree = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, mask)["params"]
  return {path_name(p): leaf.shape for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture(scope="module")
def full_inputs():
  x = jnp.zeros((2, 120, 25, 3))
  return x, masking.sample_masking(jax.random.PRNGKey(0), x, t_patch=4, mask_ratio=0.9, tau=0.8)


@pytest.mark.parametrize("decoder_depth,total,tensors", [(3, 8_789_004, 147), (5, 10_368_524, 171)])
def test_full_size_parameter_counts_and_names(full_inputs, decoder_depth, total, tensors):
  shapes = _shapes(MAMP(decoder_depth=decoder_depth), *full_inputs)
  assert sum(int(np.prod(s)) for s in shapes.values()) == total
  assert len(shapes) == tensors
  encoder = {k: s for k, s in shapes.items() if not k.startswith(("decoder", "mask"))}
  assert sum(int(np.prod(s)) for s in encoder.values()) == 6_336_000
  assert len(encoder) == 102
  # One-to-one naming with the official state_dict (SPEC §2.10 A).
  assert shapes["temp_embed"] == (1, 30, 1, 256) and shapes["pos_embed"] == (1, 1, 25, 256)
  assert shapes["mask_token"] == (1, 1, 256)
  assert shapes["decoder_temp_embed"] == (1, 30, 1, 256) and shapes["decoder_pos_embed"] == (1, 1, 25, 256)
  assert shapes["joints_embed/proj/kernel"] == (4, 1, 3, 256)
  assert shapes["decoder_pred/kernel"] == (256, 12)
  for prefix, depth in (("blocks", 8), ("decoder_blocks", decoder_depth)):
    for i in range(depth):
      for leaf, shape in TORCH_BLOCK.items():
        assert shapes[f"{prefix}_{i}/{leaf}"] == shape
  assert not [
    k
    for k in shapes
    if re.match(r"(decoder_)?blocks_\d+/", k) is None
    and k.split("/")[0]
    not in {
      "temp_embed",
      "pos_embed",
      "mask_token",
      "decoder_temp_embed",
      "decoder_pos_embed",
      "joints_embed",
      "norm",
      "decoder_embed",
      "decoder_norm",
      "decoder_pred",
    }
  ]


def test_encoder_owns_exactly_the_non_decoder_names(full_inputs):
  x, mask = full_inputs
  mamp = MAMP()
  enc_tree = jax.eval_shape(encoder_of(mamp).init, jax.random.PRNGKey(0), x[:, None])["params"]
  enc = {path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(enc_tree)[0]}
  full = {k for k in _shapes(mamp, x, mask) if not k.startswith(("decoder", "mask"))}
  assert enc == full
  # encoder_params cuts exactly that sub-tree out of the pretraining parameters.
  mamp_tree = jax.eval_shape(mamp.init, jax.random.PRNGKey(0), x, mask)["params"]
  shapes = lambda tree: jax.tree.map(lambda leaf: leaf.shape, tree)  # noqa: E731
  assert shapes(encoder_params(mamp_tree)) == shapes(enc_tree)


def _tiny():
  return MAMP(dim=32, depth=2, num_heads=4, decoder_dim=32, decoder_depth=1, decoder_heads=4, num_frames=16)


def test_initialisation_follows_the_official_rules():
  model = _tiny()
  x = jnp.zeros((2, 16, 25, 3))
  mask = masking.sample_masking(jax.random.PRNGKey(0), x, t_patch=4, mask_ratio=0.9, tau=0.8)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), x, mask)["params"]
  assert np.all(np.asarray(params["blocks_0"]["attn"]["qkv"]["bias"]) == 0)  # Linear bias zero
  assert np.all(np.asarray(params["norm"]["scale"]) == 1)  # LayerNorm weight one
  qkv = np.asarray(params["blocks_0"]["attn"]["qkv"]["kernel"])  # xavier-uniform bound sqrt(6/(in+out))
  assert np.abs(qkv).max() <= np.sqrt(6 / (32 + 96)) + 1e-6
  conv = np.asarray(params["joints_embed"]["proj"]["kernel"])  # torch default conv: U(+-1/sqrt(12))
  assert np.abs(conv).max() <= 12**-0.5 + 1e-6 and np.abs(conv).max() > 0.2
  emb = np.asarray(params["temp_embed"])
  assert 0.01 < emb.std() < 0.03  # trunc-normal std 0.02


def test_layer_norm_uses_torch_eps():
  x = jnp.asarray([[0.0, 1e-3, 2e-3, 3e-3]])  # variance ~1e-6: eps 1e-5 vs 1e-6 changes the output
  ln = transformer.layer_norm("norm", jnp.float32)
  out = ln.apply(ln.init(jax.random.PRNGKey(0), x), x)
  xn = np.asarray(x)
  want = (xn - xn.mean()) / np.sqrt(xn.var() + 1e-5)
  np.testing.assert_allclose(out, want, rtol=1e-4)


def test_forward_with_precomputed_keep_ids_is_reproducible():
  model = _tiny()
  x = jax.random.normal(jax.random.PRNGKey(1), (3, 16, 25, 3))
  mask = masking.sample_masking(jax.random.PRNGKey(2), x, t_patch=4, mask_ratio=0.9, tau=0.8)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), x, mask)["params"]
  pred = model.apply({"params": params}, x, mask)
  assert pred.shape == (3, 100, 12) and pred.dtype == jnp.float32
  again = model.apply({"params": params}, x, masking.masking_from_keep(mask.ids_keep, 100))
  np.testing.assert_array_equal(pred, again)
  # The order of the visible tokens does not matter beyond float rounding.
  other = model.apply({"params": params}, x, masking.masking_from_keep(mask.ids_keep[:, ::-1], 100))
  np.testing.assert_allclose(pred, other, atol=1e-5)  # attention is permutation-equivariant


def test_persons_are_independent_sequences():
  enc = Encoder(dim=32, depth=2, num_heads=4, num_frames=16)
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 2, 16, 25, 3))  # (N, M, T, V, C)
  params = jax.jit(enc.init)(jax.random.PRNGKey(0), x)["params"]
  out = enc.apply({"params": params}, x)
  assert out.shape == (2, 2, 4, 25, 32)
  x2 = x.at[:, 1].set(0.0)  # changing person 1 leaves person 0's features untouched
  np.testing.assert_allclose(enc.apply({"params": params}, x2)[:, 0], out[:, 0], atol=1e-6)


def test_bfloat16_compute_keeps_float32_parameters():
  model = MAMP(
    dim=32, depth=1, num_heads=4, decoder_dim=32, decoder_depth=1, decoder_heads=4, num_frames=16, dtype=jnp.bfloat16
  )
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 25, 3))
  mask = masking.sample_masking(jax.random.PRNGKey(2), x, t_patch=4, mask_ratio=0.9, tau=0.8)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), x, mask)["params"]
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  pred = model.apply({"params": params}, x, mask)
  ref = model.clone(dtype=jnp.float32).apply({"params": params}, x, mask)
  assert pred.dtype == jnp.float32
  np.testing.assert_allclose(pred, ref, atol=0.1, rtol=0.1)


def test_bfloat16_model_embeds_coordinates_in_float32():
  """Uncentred PKU-like coordinates (2-4 m) with 1 mm motions: the bfloat16 model's tokens are the float32 model's
  tokens rounded once (exactly equal). Had the coordinates been cast first, bf16's 16 mm spacing at 2-4 m would
  have erased the motion before the embedding."""
  model = MAMP(
    dim=32, depth=1, num_heads=4, decoder_dim=32, decoder_depth=1, decoder_heads=4, num_frames=16, dtype=jnp.bfloat16
  )
  base = jax.random.uniform(jax.random.PRNGKey(1), (2, 1, 25, 3), minval=2.0, maxval=4.0)
  x = base + 1e-3 * jnp.arange(16.0)[None, :, None, None]  # (2, 16, 25, 3): 1 mm per frame
  mask = masking.sample_masking(jax.random.PRNGKey(2), x, t_patch=4, mask_ratio=0.9, tau=0.8)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), x, mask)["params"]
  embed = lambda m: m.apply({"params": params}, x, method=lambda mod, v: mod.embed(v))  # noqa: E731
  tokens, ref = embed(model), embed(model.clone(dtype=jnp.float32))
  assert tokens.dtype == jnp.bfloat16 and ref.dtype == jnp.float32
  np.testing.assert_array_equal(tokens, ref.astype(jnp.bfloat16))


def test_einsum_attention_equals_jax_dot_product_attention():
  from stars_jax.models.transformer import Attention

  x = jax.random.normal(jax.random.PRNGKey(0), (3, 10, 32))  # (B, N, D)
  params = Attention(4, implementation="xla").init(jax.random.PRNGKey(1), x)
  reference = Attention(4, implementation="xla").apply(params, x)
  np.testing.assert_allclose(Attention(4, implementation="einsum").apply(params, x), reference, atol=2e-6)


@pytest.mark.parametrize("dtype, atol", [(jnp.float32, 1e-6), (jnp.bfloat16, 2e-2)])
def test_chunked_attention_values_and_gradients_equal_einsum(dtype, atol):
  q, k, v, g = (jax.random.normal(jax.random.PRNGKey(i), (6, 10, 4, 8), dtype) for i in range(4))  # (B, N, H, Dh)

  def out_and_grads(fn):
    out, vjp = jax.vjp(fn, q, k, v)
    return out, *vjp(g)

  chunked = jax.jit(out_and_grads, static_argnums=0)(transformer._chunked_attention)
  for got, want in zip(chunked, jax.jit(out_and_grads, static_argnums=0)(transformer._einsum_attention)):
    assert got.dtype == dtype
    np.testing.assert_allclose(got.astype(jnp.float32), want.astype(jnp.float32), atol=atol)


def test_remat_keeps_names_loss_and_gradients_and_recomputes_blocks():
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 25, 3))
  mask = masking.sample_masking(jax.random.PRNGKey(2), x, t_patch=4, mask_ratio=0.9, tau=0.8)
  plain, remat = _tiny(), _tiny().clone(remat=True)
  params = jax.jit(plain.init)(jax.random.PRNGKey(0), x, mask)["params"]
  assert _shapes(remat, x, mask) == _shapes(plain, x, mask)  # checkpoints interchange

  def grad_fn(model):
    return jax.jit(jax.value_and_grad(lambda p: jnp.mean(model.apply({"params": p}, x, mask) ** 2)))

  (loss, grads), (loss_r, grads_r) = grad_fn(plain)(params), grad_fn(remat)(params)
  np.testing.assert_allclose(loss_r, loss, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads_r, grads)
  # The backward pass re-runs each block's forward matmuls: more dot_generals in the lowered program.
  count = lambda model: grad_fn(model).lower(params).as_text().count("dot_general")  # noqa: E731
  assert count(remat) > count(plain)
