"""Device mesh and partition rules: the batch is split over the `data` axis, parameters placed by rules.

Rules are (regex on the parameter path, placement) pairs, first match wins. Placements: 'replicate',
'fsdp' (shard the largest axis divisible by the `data` axis size; ZeRO-3 style parameter and optimizer-state
sharding), or 'rows' (split the leading axis over `data`, e.g. the STARS support queue). FSDP is therefore one
switch: `config.sharding.fsdp`.
"""

import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from stars_jax.pytree import path_name

DATA_AXIS = "data"
REPLICATE, FSDP, ROWS = "replicate", "fsdp", "rows"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over all (global) devices, axis `data`."""
  devices = np.asarray(devices if devices is not None else jax.devices())
  return Mesh(devices.reshape(-1), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def default_rules(fsdp: bool) -> list[tuple[str, str]]:
  return [(".*", FSDP if fsdp else REPLICATE)]


def _fsdp_spec(shape: tuple[int, ...], axis_size: int, min_size: int) -> P:
  if int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
    if shape[axis] % axis_size == 0:
      spec = [None] * len(shape)
      spec[axis] = DATA_AXIS
      return P(*spec)
  return P()


def tree_shardings(tree: Any, mesh: Mesh, rules: Sequence[tuple[str, str]], fsdp_min_size: int = 2**16) -> Any:
  """NamedShardings for every leaf of `tree` (arrays or ShapeDtypeStructs) from the first matching rule."""
  compiled = [(re.compile(pattern), placement) for pattern, placement in rules]
  axis_size = mesh.shape[DATA_AXIS]

  def place(path, leaf):
    name = path_name(path)
    for pattern, placement in compiled:
      if pattern.fullmatch(name):
        if placement == FSDP and getattr(leaf, "ndim", 0) > 0:
          return NamedSharding(mesh, _fsdp_spec(leaf.shape, axis_size, fsdp_min_size))
        if placement == ROWS and getattr(leaf, "ndim", 0) > 0:
          return batch_sharding(mesh)
        if placement not in (FSDP, REPLICATE, ROWS):
          raise ValueError(f"Unknown placement {placement!r} for rule {pattern.pattern!r}")
        return replicated(mesh)
    raise ValueError(f"No partition rule matches parameter {name!r}")

  return jax.tree_util.tree_map_with_path(place, tree)


def global_batch(local: Any, mesh: Mesh) -> Any:
  """This host's slice of a batch (arrays, or a dict of them) -> global arrays sharded over `data`."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(batch_sharding(mesh), x), local)
