"""What the chip running a model can do: the compute dtype and attention kernel a config's 'auto' resolves to.

Pure functions of a `Chip` description (platform, device kind, CUDA compute capability), so the rules are
tested on CPU with fake chips; `describe()` reads the real one. Below models/ and train/ (imports only jax).
"""

import dataclasses

import jax

from stars_jax import errors

ATTENTION_IMPLS = ("auto", "xla", "cudnn", "einsum", "chunked")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")
_HALF = ("bfloat16", "float16")


class ChoiceError(errors.BadConfig):
  """A config's compute dtype or attention kernel cannot run on this chip (one line, naming the key)."""


@dataclasses.dataclass(frozen=True)
class Chip:
  """The first device: platform 'cpu' / 'gpu' / 'tpu', device kind, CUDA compute capability (None elsewhere)."""

  platform: str
  kind: str = ""
  compute_capability: tuple[int, int] | None = None

  @property
  def cuda(self) -> bool:
    return self.platform == "gpu" and self.compute_capability is not None

  @property
  def native_bf16(self) -> bool:
    """bf16 matrix units: every TPU, NVIDIA from Ampere (8.0) on; a T4 (7.5) emulates bf16."""
    return self.platform == "tpu" or (self.cuda and self.compute_capability >= (8, 0))


@dataclasses.dataclass(frozen=True)
class Execution:
  """How a model runs on a chip: the resolved choices, recorded in results.json and benchmark JSONs."""

  compute_dtype: str
  attention_impl: str
  platform: str
  device_kind: str
  compute_capability: str | None

  def to_dict(self) -> dict[str, str | None]:
    return dataclasses.asdict(self)


def _capability(text: str | None) -> tuple[int, int] | None:
  """'9.0' -> (9, 0); None or a non-CUDA string (ROCm's 'gfx90a') -> None."""
  try:
    major, minor = (int(p) for p in str(text).split(".")[:2])
  except ValueError:
    return None
  return major, minor


def describe(device: jax.Device | None = None) -> Chip:
  """The description of `device` (default: the first device)."""
  device = device or jax.devices()[0]
  return Chip(device.platform, device.device_kind, _capability(getattr(device, "compute_capability", None)))


def compute_dtype(name: str, chip: Chip) -> str:
  """model.compute_dtype -> 'float32' / 'bfloat16' / 'float16'; 'auto' is bf16 only on native bf16 units."""
  if name not in COMPUTE_DTYPES:
    raise ChoiceError(f"model.compute_dtype={name!r} is unknown; choose one of {COMPUTE_DTYPES}")
  if name == "auto":
    return "bfloat16" if chip.native_bf16 else "float32"
  return name


def _cudnn_problem(chip: Chip, dtype: str, head_dims: tuple[int, ...]) -> str | None:
  """Why cuDNN's fused attention cannot run here (jax's own checks, made before compiling), or None."""
  if not chip.cuda:
    return f"needs an NVIDIA GPU (this is {chip.platform} {chip.kind!r})"
  if chip.compute_capability < (8, 0):
    return f"needs compute capability >= 8.0 ({chip.kind!r} has {chip.compute_capability})"
  if dtype not in _HALF:
    return f"needs model.compute_dtype bfloat16 or float16 (it resolves to {dtype})"
  limit = 256 if chip.compute_capability >= (9, 0) else 128
  bad = [d for d in head_dims if d % 8 or d > limit]
  if bad:
    return f"needs head dims that are multiples of 8 and <= {limit} on this chip (the model has {head_dims})"
  return None


def attention_impl(name: str, chip: Chip, dtype: str, head_dims: tuple[int, ...]) -> str:
  """model.attention_impl -> 'xla' / 'cudnn' / 'einsum' / 'chunked' for a model of compute dtype `dtype` (resolved)
  whose attention layers have head dims `head_dims`. 'auto' (or '', old configs) is 'chunked' on CPU, 'cudnn'
  where it can run, else 'xla'. Refuses a choice that cannot run here."""
  name = name or "auto"
  if name not in ATTENTION_IMPLS:
    raise ChoiceError(f"model.attention_impl={name!r} is unknown; choose one of {ATTENTION_IMPLS}")
  if name == "auto":
    if chip.platform == "cpu":
      return "chunked"
    return "xla" if _cudnn_problem(chip, dtype, head_dims) else "cudnn"
  if name == "cudnn" and (problem := _cudnn_problem(chip, dtype, head_dims)):
    raise ChoiceError(f"model.attention_impl='cudnn' {problem}; use 'auto' or 'xla'")
  if name == "chunked" and chip.platform != "cpu":
    raise ChoiceError(
      f"model.attention_impl='chunked' is a CPU kernel (serial per head on {chip.platform}); use 'auto'"
    )
  return name


def execution(dtype_name: str, attention_name: str, chip: Chip, head_dims: tuple[int, ...]) -> Execution:
  """Both choices for a model on `chip`."""
  dtype = compute_dtype(dtype_name, chip)
  impl = attention_impl(attention_name, chip, dtype, head_dims)
  capability = ".".join(map(str, chip.compute_capability)) if chip.compute_capability else None
  return Execution(dtype, impl, chip.platform, chip.kind, capability)
