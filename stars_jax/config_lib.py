"""How config files are read and composed. The recipes themselves, every number of them, live in `configs/`.

Every config has the same top level: `job` (what runs, a key of `stars_jax.jobs.JOBS`), `seed`,
`allow_config_change`, `data`, `model`, `sharding`, plus the group of the training stage it runs: `pretrain`,
`stars`, `linear`, `finetune` (each of the shape of `configs/common.py:training_group`) or `evaluate`
(frozen-feature protocols). A multi-stage job is a pipeline (`job = 'pipeline'`): `pipeline` and `steps`, each
step with its own group (stars_jax/pipeline/steps.py). `load_config` loads a file as `--config=` does; a config
file composes the pieces of another one through `sibling`.
"""

import importlib.util
import pathlib
import sys
import types

import ml_collections
from ml_collections.config_flags import config_flags

_MODULES: dict[pathlib.Path, types.ModuleType] = {}


def load_config(spec: str) -> ml_collections.ConfigDict:
  """`get_config([arg])` of a config file, `spec` = 'path.py' or 'path.py:arg', exactly as `--config=spec`
  loads it (but unlocked, so callers may add keys)."""
  return config_flags.ConfigFileFlagParser("config", lock_config=False).parse(spec)


def sibling(config_file: str, name: str) -> types.ModuleType:
  """The config file `<name>.py` in the directory of `config_file` (a config file's `__file__`) as a module:
  how one config file uses the pieces of another (e.g. `configs/common.py`)."""
  return load_module(pathlib.Path(config_file).with_name(f"{name}.py"))


def load_module(path: str | pathlib.Path) -> types.ModuleType:
  """A config file as a module (its tables and group builders), loaded once per process."""
  path = pathlib.Path(path).resolve()
  if path not in _MODULES:
    if not path.is_file():
      raise FileNotFoundError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"_stars_jax_config_{path.stem}_{len(_MODULES)}", path)
    module = importlib.util.module_from_spec(spec)
    _MODULES[path] = module
    sys.modules[spec.name] = module  # dataclasses and pickling look a module up by name
    try:
      spec.loader.exec_module(module)
    except BaseException:
      del _MODULES[path], sys.modules[spec.name]
      raise
  return _MODULES[path]
