"""Running the official PyTorch models next to ours (parity tests, benchmarks/compare_torch.py). Needs torch.

The official code is imported by path from local checkouts `root/MAMP` and `root/STARS` (never copied here).
Stand-ins cover what they import but we never call (wandb, h5py, matplotlib), STARS' all-gathers run in a
single-process gloo group, and its batch shuffle (hard-wired to CUDA) gets a CPU twin.
"""

import contextlib
import dataclasses
import os
import pathlib
import sys
import tempfile
import types
from typing import Any

import numpy as np

_STUBS = ("wandb", "h5py", "matplotlib", "matplotlib.pyplot")  # imported, never used on our paths


@dataclasses.dataclass
class Official:
  mamp: types.ModuleType  # MAMP:model_mamp/transformer.py (pretraining model)
  downstream: types.ModuleType  # MAMP:model/transformer.py (linear-probe / fine-tune model)
  nnclr: types.ModuleType  # STARS:net/nnclr.py
  clr: types.ModuleType  # STARS:processor/pretrain_clrtuning.py (optimizer groups, clipping)
  moco: types.ModuleType  # STARS:net/moco.py
  moco_processor: type  # STARS:processor/pretrain_mocotuning.py MOCOTuningProcessor (its optimizer groups)
  dino: types.ModuleType  # STARS:net/dino.py
  dino_processor: type  # STARS:processor/pretrain_dinotuning.py DINOTuningProcessor (its optimizer groups)
  dino_loss: types.ModuleType  # STARS:loss/dino.py
  koleo: types.ModuleType  # STARS:loss/regularizer.py


def load_official(root: str | pathlib.Path) -> Official:
  """Imports the official modules from root/MAMP and root/STARS."""
  import importlib

  root = pathlib.Path(root)
  for name in ("MAMP", "STARS"):
    if not (root / name).is_dir():
      raise FileNotFoundError(f"{root / name}: expected a checkout of the official {name} repository")
    if str(root / name) not in sys.path:
      sys.path.append(str(root / name))
  for name in _STUBS:
    try:
      importlib.import_module(name)
    except ImportError:
      sys.modules[name] = types.ModuleType(name)
  return Official(
    importlib.import_module("model_mamp.transformer"),
    importlib.import_module("model.transformer"),
    importlib.import_module("net.nnclr"),
    importlib.import_module("processor.pretrain_clrtuning"),
    importlib.import_module("net.moco"),
    importlib.import_module("processor.pretrain_mocotuning").MOCOTuningProcessor,
    importlib.import_module("net.dino"),
    importlib.import_module("processor.pretrain_dinotuning").DINOTuningProcessor,
    importlib.import_module("loss.dino"),
    importlib.import_module("loss.regularizer"),
  )


def init_process_group() -> None:
  """A single-process CPU group, so STARS' all-gathers (and their autograd) run as on one GPU."""
  import torch.distributed as dist

  if not dist.is_initialized():
    path = pathlib.Path(tempfile.mkdtemp()) / "pg"
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=0, world_size=1)


def nnclr(official: Official, **kwargs) -> Any:
  """An official SkeletonNNCLR whose batch shuffle runs on the CPU (the original calls `.cuda()`)."""
  import torch

  class CpuNNCLR(official.nnclr.SkeletonNNCLR):
    @torch.no_grad()
    def _batch_shuffle_ddp(self, x):
      idx_shuffle = torch.randperm(x.shape[0])
      return x[idx_shuffle], torch.argsort(idx_shuffle)

  init_process_group()
  return CpuNNCLR(base_encoder="net.transformer.Transformer", **kwargs)


@contextlib.contextmanager
def cuda_on_cpu():
  """`Tensor.cuda()` as the identity while inside: the official MoCo step puts its shuffle index and CE labels
  on the GPU; everything else it does runs on the CPU in a single-process group."""
  import torch

  init_process_group()
  original = torch.Tensor.cuda
  torch.Tensor.cuda = lambda self, *args, **kwargs: self
  try:
    yield
  finally:
    torch.Tensor.cuda = original


def linprobe(official: Official, **kwargs) -> Any:
  """The official linear-probe model after `main_linprobe.py`'s head surgery: BN(affine=False, eps 1e-6) + fc."""
  import torch

  model = official.downstream.Transformer(protocol="linprobe", **kwargs)
  fc = model.head.fc
  model.head.fc = torch.nn.Sequential(torch.nn.BatchNorm1d(fc.in_features, affine=False, eps=1e-6), fc)
  return model


def weight_decay_groups(model, weight_decay: float) -> list[dict]:
  """timm 0.3.2 `add_weight_decay` (used by MAMP's main_pretrain.py): no decay for 1-D tensors and biases."""
  decay, no_decay = [], []
  for name, param in model.named_parameters():
    (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
  return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def state_dict(module) -> dict[str, np.ndarray]:
  return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def to_official_clips(clips: np.ndarray) -> np.ndarray:
  """Our clips (N, M, T, V, C) -> the official batch layout (N, C, T, V, M)."""
  return np.ascontiguousarray(np.asarray(clips).transpose(0, 4, 2, 3, 1))


def relative_error(ours, reference) -> float:
  """max |ours - reference| / max |reference| (the parity criterion, float32)."""
  ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
  if ours.shape != reference.shape:
    raise ValueError(f"shape {ours.shape} vs reference {reference.shape}")
  return float(np.max(np.abs(ours - reference)) / max(np.max(np.abs(reference)), 1e-30))


class Differences:
  """The largest relative difference seen per compared quantity (for the end-of-run report), asserting each one
  within `tol` (max |ours - official| <= tol * max |official|)."""

  def __init__(self, tol: float):
    self.tol = tol
    self.largest: dict[str, Any] = {}

  def record(self, name: str, value: float) -> None:
    self.largest[name] = max(self.largest.get(name, 0.0), value)

  def check(self, name: str, ours, reference, where: str = "") -> None:
    err = relative_error(ours, reference)
    self.record(name, err)
    assert err <= self.tol, f"{name}{where}: relative difference {err:.3e}"

  def check_tree(self, name: str, ours: dict, reference: dict, tree_scale: bool = False) -> None:
    """Leaf by leaf, each relative to its own scale, or (tree_scale) to the largest reference leaf."""
    import jax

    ours_flat, ref_flat = (dict(jax.tree_util.tree_flatten_with_path(t)[0]) for t in (ours, reference))
    assert ours_flat.keys() == ref_flat.keys()
    scale = max(np.abs(np.asarray(v)).max() for v in ref_flat.values())
    for path in ref_flat:
      where = f" {jax.tree_util.keystr(path)}"
      if not tree_scale:
        self.check(name, ours_flat[path], ref_flat[path], where)
        continue
      per_tensor = relative_error(ours_flat[path], ref_flat[path])
      key = f"{name}, per tensor (not asserted)"
      if per_tensor > self.largest.get(key, (0.0,))[0]:
        self.largest[key] = (per_tensor, where)
      err = float(np.max(np.abs(np.asarray(ours_flat[path], np.float64) - ref_flat[path]))) / scale
      self.record(name, err)
      assert err <= self.tol, f"{name}{where}: difference {err:.3e} of the largest gradient"

  def report(self) -> str:
    return "\n".join(
      f"  {name}: {value if isinstance(value, tuple) else f'{value:.2e}'}"
      for name, value in sorted(self.largest.items())
    )


def torch_threads() -> int:
  """CPU threads to give torch: what this process may use (JAX's CPU client uses the same)."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
