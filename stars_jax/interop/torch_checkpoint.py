"""Official PyTorch checkpoints <-> our Flax trees and orbax checkpoints (SPEC §2.10-2.11, §3.7, §4.3).

Official formats (SPEC §7.24):
  mamp   dict {'model': state_dict, 'args': Namespace, ...}: MAMP pretraining (decoder* keys), fine-tune
         (head.fc1/bn/fc2) or linear-probe (head.fc.0/1) checkpoints;
  stars  raw state_dict: queue, queue_ptr, queue_id, encoder_student.* (encoder + head.projector/predictor).
  moco   raw state_dict: queue, queue_ptr (no ids), encoder_student.*, encoder_teacher.* (both as in stars).
  dino   raw state_dict: encoder_student.*, encoder_teacher.* (encoder + head.weight/bias, the Linear head). The
         loss's `center` buffer lives in the training pickle and stays zero with Sinkhorn-Knopp: not carried.
Names map one-to-one (tables in `stars_jax.models.mamp` and `stars_jax.models.heads`): `.` -> `/`, an index
`x.{i}` -> `x_{i}`, Linear/Conv `weight` -> `kernel` (transposed), norm `weight` -> `scale`, BatchNorm
running_mean/var -> batch_stats mean/var (num_batches_tracked is dropped on import and written as 0 on export),
the (D, K) feature-major queue -> `SupportQueue` rows (K, D) (MoCo's keys get ids -1), encoder_teacher.* -> the
state's `teacher` {'params', 'batch_stats'}.
"""

import argparse
import collections
import dataclasses
import json
import pathlib
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from stars_jax import errors, support_queue
from stars_jax.interop import pth
from stars_jax.train import checkpoint

STUDENT = "encoder_student."
TEACHER = "encoder_teacher."
QUEUE_KEYS = ("queue", "queue_ptr", "queue_id")
ENCODER_KEYS = ("temp_embed", "pos_embed", "joints_embed.proj.weight")  # what `describe` reads
BN_STATS = {"running_mean": "mean", "running_var": "var"}
FORMATS = ("mamp", "stars", "moco", "dino")
_TUNING_HEADS = ("head.predictor", "head.projector", "head.weight", "head.bias")  # dropped by the 'mamp' format

# PyTorch state_dict order: a module's own parameters, then its buffers, then its children in registration order.
_ORDER = {
  name: rank
  for rank, name in enumerate(
    (
      "queue",
      "queue_ptr",
      "queue_id",
      "temp_embed",
      "pos_embed",
      "mask_token",
      "decoder_temp_embed",
      "decoder_pos_embed",
      "encoder_student",
      "encoder_teacher",
      "joints_embed",
      "blocks",
      "norm",
      "decoder_embed",
      "decoder_blocks",
      "decoder_norm",
      "decoder_pred",
      "head",
      "norm1",
      "attn",
      "norm2",
      "mlp",
      "proj",
      "qkv",
      "projector",
      "predictor",
      "bn",
      "fc1",
      "fc",
      "fc2",
      "weight",
      "bias",
      "running_mean",
      "running_var",
      "num_batches_tracked",
    )
  )
}

Tree = dict[str, Any]


def _sort_key(name: str) -> tuple:
  return tuple(int(c) if c.isdigit() else _ORDER.get(c, len(_ORDER)) for c in name.split("."))


