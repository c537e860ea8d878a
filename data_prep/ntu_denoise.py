"""Denoising and actor selection of NTU sequences (SPEC §1.3), as pure functions of parsed bodies.

Official quirks kept by default (SPEC §7.22), each behind an option of `DenoiseOptions`:
* `interval='official'`: a body is laid on consecutive frames from its first appearance, so a body that
  vanishes and returns is shifted earlier ('true' uses the frames it actually appears in);
* `touching_overlaps=False`: two bodies whose intervals share only their boundary frame do not overlap
  (the later one overwrites that frame); True treats a shared frame as an overlap.
"""

import dataclasses

import numpy as np

from stars_jax.data_prep.ntu_skeleton import NUM_JOINTS, BodyTrack, RawSkeleton

NOISE_LEN_THRES = 11  # bodies seen in <= this many frames are noise
NOISE_SPR_THRES1 = 0.8  # a frame is valid if x-spread <= this * y-spread
NOISE_SPR_THRES2 = 0.69754  # bodies with at least this fraction of invalid frames are noise
PERSON_WIDTH = NUM_JOINTS * 3  # 75 values per person and frame: (joint, xyz)
INTERVALS = ("official", "true")


class DenoiseError(ValueError):
  """No body of a multi-body sample survives denoising."""


@dataclasses.dataclass(frozen=True)
class DenoiseOptions:
  interval: str = "official"  # 'official' | 'true' (see the module docstring)
  touching_overlaps: bool = False

  def __post_init__(self):
    if self.interval not in INTERVALS:
      raise ValueError(f"interval must be one of {INTERVALS}, got {self.interval!r}")


@dataclasses.dataclass
class DenoiseReport:
  """What denoising did to one sample (for the preparation log)."""

  bodies: int = 0
  dropped_by_length: list[str] = dataclasses.field(default_factory=list)
  dropped_by_spread: list[str] = dataclasses.field(default_factory=list)
  discarded_overlapping: list[str] = dataclasses.field(default_factory=list)
  actors: int = 1
  missing_frames_removed: int = 0


def body_motion(joints: np.ndarray) -> np.float32:
  """Sum over x, y, z of the variance of all joint positions of a body. joints: (n, 25, 3)."""
  return np.var(joints.reshape(-1, 3), axis=0).sum()


def spread_valid(joints: np.ndarray) -> np.ndarray:
  """(n,) bool: frames whose x-extent is at most 0.8 times their y-extent. joints: (n, 25, 3)."""
  x, y = joints[..., 0], joints[..., 1]  # (n, 25)
  return (x.max(axis=1) - x.min(axis=1)) <= NOISE_SPR_THRES1 * (y.max(axis=1) - y.min(axis=1))


def body_frames(body: BodyTrack, options: DenoiseOptions) -> np.ndarray:
  """Compacted frame index of each appearance under the chosen interval rule. (n,) int."""
  if options.interval == "official":
    return body.frames[0] + np.arange(len(body.frames))
  return np.asarray(body.frames)


def overlaps(a: tuple[int, int], b: tuple[int, int], touching_overlaps: bool) -> bool:
  """Whether inclusive intervals a and b overlap (officially, sharing one end frame is no overlap)."""
  common = min(a[1], b[1]) - max(a[0], b[0])
  return common >= 0 if touching_overlaps else common > 0


def filter_by_length(bodies: list[BodyTrack]) -> tuple[list[BodyTrack], list[str]]:
  """Drop bodies seen in at most NOISE_LEN_THRES frames: (kept, dropped ids)."""
  kept = [b for b in bodies if len(b.frames) > NOISE_LEN_THRES]
  return kept, [b.body_id for b in bodies if len(b.frames) <= NOISE_LEN_THRES]


