"""Metric writing (TensorBoard event files) and the console progress bar; only process 0 writes."""

import pathlib
from collections.abc import Mapping

import jax
import tqdm
from tensorboardX import SummaryWriter


class MetricWriter:
  """Scalars to TensorBoard event files under `logdir`; a no-op on processes other than 0."""

  def __init__(self, logdir: str | pathlib.Path):
    self._writer = SummaryWriter(str(logdir)) if jax.process_index() == 0 else None

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if self._writer is not None:
      for name, value in scalars.items():
        self._writer.add_scalar(name, float(value), step)
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


def progress_bar(total: int, initial: int, desc: str) -> tqdm.tqdm:
  """Steps bar with ETA; loss, learning rate and clips/s are set as postfix at each log step."""
  return tqdm.tqdm(
    total=total,
    initial=initial,
    desc=desc,
    unit="step",
    dynamic_ncols=True,
    disable=jax.process_index() != 0,
    mininterval=1.0,
  )