def _set(tree: Tree, path: list[str], value) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _flatten(tree: Tree, prefix: tuple = ()) -> dict[tuple, Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def _module_path(name: str) -> list[str]:
  """'blocks.3.attn.qkv' -> ['blocks_3', 'attn', 'qkv'] (an index joins the component before it)."""
  path: list[str] = []
  for part in name.split("."):
    if part.isdigit():
      path[-1] = f"{path[-1]}_{part}"
    else:
      path.append(part)
  return path


def to_flax(state_dict: dict[str, np.ndarray]) -> dict[str, Tree]:
  """Official model state_dict (no prefix) -> {'params': ..., 'batch_stats': ...} as float32 numpy trees."""
  variables: dict[str, Tree] = {"params": {}, "batch_stats": {}}
  for name, value in state_dict.items():
    value = np.asarray(value)
    *module, leaf = name.split(".")
    path = _module_path(".".join(module)) if module else []
    if leaf == "num_batches_tracked":
      continue
    if leaf in BN_STATS:
      _set(variables["batch_stats"], path + [BN_STATS[leaf]], value.astype(np.float32))
      continue
    if leaf == "weight" and value.ndim == 1:
      leaf = "scale"
    elif leaf == "weight" and value.ndim == 2:
      leaf, value = "kernel", value.T
    elif leaf == "weight" and value.ndim == 4:
      leaf, value = "kernel", value.transpose(2, 3, 1, 0)  # (out, in, kT, kV) -> (kT, kV, in, out)
    elif leaf == "weight":
      raise ValueError(f"{name}: unexpected weight of shape {value.shape}")
    _set(variables["params"], path + [leaf], np.ascontiguousarray(value, np.float32))
  return variables


def to_torch(params: Tree, batch_stats: Tree | None = None) -> "collections.OrderedDict[str, np.ndarray]":
  """Inverse of `to_flax`: Flax trees -> official state_dict (official key order, float32 and int64)."""
  out: dict[str, np.ndarray] = {}
  for path, value in _flatten(params).items():
    *module, leaf = path
    value = np.asarray(value, np.float32)
    if leaf == "kernel":
      value = value.T if value.ndim == 2 else value.transpose(3, 2, 0, 1)
    name = ".".join(
      [re.sub(r"_(\d+)$", r".\1", m) for m in module] + [{"kernel": "weight", "scale": "weight"}.get(leaf, leaf)]
    )
    out[name] = np.ascontiguousarray(value)
  for path, value in _flatten(batch_stats or {}).items():
    *module, leaf = path
    prefix = ".".join(re.sub(r"_(\d+)$", r".\1", m) for m in module)
    out[f"{prefix}.running_{leaf}"] = np.asarray(value, np.float32)
    out[f"{prefix}.num_batches_tracked"] = np.zeros((), np.int64)
  return collections.OrderedDict(sorted(out.items(), key=lambda kv: _sort_key(kv[0])))


def queue_to_flax(state_dict: dict[str, np.ndarray]) -> support_queue.SupportQueue:
  """Official queue buffers (queue (D, K), queue_ptr (1,), queue_id (K,), absent in MoCo: ids -1) ->
  SupportQueue (rows (K, D))."""
  size = state_dict["queue"].shape[1]
  ids = state_dict["queue_id"] if "queue_id" in state_dict else np.full((size,), support_queue.EMPTY_ID)
  return support_queue.SupportQueue(
    embeddings=jnp.asarray(np.ascontiguousarray(state_dict["queue"].T), jnp.float32),
    ids=jnp.asarray(ids, jnp.int32),
    ptr=jnp.asarray(np.asarray(state_dict["queue_ptr"]).reshape(-1)[0], jnp.int32),
  )


def queue_to_torch(queue, with_ids: bool = True) -> dict[str, np.ndarray]:
  out = {
    "queue": np.ascontiguousarray(np.asarray(queue.embeddings, np.float32).T),
    "queue_ptr": np.asarray(queue.ptr, np.int64).reshape(1),
  }
  if with_ids:
    out["queue_id"] = np.asarray(queue.ids, np.int64)
  return out


def split_official(obj: Any) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
  """A loaded official checkpoint -> (format, model state_dict without prefixes, metadata)."""
  if isinstance(obj, dict) and "model" in obj:
    meta = {k: v for k, v in obj.items() if k in ("epoch",)}
    if isinstance(obj.get("args"), argparse.Namespace):
      meta["args"] = vars(obj["args"])
    state = {k.removeprefix("module."): v for k, v in obj["model"].items()}
    return "mamp", state, meta
  if isinstance(obj, dict):
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if any(k.startswith(STUDENT) for k in state):
      model = {k[len(STUDENT) :]: v for k, v in state.items() if k.startswith(STUDENT)}
      model.update({k: state[k] for k in QUEUE_KEYS if k in state})
      model.update({k: v for k, v in state.items() if k.startswith(TEACHER)})
      if not any(k.startswith(TEACHER) for k in state):
        return "stars", model, {}
      return ("dino" if "head.weight" in model else "moco"), model, {}
  raise ValueError("not an official MAMP ({'model': ...}) or STARS / MoCo / DINO (encoder_student.*) checkpoint")


def describe(state_dict: dict[str, np.ndarray]) -> dict[str, Any]:
  """Model hyper-parameters readable from the weights (heads cannot be: see the checkpoint's args)."""
  kinds = {
    "decoder_pred.weight": "mamp_pretrain",
    "head.predictor.0.weight": "stars",
    "head.fc1.weight": "finetune",
    "head.fc.1.weight": "linear",
    "head.weight": "dino",
  }
  kind = next((v for k, v in kinds.items() if k in state_dict), "encoder")
  count = lambda prefix: len({k.split(".")[1] for k in state_dict if k.startswith(prefix)})  # noqa: E731
  info = {
    "kind": kind,
    "dim": int(state_dict["temp_embed"].shape[-1]),
    "depth": count("blocks."),
    "num_segments": int(state_dict["temp_embed"].shape[1]),
    "num_joints": int(state_dict["pos_embed"].shape[2]),
    "t_patch": int(state_dict["joints_embed.proj.weight"].shape[2]),
  }
  if kind == "mamp_pretrain":
    info["decoder_depth"] = count("decoder_blocks.")
  if kind == "stars":
    info["head_hidden_dim"] = int(state_dict["head.predictor.0.weight"].shape[0])
  if kind == "dino":
    info["out_dim"] = int(state_dict["head.weight"].shape[0])
  if kind in ("finetune", "linear"):
    info["num_classes"] = int(state_dict[f"head.{'fc2' if kind == 'finetune' else 'fc.1'}.weight"].shape[0])
  return info


def _write(out: pathlib.Path, fields: dict[str, Any], extra: dict[str, Any]) -> pathlib.Path:
  """Saves `fields` (step, params, ...) with our Checkpointer, i.e. exactly the layout training writes."""
  state_cls = dataclasses.make_dataclass("ImportedState", list(fields))
  ckpt = checkpoint.Checkpointer(out, keep=1)
  ckpt.save(state_cls(**fields), json.loads(json.dumps(extra, default=str)))
  ckpt.wait()
  ckpt.close()
  return checkpoint.latest_item_path(out)


def import_checkpoint(path: str | pathlib.Path, out: str | pathlib.Path) -> dict[str, Any]:
  """Converts an official `.pth`/`.pt` into an orbax checkpoint under `out` that `stars.init` (and restore of
  params/batch_stats) reads directly. Returns the description written into its JSON item."""
  fmt, state, meta = split_official(pth.load(path))
  missing = [k for k in ENCODER_KEYS if k not in state]
  if missing:
    raise errors.BadInput(
      f"{path}: a {fmt}-style checkpoint without the MAMP encoder weights {missing} (another model? its first "
      f"keys: {sorted(state)[:5]})"
    )
  queue = {k: state.pop(k) for k in QUEUE_KEYS if k in state}
  teacher = {k[len(TEACHER) :]: state.pop(k) for k in list(state) if k.startswith(TEACHER)}
  info = {"source": str(path), "format": fmt, **describe(state), **meta}
  variables = jax.tree.map(jnp.asarray, to_flax(state))
  fields: dict[str, Any] = {"step": jnp.zeros((), jnp.int32), "params": variables["params"]}
  if variables["batch_stats"]:
    fields["batch_stats"] = variables["batch_stats"]
  if queue:
    fields["queue"] = queue_to_flax(queue)
  if teacher:
    fields["teacher"] = jax.tree.map(jnp.asarray, to_flax(teacher))
  info["item"] = str(_write(pathlib.Path(out), fields, {"imported_from_torch": info}))
  return info


def read_checkpoint(directory: str | pathlib.Path) -> dict[str, Any]:
  """Our newest readable checkpoint under `directory` -> {'params', 'batch_stats'?, 'queue'?, 'teacher'?} as numpy
  trees."""
  return checkpoint.read_newest(directory, "export-torch DIRECTORY", _read_item)


def _read_item(item: pathlib.Path) -> dict[str, Any]:
  saved = checkpoint.saved_structure(item)
  fields = [k for k in ("params", "batch_stats", "queue", "teacher") if saved.get(k)]
  target = {
    k: jax.tree.map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray), saved[k], is_leaf=lambda m: hasattr(m, "shape"))
    for k in fields
  }
  with ocp.PyTreeCheckpointer() as ckptr:
    restored = ckptr.restore(
      item.absolute(),
      args=ocp.args.PyTreeRestore(item={k: saved[k] for k in fields}, restore_args=target, partial_restore=True),
    )
  if "queue" in restored:
    q = restored["queue"]
    restored["queue"] = support_queue.SupportQueue(q["embeddings"], q["ids"], q["ptr"])
  return restored


