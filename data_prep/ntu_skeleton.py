"""Strict reader of NTU RGB+D `.skeleton` text files (SPEC §1.1, step 1 of §1.2).

Frames with no body are dropped and the remaining frames are renumbered 0.. (time is compacted, as in
the official reader); each body id keeps the compacted index of every frame it appears in.
"""

import dataclasses
import math
import pathlib
import re

import numpy as np

from stars_jax import errors

NUM_JOINTS = 25
BODY_INFO_FIELDS = 10  # bodyID, clipedEdges, hand states and confidences, isRestricted, lean, trackingState
JOINT_FIELDS = 12  # x y z depthX depthY colorX colorY orientation(wxyz) trackingState
XYZ = slice(0, 3)
COLOR_XY = slice(5, 7)
NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
NAME_FIELDS = ("setup", "camera", "performer", "replication", "action")


class SkeletonFormatError(errors.BadInput, ValueError):
  """A `.skeleton` file is malformed; the message names the file and the line."""


class NoSkeletonError(ValueError):
  """The file holds no body in any frame (the dataset's 'missing skeleton' samples)."""


@dataclasses.dataclass(frozen=True)
class BodyTrack:
  """Everything one body id contributes to a sequence."""

  body_id: str
  joints: np.ndarray  # (n, 25, 3) float32, camera space x y z in metres
  colors: np.ndarray  # (n, 25, 2) float32, colour-image x y (logging only)
  frames: tuple[int, ...]  # compacted frame index of each of the n appearances, increasing


@dataclasses.dataclass(frozen=True)
class RawSkeleton:
  """One parsed file: bodies in order of first appearance, over `num_frames` non-empty frames."""

  name: str
  num_frames: int  # frames with at least one body
  bodies: tuple[BodyTrack, ...]
  dropped_frames: tuple[int, ...]  # 0-based file frame indices that had no body


def parse_name(name: str) -> dict[str, int]:
  """{'setup', 'camera', 'performer', 'replication', 'action'} of a name like S001C002P003R002A013."""
  match = NAME_RE.fullmatch(name)
  if match is None:
    raise ValueError(f"{name!r} is not an NTU sample name (SsssCcccPpppRrrrAaaa)")
  return dict(zip(NAME_FIELDS, map(int, match.groups())))


class _Lines:
  """Cursor over the lines of one file that reports errors as `file:line: message`."""

  def __init__(self, text: str, source: str):
    self.lines = text.splitlines()
    self.source = source
    self.pos = 0

  def error(self, line_index: int, message: str) -> SkeletonFormatError:
    return SkeletonFormatError(f"{self.source}:{line_index + 1}: {message}")

  def _take(self, count: int, what: str) -> list[str]:
    if self.pos + count > len(self.lines):
      raise self.error(len(self.lines), f"file ends early (truncated?): expected {what}")
    lines = self.lines[self.pos : self.pos + count]
    self.pos += count
    return lines

  def count(self, what: str) -> int:
    (line,) = self._take(1, what)
    token = line.strip()
    if not token.isdigit():
      raise self.error(self.pos - 1, f"expected {what} (a non-negative integer), got {line.strip()!r}")
    return int(token)

  def skip(self, count: int, what: str) -> int:
    """Step over `count` lines; returns the index of the first."""
    start = self.pos
    self._take(count, what)
    return start

  def numbers(self, start: int, rows: int, width: int, what: str) -> tuple[list[str], np.ndarray]:
    """Lines start.. of exactly `width` finite numbers: (first token of each, (rows, width) float64)."""
    tokens = [line.split() for line in self.lines[start : start + rows]]
    for i, row in enumerate(tokens):
      if len(row) != width:
        raise self.error(start + i, f"expected {width} numbers ({what}), got {len(row)}")
      for token in row:
        try:
          ok = math.isfinite(float(token))
        except ValueError:
          ok = False
        if not ok:
          raise self.error(start + i, f"non-numeric or non-finite value {token!r} ({what})")
    values = np.array(tokens, dtype=np.float64)  # (rows, width)
    return [row[0] for row in tokens], values

  def joint_blocks(self, starts: list[int], whats: list[str]) -> np.ndarray:
    """The (25, 12) joint blocks at `starts`, parsed at once: (len(starts), 25, 12) float64."""
    lines = [line for start in starts for line in self.lines[start : start + NUM_JOINTS]]
    try:
      values = np.loadtxt(lines, dtype=np.float64, comments=None, ndmin=2)  # C parser, fast
      if values.shape == (len(lines), JOINT_FIELDS) and np.isfinite(values).all():
        return values.reshape(len(starts), NUM_JOINTS, JOINT_FIELDS)
    except ValueError:
      pass
    for start, what in zip(starts, whats):  # find the offending line
      self.numbers(start, NUM_JOINTS, JOINT_FIELDS, f"joints of {what}")
    raise self.error(starts[0], "joint lines the fast parser rejected")  # numbers() normally names the line


