"""Feeder transforms: exact crop/resize arithmetic, rotation conventions, jit/sharded batching."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from stars_jax.data import transforms

T = 300


def _reference_resize(frames: np.ndarray, window: int) -> np.ndarray:
  """Loop over output frames; PyTorch bilinear align_corners=False along time, in float32, with the source
  index scale (i + 0.5) - 0.5 rounded once (PyTorch's CPU kernel fuses it; Python floats hold it exactly)."""
  length = frames.shape[0]
  scale = np.float32(length) / np.float32(window)
  out = []
  for i in range(window):
    s = max(np.float32(float(scale) * (i + 0.5) - 0.5), np.float32(0))
    i0 = min(math.floor(s), length - 1)
    i1 = min(i0 + 1, length - 1)
    w1 = np.float32(min(max(s - np.float32(i0), 0), 1))
    out.append(frames[i0] * (np.float32(1) - w1) + frames[i1] * w1)
  return np.stack(out)


def _sample(valid: int, seed: int = 0, second_person: bool = True) -> np.ndarray:
  """(T, 150) random sample with `valid` non-zero frames followed by zero padding."""
  x = np.random.default_rng(seed).standard_normal((T, 150)).astype(np.float32)
  x[valid:] = 0
  if not second_person:
    x[:, 75:] = 0
  return x


def test_resize_upsample_hand_computed():
  frames = np.zeros((T, 2), np.float32)
  frames[:4] = np.array([0, 10, 20, 30], np.float32)[:, None]  # L = 4 valid frames
  out = transforms.crop_resize(jnp.asarray(frames), jnp.int32(4), None, (1.0,), 8)
  expected = np.array([0, 2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 30], np.float32)[:, None]
  np.testing.assert_allclose(np.asarray(out), np.repeat(expected, 2, axis=1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("length,window", [(300, 120), (286, 120), (64, 120), (7, 120), (1, 120), (4, 8)])
def test_resize_weights_bit_exact_under_jit(length, window):
  frames = np.arange(length, dtype=np.float32)[:, None]
  s_ref = _reference_resize(frames, window)[:, 0]  # frame index i0 + w1 (i1 = i0 + 1 or clamped)
  weights = jax.jit(transforms.resize_weights, static_argnums=(1, 2))
  i0, i1, w1 = weights(jnp.int32(length), window, T)
  i0, i1, w1 = np.asarray(i0), np.asarray(i1), np.asarray(w1)
  np.testing.assert_array_equal(i0 * (np.float32(1) - w1) + i1 * w1, s_ref)
  assert ((i1 == i0 + 1) | (i1 == length - 1)).all()


def test_resize_equal_length_is_identity():
  x = _sample(120)
  out = transforms.crop_resize(jnp.asarray(x), jnp.int32(120), None, (1.0,), 120)
  np.testing.assert_array_equal(np.asarray(out), x[:120])


def test_resize_300_to_120_matches_loop():
  x = _sample(T)
  out = transforms.crop_resize(jnp.asarray(x), jnp.int32(T), None, (1.0,), 120)
  np.testing.assert_allclose(np.asarray(out), _reference_resize(x, 120), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("valid,p", [(200, 0.95), (77, 0.9), (300, 0.95), (13, 0.95)])
def test_eval_crop_resize_matches_loop(valid, p):
  x = _sample(valid, seed=valid)
  bias = int((1 - p) * valid / 2)
  out = transforms.crop_resize(jnp.asarray(x), transforms.valid_length(jnp.asarray(x)), None, (p,), 120)
  np.testing.assert_allclose(np.asarray(out), _reference_resize(x[bias : valid - bias], 120), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("p", [0.9, 0.95, 1.0])
def test_eval_bias_matches_python_float64(p):
  valid = np.arange(1, T + 1)
  start, length = jax.vmap(lambda v: transforms.crop_window(v, None, (p,), T))(jnp.asarray(valid))
  expected = np.array([int((1 - p) * v / 2) for v in valid])
  np.testing.assert_array_equal(np.asarray(start), expected)
  np.testing.assert_array_equal(np.asarray(length), valid - 2 * expected)


def test_train_crop_window_bounds_and_determinism():
  valid = jnp.asarray(np.tile(np.array([1, 30, 63, 64, 65, 100, 128, 200, 299, 300]), 200))
  keys = jax.random.split(jax.random.key(0), valid.shape[0])
  crop = jax.jit(jax.vmap(lambda k, v: transforms.crop_window(v, k, (0.5, 1.0), T)))
  start, length = (np.asarray(a) for a in crop(keys, valid))
  v = np.asarray(valid)
  assert (length >= np.minimum(64, v)).all() and (length <= v).all()
  assert (length >= np.floor(v * 0.5) - 1).all()  # p >= 0.5 (float32 floor may lose one frame)
  assert (start >= 0).all() and (start + length <= v).all()
  assert len(np.unique(start[v == 300])) > 10  # the start is actually random
  again = crop(keys, valid)
  np.testing.assert_array_equal(np.asarray(again[0]), start)
  np.testing.assert_array_equal(np.asarray(again[1]), length)


def test_train_crop_resize_matches_window():
  x = _sample(250, seed=3)
  key = jax.random.key(7)
  start, length = transforms.crop_window(jnp.int32(250), key, (0.5, 1.0), T)
  out = transforms.crop_resize(jnp.asarray(x), jnp.int32(250), key, (0.5, 1.0), 120)
  ref = _reference_resize(x[int(start) : int(start) + int(length)], 120)
  np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-6, atol=1e-6)


def test_valid_length_counts_nonzero_sum_frames():
  x = _sample(137)
  assert int(transforms.valid_length(jnp.asarray(x))) == 137
  x[10] = 0
  x[10, :2] = [1.0, -1.0]  # values summing to zero make the frame invalid, as in the official code
  assert int(transforms.valid_length(jnp.asarray(x))) == 136
  assert int(transforms.valid_length(jnp.zeros((T, 150)))) == 0


def test_to_persons_layout():
  x = np.arange(T * 150, dtype=np.float32).reshape(T, 150)
  p = np.asarray(transforms.to_persons(jnp.asarray(x)))
  assert p.shape == (2, T, 25, 3)
  for m, t, v, c in [(0, 0, 0, 0), (1, 5, 24, 2), (0, 299, 3, 1), (1, 17, 0, 0)]:
    assert p[m, t, v, c] == x[t, m * 75 + v * 3 + c]


def test_rotation_matrix_conventions():
  ax, ay, az = 0.1, -0.2, 0.25
  c, s = np.cos, np.sin
  rx = np.array([[1, 0, 0], [0, c(ax), s(ax)], [0, -s(ax), c(ax)]])
  ry = np.array([[c(ay), 0, -s(ay)], [0, 1, 0], [s(ay), 0, c(ay)]])
  rz = np.array([[c(az), s(az), 0], [-s(az), c(az), 0], [0, 0, 1]])
  r = np.asarray(transforms.rotation_matrix(jnp.array([ax, ay, az], jnp.float32)))
  np.testing.assert_allclose(r, rz @ ry @ rx, atol=1e-6)
  np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)
  assert abs(np.linalg.det(r) - 1) < 1e-6
  np.testing.assert_allclose(np.asarray(transforms.rotation_matrix(jnp.zeros(3))), np.eye(3))


def test_random_rotation_angles_and_application():
  r = np.asarray(transforms.random_rotation(jax.random.key(3), max_angle=0.3))
  np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)
  assert np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)) <= 0.3 * np.sqrt(3) + 1e-6
  pts = np.random.default_rng(0).standard_normal((4, 5, 3)).astype(np.float32)
  out = np.asarray(transforms.apply_rotation(jnp.asarray(pts), jnp.asarray(r)))
  np.testing.assert_allclose(out, np.einsum("ij,abj->abi", r, pts), atol=1e-5)


