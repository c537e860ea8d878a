"""Running the official PyTorch models next to ours (parity tests, benchmarks/compare_torch.py). Needs torch.

The official code is imported by path from local checkouts `root/MAMP` and `root/STARS` (never copied here).
Stand-ins cover what they import but we never call (wandb, h5py, matplotlib), STARS' all-gathers run in a
single-process gloo group, and its batch shuffle (hard-wired to CUDA) gets a CPU twin.
"""

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


def torch_threads() -> int:
  """CPU threads to give torch: what this process may use (JAX's CPU client uses the same)."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