def filter_by_spread(bodies: list[BodyTrack], motion: dict[str, np.float32]) -> tuple[list[BodyTrack], list[str]]:
  """Drop bodies with too many wide-rather-than-tall frames while more than one body remains.

  A kept body with some invalid frames gets motion = min(motion, motion over its valid frames)
  (`motion` is updated in place). Returns (kept, dropped ids).
  """
  kept, dropped = list(bodies), []
  for body in bodies:
    if len(kept) == 1:
      break
    valid = spread_valid(body.joints)
    if (~valid).sum() / len(valid) >= NOISE_SPR_THRES2:
      kept.remove(body)
      dropped.append(body.body_id)
    elif not valid.all():
      motion[body.body_id] = min(motion[body.body_id], body_motion(body.joints[valid]))
  return kept, dropped


def remove_missing_frames(joints: np.ndarray) -> tuple[np.ndarray, int]:
  """Drop frames whose values sum to zero (the official test). joints: (T, W) -> (T', W), removed."""
  keep = joints.sum(axis=1) != 0
  return joints[keep], int((~keep).sum())


def _lay(out: np.ndarray, body: BodyTrack, person: int, options: DenoiseOptions) -> tuple[int, int]:
  """Write a body into person slot `person` of out (T, 75 or 150); returns its (first, last) frame."""
  frames = body_frames(body, options)
  cols = slice(person * PERSON_WIDTH, (person + 1) * PERSON_WIDTH)
  out[frames, cols] = body.joints.reshape(len(frames), PERSON_WIDTH)
  return int(frames[0]), int(frames[-1])


def assemble_actors(
  bodies: list[BodyTrack], num_frames: int, options: DenoiseOptions, report: DenoiseReport
) -> np.ndarray:
  """Bodies (sorted by motion, descending) into a (T, 75) or (T, 150) sequence (SPEC §1.3 steps 4-5)."""
  if len(bodies) == 1:
    out = np.zeros((num_frames, PERSON_WIDTH), np.float32)
    _lay(out, bodies[0], 0, options)
    return out
  out = np.zeros((num_frames, 2 * PERSON_WIDTH), np.float32)
  actor1 = _lay(out, bodies[0], 0, options)
  actor2 = (0, 0)
  for body in bodies[1:]:
    frames = body_frames(body, options)
    span = (int(frames[0]), int(frames[-1]))
    if not overlaps(actor1, span, options.touching_overlaps):
      _lay(out, body, 0, options)
      actor1 = (min(actor1[0], span[0]), max(actor1[1], span[1]))
    elif not overlaps(actor2, span, options.touching_overlaps):
      _lay(out, body, 1, options)
      actor2 = (min(actor2[0], span[0]), max(actor2[1], span[1]))
    else:
      report.discarded_overlapping.append(body.body_id)
  return out


def denoise(skeleton: RawSkeleton, options: DenoiseOptions = DenoiseOptions()) -> tuple[np.ndarray, DenoiseReport]:
  """Joints (T, 75) for one actor or (T, 150) for two, per SPEC §1.3, plus what was done."""
  bodies = list(skeleton.bodies)
  report = DenoiseReport(bodies=len(bodies))
  if len(bodies) == 1:  # single body: as is, no missing-frame removal
    return assemble_actors(bodies, skeleton.num_frames, options, report), report
  motion = {b.body_id: body_motion(b.joints) for b in bodies}
  bodies, report.dropped_by_length = filter_by_length(bodies)
  if not bodies:
    raise DenoiseError(f"{skeleton.name}: every body is shorter than {NOISE_LEN_THRES + 1} frames")
  if len(bodies) > 1:
    bodies, report.dropped_by_spread = filter_by_spread(bodies, motion)
  bodies.sort(key=lambda b: motion[b.body_id], reverse=True)  # stable: ties keep first-appearance order
  joints = assemble_actors(bodies, skeleton.num_frames, options, report)
  report.actors = joints.shape[1] // PERSON_WIDTH
  joints, report.missing_frames_removed = remove_missing_frames(joints)
  return joints, report