def _batch() -> np.ndarray:
  return np.stack(
    [_sample(v, seed=i, second_person=i % 2 == 0) for i, v in enumerate([300, 250, 90, 40, 120, 300, 10, 175])]
  )  # (8, T, 150)


def test_augment_batch_rotation_and_zero_persons():
  x = jnp.asarray(_batch())
  augment = jax.jit(
    lambda k, b, a: transforms.augment_batch(k, b, p_interval=(0.5, 1.0), window=120, rotate=True, max_angle=a)
  )
  out = np.asarray(augment(jax.random.key(0), x, 0.3))
  unrotated = np.asarray(augment(jax.random.key(0), x, 0.0))  # same crops, identity rotation
  assert out.shape == (8, 2, 120, 25, 3) and out.dtype == np.float32
  for i in range(8):
    assert (out[i, 1] == 0).all() == (i % 2 == 1)
    assert (np.abs(out[i, 0]).sum(axis=(1, 2)) > 0).all()  # no padding frame leaks into the crop
  np.testing.assert_allclose(
    np.linalg.norm(out, axis=-1), np.linalg.norm(unrotated, axis=-1), rtol=1e-5, atol=1e-6
  )  # rotation about the origin keeps joint norms
  assert not np.allclose(out, unrotated)


def test_augment_batch_eval_is_deterministic_crop():
  x = _batch()
  out = transforms.augment_batch(None, jnp.asarray(x), p_interval=(0.95,), window=120, rotate=False)
  for i in (0, 3):
    valid = int(transforms.valid_length(jnp.asarray(x[i])))
    bias = int(0.05 * valid / 2)
    ref = _reference_resize(x[i, bias : valid - bias], 120)  # (120, 150)
    ref = ref.reshape(120, 2, 25, 3).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(np.asarray(out[i]), ref, rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="key"):
    transforms.augment_batch(None, jnp.asarray(x), p_interval=(0.5, 1.0), window=120, rotate=False)