def official_state(variables: dict[str, Any], fmt: str) -> dict[str, Any]:
  """Our variables -> the object the official code loads: 'mamp' {'model': state_dict} (MAMP downstream
  scripts, STARS knn_eval and stage-2 init); 'stars' (raw encoder_student.* + queue: STARS stage 3, STARS'
  downstream scripts); 'moco' / 'dino' (encoder_student.*, encoder_teacher.* and MoCo's queue: the ablations'
  third stages). Tuning heads, queues and teachers are only written in the tuning formats."""
  if fmt not in FORMATS:
    raise ValueError(f"format {fmt!r}; choose one of {FORMATS}")
  state = to_torch(variables["params"], variables.get("batch_stats"))
  if fmt == "mamp":
    return {"model": collections.OrderedDict((k, v) for k, v in state.items() if not k.startswith(_TUNING_HEADS))}
  if fmt in ("moco", "dino") and "teacher" not in variables:
    raise ValueError(f"format {fmt!r} needs a checkpoint with a teacher (a {fmt} tuning run)")
  out = collections.OrderedDict()
  if fmt in ("stars", "moco") and "queue" in variables:
    out.update(queue_to_torch(variables["queue"], with_ids=fmt == "stars"))
  encoder = lambda s: ((k, v) for k, v in s.items() if not k.startswith(("decoder", "mask_token")))  # noqa: E731
  out.update((STUDENT + k, v) for k, v in encoder(state))
  if fmt in ("moco", "dino"):
    teacher = to_torch(variables["teacher"]["params"], variables["teacher"].get("batch_stats"))
    out.update((TEACHER + k, v) for k, v in encoder(teacher))
  return out


def export_checkpoint(directory: str | pathlib.Path, out: str | pathlib.Path, fmt: str = "auto") -> str:
  """Writes our newest checkpoint under `directory` as an official `.pth` (no torch needed); returns the format."""
  variables = read_checkpoint(directory)
  if fmt == "auto":
    queue = "queue" in variables
    fmt = ("moco" if queue else "dino") if "teacher" in variables else ("stars" if queue else "mamp")
  pth.save(official_state(variables, fmt), out)
  return fmt
