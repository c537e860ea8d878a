"""Everything a job's later stages will read, checked before its first step (callable by any orchestrator):
the data settings, both splits (present, non-empty, finite, not all zero, seen clips left after the held-out
classes), the held-out classes in both splits, and which evaluation protocols the splits are too small for
(logged now; the evaluation skips them with the reason instead of crashing after training)."""

import logging

import ml_collections

from stars_jax.data import npz, sources, validate
from stars_jax.evaluate import protocols


def check_inputs(config: ml_collections.ConfigDict) -> dict[str, str]:
  """Raises BadConfig / BadInput (naming the key, or the file and sample) for a job config whose data cannot be
  trained or evaluated on; returns {protocol: why it will be skipped}. A pipeline checks each step's job config
  in its plan."""
  if config.job == "pipeline":
    return {}
  data = config.data
  validate.check_data_config(data, config.model.t_patch)
  train, test = (sources.open_split(data, split) for split in npz.SPLITS)  # a missing file: FileNotFoundError
  held_out = tuple(data.held_out_classes)
  for split in (train, test):
    validate.check_content(split)
  validate.check_classes(train, test, held_out)
  for split in npz.SPLITS:
    sources.open_seen_split(data, split)  # raises naming the file when only held-out classes are left
  skip = protocols.skipped_protocols(train.labels, test.labels, held_out)
  evaluates = config.get("evaluate", {}).get("enabled", False) or config.job in ("evaluate", "probe")
  for protocol, why in skip.items() if evaluates else ():
    logging.warning("The %s protocol will be skipped: %s", protocol, why)
  return skip