def test_augment_batch_jit_and_sharded_match_eager():
  x = jnp.asarray(_batch())
  key = jax.random.key(42)
  kwargs = dict(p_interval=(0.5, 1.0), window=120, rotate=True)
  eager = np.asarray(transforms.augment_batch(key, x, **kwargs))
  jitted = jax.jit(lambda k, b: transforms.augment_batch(k, b, **kwargs))
  np.testing.assert_allclose(np.asarray(jitted(key, x)), eager, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(jitted(key, x)), np.asarray(jitted(key, x)))
  mesh = Mesh(np.array(jax.devices()), ("data",))
  sharded_x = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
  out = jitted(key, sharded_x)
  np.testing.assert_allclose(np.asarray(out), eager, rtol=1e-6, atol=1e-6)
  other = np.asarray(jitted(jax.random.key(43), x))
  assert not np.allclose(other, eager)


def test_streams_bone_and_motion():
  """bone: each joint minus its SPEC §1.1 parent (head 4 - neck 3; spine-shoulder 21 is its own parent: 0);
  motion: next frame minus this one, last frame 0; an absent (zero) person stays zero in both."""
  x = np.zeros((2, 5, 25, 3), np.float32)  # (M, T, V, C): person 1 absent
  x[0] = np.random.default_rng(0).standard_normal((5, 25, 3))
  bone = np.asarray(transforms.to_stream(jnp.asarray(x), "bone"))
  np.testing.assert_array_equal(bone[0, :, 3], x[0, :, 3] - x[0, :, 2])
  np.testing.assert_array_equal(bone[0, :, 0], x[0, :, 0] - x[0, :, 1])
  assert not bone[0, :, 20].any() and not bone[1].any()
  parents = dict(transforms.BONE_PAIRS)
  assert sorted(parents) == list(range(1, 26))  # every joint has exactly one bone
  motion = np.asarray(transforms.to_stream(jnp.asarray(x), "motion"))
  np.testing.assert_array_equal(motion[0, :4], x[0, 1:] - x[0, :4])
  assert not motion[:, 4].any() and not motion[1].any()
  np.testing.assert_array_equal(transforms.to_stream(jnp.asarray(x), "joint"), x)
  with pytest.raises(ValueError, match="data.stream='velocity'"):
    transforms.to_stream(jnp.asarray(x), "velocity")


def test_the_eval_feeder_applies_the_stream_after_the_crop():
  x = jnp.asarray(_sample(200)[None])  # (1, T, 150)
  joint = transforms.augment_batch(None, x, p_interval=(0.95,), window=32, rotate=False)
  bone = transforms.augment_batch(None, x, p_interval=(0.95,), window=32, rotate=False, stream="bone")
  np.testing.assert_array_equal(bone, transforms.to_stream(joint, "bone"))
