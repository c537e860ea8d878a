"""The `.skeleton` parser: structure, compaction of empty frames, body tracks, and its error messages."""

import numpy as np
import pytest
from prep_fixtures import tall, wide, write_ntu

from stars_jax.data_prep.ntu_skeleton import (
  NoSkeletonError,
  SkeletonFormatError,
  format_skeleton,
  parse_name,
  parse_skeleton,
  read_skeleton,
)


def test_parse_compacts_empty_frames_and_tracks_bodies(tmp_path):
  # file frames: 0 empty, 1 A, 2 A+B, 3 empty, 4 B   ->   compacted frames 0 A, 1 A+B, 2 B
  frames = [[], [("1", tall(0))], [("1", tall(1)), ("2", wide(1))], [], [("2", wide(2))]]
  raw = read_skeleton(write_ntu(tmp_path, "S001C002P003R002A013", frames))
  assert raw.name == "S001C002P003R002A013"
  assert raw.num_frames == 3 and raw.dropped_frames == (0, 3)
  assert [b.body_id for b in raw.bodies] == ["1", "2"]
  a, b = raw.bodies
  assert a.frames == (0, 1) and b.frames == (1, 2)
  assert a.joints.shape == (2, 25, 3) and a.joints.dtype == np.float32
  np.testing.assert_array_equal(a.joints[1], tall(1))
  np.testing.assert_array_equal(b.joints[1], wide(2))
  np.testing.assert_array_equal(a.colors[0, 0], np.float32([1036.233, 519.1677]))
  assert parse_name(raw.name) == dict(setup=1, camera=2, performer=3, replication=2, action=13)


def test_no_body_in_any_frame_is_no_skeleton(tmp_path):
  with pytest.raises(NoSkeletonError, match="none of its 2 frames has a body"):
    read_skeleton(write_ntu(tmp_path, "S001C001P001R001A001", [[], []]))
  (tmp_path / "S001C001P001R001A002.skeleton").write_text("")
  with pytest.raises(NoSkeletonError, match="empty file"):
    read_skeleton(tmp_path / "S001C001P001R001A002.skeleton")


def _corrupt(line_index: int, replacement: str | None) -> str:
  lines = format_skeleton([[("7", tall(0))], [("7", tall(1))]]).splitlines()
  if replacement is None:
    del lines[line_index:]
  else:
    lines[line_index] = replacement
  return "\n".join(lines) + "\n"


# Layout: line 1 frame count, 2 body count, 3 body info, 4 joint count, 5-29 joints, 30 body count of frame 1.
@pytest.mark.parametrize(
  "line, replacement, message",
  [
    (40, None, r"f.skeleton:41: file ends early \(truncated\?\): expected 25 joint lines of frame 1, body 0"),
    (8, "0.1 0.2 abc 1 1 1 1 1 1 1 1 2", r"f.skeleton:9: non-numeric or non-finite value 'abc'"),
    (8, "0.1 0.2 nan 1 1 1 1 1 1 1 1 2", r"f.skeleton:9: non-numeric or non-finite value 'nan'"),
    (8, "0.1 0.2 0.3", r"f.skeleton:9: expected 12 numbers \(joints of frame 0, body 0\), got 3"),
    (3, "24", r"f.skeleton:4: frame 0, body 0 has 24 joints; expected 25"),
    (1, "x", r"f.skeleton:2: expected the body count of frame 0 \(a non-negative integer\), got 'x'"),
    (2, "7 0 1 1 1 1 0 0.01 -0.16", r"f.skeleton:3: expected 10 numbers \(body info of frame 0, body 0\)"),
    (2, "7a 0 1 1 1 1 0 0.01 -0.16 2", r"f.skeleton:3: non-numeric or non-finite value '7a'"),
    (0, "3", r"f.skeleton:58: file ends early \(truncated\?\): expected the body count of frame 2"),
  ],
)
def test_corrupt_files_name_file_and_line(line, replacement, message):
  with pytest.raises(SkeletonFormatError, match=message):
    parse_skeleton(_corrupt(line, replacement), "f.skeleton")


def test_trailing_content_and_repeated_body_are_rejected():
  text = format_skeleton([[("7", tall(0))]])
  with pytest.raises(SkeletonFormatError, match=r"f.skeleton:30: unexpected content after the 1 declared"):
    parse_skeleton(text + "1\n", "f.skeleton")
  with pytest.raises(SkeletonFormatError, match=r"f.skeleton:30: body id 7 appears twice in frame 0"):
    parse_skeleton(format_skeleton([[("7", tall(0)), ("7", tall(1))]]), "f.skeleton")
