"""Kinect skeletons of any origin (v1 20-joint, v2 25-joint) into the NTU layout the configs read.

The model and the feeder expect NTU RGB+D's Kinect v2 joints (25, SPEC §1.1). A Kinect v1 skeleton (NW-UCLA,
MSR Daily Activity, a lab's own recordings) has 20 joints in the same order for the first 20; the five joints
v2 added are taken from their nearest v1 joint: the shoulder centre gives both the neck (3) and the
spine-shoulder (21), each hand its hand tip and thumb. `V1_TO_NTU` is that table, the one place it is written.
"""

import numpy as np

from stars_jax import errors
from stars_jax.data_prep import ntu_transform

NTU_JOINTS = 25
KINECT_V1_JOINTS = 20
# Kinect v1 (1-based): 1 hip centre, 2 spine, 3 shoulder centre, 4 head, 5-8 left shoulder/elbow/wrist/hand,
# 9-12 the right ones, 13-16 left hip/knee/ankle/foot, 17-20 the right ones.
# NTU joint j (1-based) <- Kinect v1 joint V1_TO_NTU[j - 1] (1-based).
V1_TO_NTU = (
  1,  # 1 spine base <- hip centre
  2,  # 2 spine middle <- spine
  3,  # 3 neck <- shoulder centre
  4,  # 4 head
  5, 6, 7, 8,  # 5-8 left shoulder, elbow, wrist, hand
  9, 10, 11, 12,  # 9-12 right shoulder, elbow, wrist, hand
  13, 14, 15, 16,  # 13-16 left hip, knee, ankle, foot
  17, 18, 19, 20,  # 17-20 right hip, knee, ankle, foot
  3,  # 21 spine shoulder <- shoulder centre
  8, 8,  # 22 left hand tip, 23 left thumb <- left hand
  12, 12,  # 24 right hand tip, 25 right thumb <- right hand
)  # fmt: skip
_V1_INDEX = np.array(V1_TO_NTU, np.int64) - 1  # (25,) 0-based
MAX_PERSONS = 2


class KinectFormatError(errors.BadInput, ValueError):
  """A sequence is not a Kinect skeleton of a supported shape; the message names it."""


def to_ntu_joints(joints: np.ndarray) -> np.ndarray:
  """(T, [P,] J, 3) with J 20 (Kinect v1) or 25 (Kinect v2 / NTU) -> (T, P, 25, 3) float64 in NTU order."""
  joints = np.asarray(joints, np.float64)
  if joints.ndim == 3:
    joints = joints[:, None]  # (T, 1, J, 3)
  if joints.ndim != 4 or joints.shape[-1] != 3 or joints.shape[-2] not in (KINECT_V1_JOINTS, NTU_JOINTS):
    raise KinectFormatError(
      f"shape {joints.shape}; expected (frames, [persons,] joints, 3) with 20 (Kinect v1) or 25 (Kinect v2) joints"
    )
  if not 1 <= joints.shape[1] <= MAX_PERSONS:
    raise KinectFormatError(f"{joints.shape[1]} persons; the NTU layout holds 1 or {MAX_PERSONS}")
  if joints.shape[-2] == KINECT_V1_JOINTS:
    joints = joints[:, :, _V1_INDEX]  # (T, P, 25, 3)
  return joints


def to_ntu_sequence(joints: np.ndarray, second_person: str = "zeros") -> np.ndarray:
  """A Kinect sequence (T, [P,] J, 3), metres, into its unpadded NTU form (T, 150) float32: 25 joints, centred on
  actor 1's spine-middle at its first non-zero frame, a lone actor's second slot zero (or a copy of it)."""
  joints = to_ntu_joints(joints)  # (T, P, 25, 3)
  frames, persons = joints.shape[:2]
  flat = joints.reshape(frames, persons * NTU_JOINTS * 3)  # (T, 75 P), person-major as the npz is
  return ntu_transform.transform(flat, second_person)
