"""Raw-file fixtures for the data_prep tests, written in the exact NTU / PKU-MMD formats."""

import pathlib

import numpy as np

from stars_jax.data_prep.ntu_skeleton import format_skeleton

JOINTS = np.arange(25, dtype=np.float64)


def tall(t: float = 0.0, shift: float = 0.0) -> np.ndarray:
  """A valid body (x-extent 0.48 <= 0.8 * y-extent 2.4) translated by `shift` metres in x per frame t.
  Values are multiples of 1/64 so they survive the text format and float32 exactly."""
  return np.stack([0.015625 * JOINTS + shift * t, 0.09375 * JOINTS, np.full(25, 3.0)], axis=1)  # (25, 3)


def wide(t: float = 0.0, shift: float = 0.0) -> np.ndarray:
  """A spread-noise body: x-extent 2.4 > 0.8 * y-extent 0.48."""
  return np.stack([0.09375 * JOINTS + shift * t, 0.015625 * JOINTS, np.full(25, 2.0)], axis=1)  # (25, 3)


def write_ntu(folder: pathlib.Path, name: str, frames: list[list[tuple[str, np.ndarray]]]) -> pathlib.Path:
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / f"{name}.skeleton"
  path.write_text(format_skeleton(frames))
  return path


def single(n: int, shift: float = 0.25, body_id: str = "72057594037931101") -> list:
  """n frames of one moving tall body."""
  return [[(body_id, tall(t, shift))] for t in range(n)]


def write_pku(folder: pathlib.Path, video: str, skeleton: np.ndarray, labels: list[str]) -> None:
  """skeleton/<video>.txt (F, 150) and label/<video>.txt rows."""
  (folder / "skeleton").mkdir(parents=True, exist_ok=True)
  (folder / "label").mkdir(parents=True, exist_ok=True)
  (folder / "skeleton" / f"{video}.txt").write_text(
    "\n".join(" ".join(f"{v:.6g}" for v in row) for row in skeleton) + "\n"
  )
  (folder / "label" / f"{video}.txt").write_text("\n".join(labels) + "\n")


def write_pku_split(folder: pathlib.Path, file_name: str, train: list[str], test: list[str]) -> None:
  """The official split-file layout: a title line, the training list, a title line, the test list."""
  folder.mkdir(parents=True, exist_ok=True)
  (folder / file_name).write_text(f"Training videos: \n{', '.join(train)}\nValidataion videos: \n{', '.join(test)}\n")
