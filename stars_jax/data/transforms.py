"""MAMP feeder transforms (SPEC §1.6) as pure JAX functions, run on device inside the jitted step.

The per-sample functions take one raw sample (T, 150) and are vmapped over the batch by
`augment_batch`. Crop lengths are data dependent, so cropping and resizing are expressed as a gather
from the full T-frame array with a static output shape.
"""

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from stars_jax.data.npz import NUM_COORDS, NUM_JOINTS, NUM_PERSONS

MIN_CROP_LENGTH = 64  # lower bound of the training crop length (official valid_crop_resize)
# Kinect v2 bones as (child, parent), 1-based (SPEC §1.1); every joint is a child once, the spine-shoulder (21)
# of itself, so its bone is zero.
BONE_PAIRS = (
  (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10), (12, 11), (13, 1),
  (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (21, 21), (23, 8), (24, 25), (25, 12),
)  # fmt: skip
_PARENT = np.array([parent - 1 for _, parent in sorted(BONE_PAIRS)], np.int32)  # (V,) 0-based parent of each joint
STREAMS = ("joint", "bone", "motion")
_HIGHEST = jax.lax.Precision.HIGHEST


def valid_length(x: jax.Array) -> jax.Array:
  """Number of frames whose sum over all 150 values is non-zero (the official valid_frame_num).

  x: (T, 150). Like the official code this assumes zero padding only at the end.
  """
  frame_sums = jnp.sum(x, axis=-1)  # (T,)
  return jnp.sum(frame_sums != 0).astype(jnp.int32)


def to_persons(x: jax.Array) -> jax.Array:
  """(T, 150) -> (M, T, V, C); the 150 values are ordered person-major, then joint, then xyz."""
  t = x.shape[0]
  return x.reshape(t, NUM_PERSONS, NUM_JOINTS, NUM_COORDS).transpose(1, 0, 2, 3)


def _eval_bias(valid: jax.Array, p: float, num_frames: int) -> jax.Array:
  """int((1 - p) * valid / 2) exactly as Python float64 evaluates it, via a trace-time table."""
  table = np.array([int((1 - p) * v / 2) for v in range(num_frames + 1)], np.int32)  # (T+1,)
  return jnp.asarray(table)[valid]


def crop_window(
  valid: jax.Array, key: jax.Array | None, p_interval: Sequence[float], num_frames: int
) -> tuple[jax.Array, jax.Array]:
  """(start, length) of the temporal crop of valid_crop_resize (SPEC §1.6 step 2), int32 scalars.

  p_interval = (p,): deterministic centre crop [bias, valid - bias),
  bias = int((1 - p) valid / 2).
  p_interval = (lo, hi): p ~ U(lo, hi), length = min(max(floor(valid p), 64), valid),
  start ~ U{0, ..., valid - length}. `key` is only needed in this random case.
  """
  valid = jnp.asarray(valid, jnp.int32)
  if len(p_interval) == 1:
    bias = _eval_bias(valid, float(p_interval[0]), num_frames)
    return bias, valid - 2 * bias
  if len(p_interval) != 2:
    raise ValueError(f"p_interval must have 1 (eval) or 2 (train) elements, got {p_interval}")
  if key is None:
    raise ValueError("a PRNG key is required for a random crop (two-element p_interval)")
  lo, hi = p_interval
  key_p, key_start = jax.random.split(key)
  p = jax.random.uniform(key_p, (), jnp.float32, lo, hi)
  length = jnp.floor(valid.astype(jnp.float32) * p).astype(jnp.int32)
  length = jnp.minimum(jnp.maximum(length, MIN_CROP_LENGTH), valid)
  start = jax.random.randint(key_start, (), 0, valid - length + 1, jnp.int32)
  return start, length


@functools.lru_cache(maxsize=8)
def _resize_table(max_length: int, window: int) -> tuple[np.ndarray, np.ndarray]:
  """Host-computed i0 (L+1, window) int32 and w1 (L+1, window) float32 for lengths 0..L."""
  length = np.arange(max_length + 1, dtype=np.int64)[:, None]  # (L+1, 1)
  scale = length.astype(np.float32) / np.float32(window)  # float32, one rounding, as PyTorch
  # scale (i + 0.5) - 0.5 rounded once, as PyTorch's CPU kernel evaluates it (a fused multiply-add): in float64
  # the product of a float32 and i + 0.5 (i < 2**10) and the subtraction are exact, so one cast rounds once.
  s = (scale.astype(np.float64) * (np.arange(window) + 0.5) - 0.5).astype(np.float32)
  s = np.maximum(s, np.float32(0))  # (L+1, window)
  last = np.maximum(length - 1, 0)  # length 0 happens for an all-zero sample
  i0 = np.minimum(np.floor(s).astype(np.int64), last)
  w1 = np.clip(s - i0.astype(np.float32), np.float32(0), np.float32(1))
  return i0.astype(np.int32), w1.astype(np.float32)


def resize_weights(length: jax.Array, window: int, max_length: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Neighbour offsets i0, i1 (window,) int32 and weight w1 (window,) of PyTorch linear resize.

  Matches F.interpolate(mode='bilinear', align_corners=False) along one axis from `length` to
  `window` samples, in float32 as PyTorch computes it: scale = L / window,
  s = max(scale (i + 0.5) - 0.5, 0) (one rounding), i0 = min(floor(s), L - 1), i1 = min(i0 + 1, L - 1),
  w1 = clip(s - i0, 0, 1); output_i = (1 - w1) x[i0] + w1 x[i1]. No antialiasing. The indices and weights are
  PyTorch's exactly; the output differs from its fused multiply-add by at most 2**-22 max|x| (rounding order).
  The values for every length in [0, max_length] are tabulated on the host in numpy float32:
  compiled XLA rewrites L / window as L * (1 / window), which moves s by an ulp and w1 by ~1e-5.
  """
  i0_table, w1_table = _resize_table(max_length, window)
  length = jnp.asarray(length, jnp.int32)
  i0 = jnp.asarray(i0_table)[length]  # (window,)
  w1 = jnp.asarray(w1_table)[length]  # (window,)
  i1 = jnp.minimum(i0 + 1, jnp.maximum(length - 1, 0))
  return i0, i1, w1


def crop_resize(
  x: jax.Array, valid: jax.Array, key: jax.Array | None, p_interval: Sequence[float], window: int
) -> jax.Array:
  """valid_crop_resize (SPEC §1.6 step 2): crop frames (axis 0), then linearly resize to `window`.

  x: (T, ...) -> (window, ...). The crop is a gather from the full array, so shapes stay static.
  """
  start, length = crop_window(valid, key, p_interval, x.shape[0])
  i0, i1, w1 = resize_weights(length, window, x.shape[0])
  x0 = jnp.take(x, start + i0, axis=0, mode="clip")  # (window, ...)
  x1 = jnp.take(x, start + i1, axis=0, mode="clip")  # (window, ...)
  w1 = w1.reshape((window,) + (1,) * (x.ndim - 1)).astype(x.dtype)
  return x0 * (1 - w1) + x1 * w1


def rotation_matrix(angles: jax.Array) -> jax.Array:
  """R = Rz Ry Rx (3, 3) for angles (θx, θy, θz), with the official feeder's sign conventions."""
  cx, cy, cz = jnp.cos(angles)
  sx, sy, sz = jnp.sin(angles)
  one, zero = jnp.ones_like(cx), jnp.zeros_like(cx)
  rx = jnp.array([[one, zero, zero], [zero, cx, sx], [zero, -sx, cx]])
  ry = jnp.array([[cy, zero, -sy], [zero, one, zero], [sy, zero, cy]])
  rz = jnp.array([[cz, sz, zero], [-sz, cz, zero], [zero, zero, one]])
  return jnp.matmul(jnp.matmul(rz, ry, precision=_HIGHEST), rx, precision=_HIGHEST)


def random_rotation(key: jax.Array, max_angle: float = 0.3) -> jax.Array:
  """Rotation matrix (3, 3) with the three angles drawn from U(-max_angle, max_angle)."""
  angles = jax.random.uniform(key, (3,), jnp.float32, -max_angle, max_angle)
  return rotation_matrix(angles)


def apply_rotation(x: jax.Array, r: jax.Array) -> jax.Array:
  """Left-multiply every joint's (x, y, z) column vector by r: (..., 3) -> (..., 3)."""
  return jnp.einsum("...j,ij->...i", x, r, precision=_HIGHEST)


def _augment_sample(
  key: jax.Array | None,
  x: jax.Array,
  *,
  p_interval: Sequence[float],
  window: int,
  rotate_sample: bool,
  max_angle: float,
) -> jax.Array:
  """One raw sample (T, 150) -> model input (M, window, V, C)."""
  crop_key = rot_key = None
  if key is not None:
    crop_key, rot_key = jax.random.split(key)
  x = crop_resize(x, valid_length(x), crop_key, p_interval, window)  # (window, 150)
  x = to_persons(x)  # (M, window, V, C)
  if rotate_sample:
    x = apply_rotation(x, random_rotation(rot_key, max_angle))
  return x


def to_stream(clips: jax.Array, stream: str) -> jax.Array:
  """Joint coordinates (..., T, V, C) -> the input of a `stream`: 'joint' as is; 'bone' each joint minus its
  parent (BONE_PAIRS); 'motion' x[t + 1] - x[t], the last frame zero. Absent (zero) persons stay zero."""
  if stream == "joint":
    return clips
  if stream == "bone":
    return clips - jnp.take(clips, jnp.asarray(_PARENT), axis=-2)
  if stream == "motion":
    return jnp.concatenate([clips[..., 1:, :, :] - clips[..., :-1, :, :], jnp.zeros_like(clips[..., :1, :, :])], -3)
  raise ValueError(f"data.stream={stream!r}; choose one of {STREAMS}")


def augment_batch(
  key: jax.Array | None,
  x: jax.Array,
  *,
  p_interval: Sequence[float],
  window: int,
  rotate: bool,
  max_angle: float = 0.3,
  stream: str = "joint",
) -> jax.Array:
  """Feeder transforms for a batch with independent per-sample randomness, then the input `stream`.

  x: (B, T, 150) raw samples -> (B, M, window, V, C) float32. `key` may be None only for the
  deterministic eval transform (one-element p_interval, no rotation).
  """
  x = jnp.asarray(x, jnp.float32)
  fn = functools.partial(
    _augment_sample, p_interval=tuple(p_interval), window=window, rotate_sample=rotate, max_angle=max_angle
  )
  if key is None:
    if len(p_interval) != 1 or rotate:
      raise ValueError("augment_batch needs a PRNG key for random crops or rotation")
    return to_stream(jax.vmap(lambda s: fn(None, s))(x), stream)
  keys = jax.random.split(key, x.shape[0])  # (B,) one key per sample
  return to_stream(jax.vmap(fn)(keys, x), stream)


def train_clips(key: jax.Array, x: jax.Array, data_config: Any) -> jax.Array:
  """The training feeder of `config.data` (SPEC §1.6): random crop-resize and, if `random_rot`, rotation, then
  `data.stream`. Raw (N, 300, 150) samples -> (N, M, window, V, C)."""
  return augment_batch(
    key,
    x,
    p_interval=tuple(data_config.train_p_interval),
    window=data_config.window,
    rotate=bool(data_config.random_rot),
    max_angle=data_config.rot_max,
    stream=data_config.stream,
  )