def parse_skeleton(text: str, source: str) -> RawSkeleton:
  """Parse the text of one `.skeleton` file; `source` (a path) names it in errors."""
  name = pathlib.Path(source).name.split(".")[0]
  lines = _Lines(text, source)
  if not lines.lines:
    raise NoSkeletonError(f"{source}: empty file")
  num_file_frames = lines.count("the frame count")
  owners: list[tuple[str, int]] = []  # (body id, compacted frame) of each joint block
  starts, whats, dropped = [], [], []
  valid = 0
  for frame in range(num_file_frames):
    num_bodies = lines.count(f"the body count of frame {frame}")
    if num_bodies == 0:
      dropped.append(frame)
      continue
    seen = set()
    for body in range(num_bodies):
      what = f"frame {frame}, body {body}"
      (body_id,), _ = lines.numbers(lines.skip(1, f"body info of {what}"), 1, BODY_INFO_FIELDS, f"body info of {what}")
      if not body_id.isdigit():
        raise lines.error(lines.pos - 1, f"body id {body_id!r} of {what} is not an integer")
      if body_id in seen:
        raise lines.error(lines.pos - 1, f"body id {body_id} appears twice in frame {frame}")
      seen.add(body_id)
      joint_line = lines.pos
      num_joints = lines.count(f"the joint count of {what}")
      if num_joints != NUM_JOINTS:
        raise lines.error(joint_line, f"{what} has {num_joints} joints; expected {NUM_JOINTS}")
      starts.append(lines.skip(NUM_JOINTS, f"{NUM_JOINTS} joint lines of {what}"))
      whats.append(what)
      owners.append((body_id, valid))
    valid += 1
  for i in range(lines.pos, len(lines.lines)):
    if lines.lines[i].strip():
      raise lines.error(i, f"unexpected content after the {num_file_frames} declared frames")
  if valid == 0:
    raise NoSkeletonError(f"{source}: none of its {num_file_frames} frames has a body")
  with np.errstate(over="ignore"):  # beyond float32 becomes inf: refused after the cast (prepare.implausible)
    values = lines.joint_blocks(starts, whats).astype(np.float32)  # (blocks, 25, 12)
  rows: dict[str, list[int]] = {}
  for block, (body_id, _) in enumerate(owners):
    rows.setdefault(body_id, []).append(block)
  bodies = []
  for body_id, blocks in rows.items():
    body = values[blocks]  # (n, 25, 12)
    bodies.append(
      BodyTrack(
        body_id=body_id,
        joints=np.ascontiguousarray(body[..., XYZ]),
        colors=np.ascontiguousarray(body[..., COLOR_XY]),
        frames=tuple(owners[b][1] for b in blocks),
      )
    )
  return RawSkeleton(name=name, num_frames=valid, bodies=tuple(bodies), dropped_frames=tuple(dropped))


def read_skeleton(path: str | pathlib.Path) -> RawSkeleton:
  """Read and parse one `.skeleton` file."""
  path = pathlib.Path(path)
  try:
    text = path.read_text(encoding="ascii")
  except UnicodeDecodeError as e:
    raise SkeletonFormatError(f"{path}: not an ASCII text file ({e})") from e
  return parse_skeleton(text, str(path))


def format_skeleton(frames: list[list[tuple[str, np.ndarray]]]) -> str:
  """The `.skeleton` text of frames given as [(body id, joints (25, 3))] lists (tests, benchmarks)."""
  lines = [str(len(frames))]
  for bodies in frames:
    lines.append(str(len(bodies)))
    for body_id, joints in bodies:
      lines.append(f"{body_id} 0 1 1 1 1 0 0.01356283 -0.1651411 2")
      lines.append(str(len(joints)))
      for x, y, z in joints:
        lines.append(
          f"{x:.7g} {y:.7g} {z:.7g} 277.419 191.8218 1036.233 519.1677 -0.2059419 0.05396229 0.9725261 -0.09599993 2"
        )
  return "\n".join(lines) + "\n"
