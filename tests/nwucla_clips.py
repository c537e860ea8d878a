"""Generated clips in the NW-UCLA JSON release format, for the tests that run the real-data path."""

import json
import pathlib

import numpy as np

from stars_jax.data_prep import nwucla


def write_nwucla_clips(folder: pathlib.Path, subjects: int = 2, seed: int = 0) -> pathlib.Path:
  """Generated clips in the NW-UCLA JSON release format (folder/all_sqe/aAA_sSS_eEE_vVV.json, Kinect v1 joints in
  metres): each of the 10 actions swings its own joint, for every subject and view 1-3, 12 to 40 frames long."""
  rng = np.random.default_rng(seed)
  clips = folder / "all_sqe"
  clips.mkdir(parents=True)
  pose = np.stack([np.zeros(20), np.linspace(1.0, -0.9, 20), np.full(20, 3.0)], axis=1)  # (20, 3) a standing line
  for label, action in enumerate(nwucla.ACTION_IDS):
    for subject in range(1, subjects + 1):
      for view in nwucla.VIEWS:
        frames = int(rng.integers(12, 41))
        t = np.arange(frames)[:, None]
        joints = np.repeat(pose[None], frames, axis=0) + rng.normal(scale=0.01, size=(frames, 20, 3))
        joints[:, 4 + label % 16, 0] += 0.3 * np.sin(t[:, 0] / (2 + label % 3))  # the action's own joint
        name = f"a{action:02d}_s{subject:02d}_e00_v{view:02d}"
        payload = {"file_name": name, "skeletons": joints.tolist(), "label": label + 1}
        (clips / f"{name}.json").write_text(json.dumps(payload))
  return folder
