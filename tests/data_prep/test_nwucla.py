"""NW-UCLA (CTR-GCN JSON release) and Kinect recordings to the official npz layout, on generated clips.

Every coordinate is a multiple of 1/64 of modest size, so the float64 -> float32 cast and the centring subtraction
are exact and the tests compare with `assert_array_equal`.
"""

import csv
import json

import numpy as np
import pytest
from recipe_files import common

from stars_jax.data import npz
from stars_jax.data.class_names import class_names
from stars_jax.data_prep import cli, kinect, nwucla, recordings


def _v1_clip(frames: int, action: int = 0) -> np.ndarray:
  """(T, 20, 3) Kinect v1 joints: joint j at x = j/64 + t/64, y = j/32, z = 3 + action/64."""
  t = np.arange(frames)[:, None]
  j = np.arange(20)[None, :]
  return np.stack(
    [j / 64 + t / 64, np.broadcast_to(j / 32, (frames, 20)), np.full((frames, 20), 3 + action / 64)], -1
  )  # (T, 20, 3)


def _write_clip(folder, name: str, skeletons, label=None) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  payload = {"file_name": name, "skeletons": np.asarray(skeletons).tolist()}
  if label is not None:
    payload["label"] = label
  (folder / f"{name}.json").write_text(json.dumps(payload))


@pytest.fixture
def raw(tmp_path):
  """Seven clips under a nested folder: views 1-3, actions a01, a05, a12; one too short, one unreadable."""
  folder = tmp_path / "NW-UCLA" / "all_sqe"
  _write_clip(folder, "a01_s01_e00_v01", _v1_clip(12), label=1)
  _write_clip(folder, "a05_s02_e01_v02", _v1_clip(20, 5), label=5)
  _write_clip(folder, "a12_s03_e00_v03", _v1_clip(9, 12), label=10)
  _write_clip(folder, "a12_s01_e02_v01", _v1_clip(30, 12))  # no label key: the name's action is the label
  _write_clip(folder, "a01_s04_e00_v03", _v1_clip(5), label=1)  # too short
  (folder / "a05_s05_e00_v01.json").write_text('{"skeletons": [[[0, 0')  # truncated JSON
  (folder / "readme.json").write_text("{}")  # not a clip name: ignored
  return tmp_path / "NW-UCLA"


def _prepare(raw, out, *extra) -> int:
  return cli.main(["nwucla", "--raw", str(raw), "--out", str(out), "--workers", "1", "--no-progress", *extra])


def test_joint_map_of_a_kinect_v1_skeleton():
  """NTU joints 1-20 are the v1 joints in place; 21 (spine shoulder) and 3 (neck) the shoulder centre; the hand
  tips and thumbs the hands (v1 8 left, 12 right)."""
  v1 = np.arange(20, dtype=np.float64)[None, :, None] * np.ones((1, 1, 3))  # joint j holds j (0-based)
  ntu = kinect.to_ntu_joints(v1)[0, 0, :, 0]  # (25,)
  assert ntu[:20].tolist() == list(range(20))
  assert (ntu[20], ntu[21], ntu[22], ntu[23], ntu[24]) == (2, 7, 7, 11, 11)
  assert ntu[2] == 2  # neck
  v2 = np.random.default_rng(0).normal(size=(4, 2, 25, 3))  # already NTU: unchanged
  np.testing.assert_array_equal(kinect.to_ntu_joints(v2), v2)
  for bad in (np.zeros((4, 19, 3)), np.zeros((4, 20, 2)), np.zeros((4, 3, 20, 3))):
    with pytest.raises(kinect.KinectFormatError, match="shape|persons"):
      kinect.to_ntu_joints(bad)


def test_sequence_is_centred_on_the_first_frame_spine_middle_with_a_zero_second_person():
  clip = _v1_clip(6)
  sequence = kinect.to_ntu_sequence(clip)  # (6, 150)
  assert sequence.shape == (6, 150) and sequence.dtype == np.float32
  joints = sequence.reshape(6, 2, 25, 3)
  np.testing.assert_array_equal(joints[0, 0, 1], 0.0)  # spine middle of frame 0 is the origin
  np.testing.assert_array_equal(joints[:, 0, :20], clip - clip[0, 1])  # v1 joint 2 (spine) = NTU spine middle
  np.testing.assert_array_equal(joints[:, 0, 20], clip[:, 2] - clip[0, 1])  # spine shoulder = shoulder centre
  np.testing.assert_array_equal(joints[:, 1], 0.0)


def test_prepare_nwucla_layout_splits_labels_and_log(raw, tmp_path):
  out = tmp_path / "out"
  assert _prepare(raw, out) == 0
  train, test = npz.open_split(out / "NWUCLA_XView.npz", "train"), npz.open_split(out / "NWUCLA_XView.npz", "test")
  assert train.x.shape == (3, 300, 150) and test.x.shape == (1, 300, 150) and train.num_classes == 10
  # Name order within a split; views 1 and 2 train, view 3 tests.
  assert train.labels.tolist() == [0, 4, 9]  # a01_s01 (v1), a05_s02 (v2), a12_s01 (v1)
  assert test.labels.tolist() == [9]  # a12_s03 (v3); a01_s04_e00_v03 is too short
  expected = kinect.to_ntu_sequence(_v1_clip(20, 5))
  np.testing.assert_array_equal(train.x[1, :20], expected)
  np.testing.assert_array_equal(train.x[1, 20:], 0.0)  # zero-padded after the clip
  log = json.loads((out / "nwucla_prepare_log.json").read_text())
  assert log["files"] == {"NWUCLA_XView.npz": {"train": 3, "test": 1}}
  assert log["skipped"]["a01_s04_e00_v03"].startswith("too short: 5 frame(s)")
  assert log["skipped"]["a05_s05_e00_v01"].startswith("unreadable")
  names = class_names(common.data(str(out / "NWUCLA_XView.npz")), 10)
  assert names == nwucla.CLASS_NAMES and names[4] == "sit down" and names[9] == "carry"


def test_label_disagreeing_with_the_name_stops_the_run_naming_the_file(raw, tmp_path, capsys):
  _write_clip(raw / "all_sqe", "a03_s01_e00_v01", _v1_clip(12), label=7)  # a03 is label 3
  out = tmp_path / "out"
  assert _prepare(raw, out) == 2
  assert "a03_s01_e00_v01.json: label 7 disagrees with action a03" in capsys.readouterr().err
  assert not (out / "NWUCLA_XView.npz").exists()


def test_clip_names_outside_the_dataset_are_refused(raw, tmp_path, capsys):
  _write_clip(raw / "all_sqe", "a07_s01_e00_v01", _v1_clip(12))  # action 7 is not in NW-UCLA
  assert _prepare(raw, tmp_path / "out") == 2
  assert "a07_s01_e00_v01" in capsys.readouterr().err


def test_non_finite_and_empty_frames(raw, tmp_path):
  clip = _v1_clip(12)
  clip[3] = 0.0  # a frame without a skeleton: dropped
  _write_clip(raw / "all_sqe", "a02_s01_e00_v02", clip, label=2)
  clip = _v1_clip(12)
  clip[5, 4, 0] = 1e39  # finite in float64, inf in float32
  _write_clip(raw / "all_sqe", "a02_s02_e00_v02", clip, label=2)
  out = tmp_path / "out"
  assert _prepare(raw, out, "--min-frames", "10", "--allow-empty-split") == 0  # the one test clip is too short
  log = json.loads((out / "nwucla_prepare_log.json").read_text())
  assert log["empty_splits"] == ["NWUCLA_XView.npz test"]
  assert log["skipped"]["a02_s02_e00_v02"].startswith("non-finite")
  assert log["events"]["a02_s01_e00_v02"] == {"empty_frames_dropped": 1}
  train = npz.open_split(out / "NWUCLA_XView.npz", "train")
  assert train.labels.tolist() == [0, 1, 4, 9]
  np.testing.assert_array_equal(train.x[1, :11], kinect.to_ntu_sequence(np.delete(_v1_clip(12), 3, axis=0)))
  assert "a12_s03_e00_v03" in log["skipped"]  # 9 frames < --min-frames 10


def _recording_folder(tmp_path, rows, classes=None):
  folder = tmp_path / "lab"
  folder.mkdir()
  with open(folder / "index.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["file", "label", "split"])
    writer.writerows(rows)
  if classes is not None:
    (folder / "classes.txt").write_text("\n".join(classes) + "\n")
  return folder


def test_kinect_command_reads_v1_and_v2_arrays_and_json(tmp_path):
  v2 = np.random.default_rng(1).integers(-64, 64, size=(15, 2, 25, 3)) / 64  # two persons, Kinect v2
  folder = _recording_folder(
    tmp_path, [["b.npy", 1, "train"], ["a.json", 0, "test"], ["c.npy", 2, "train"]], ["wave", "sit", "jump"]
  )
  np.save(folder / "b.npy", v2)
  _write_clip(folder, "a", _v1_clip(10))
  np.save(folder / "c.npy", _v1_clip(3))  # too short
  out = tmp_path / "out"
  argv = ["kinect", "--raw", str(folder), "--out", str(out), "--name", "Lab", "--workers", "1", "--no-progress"]
  assert cli.main(argv) == 0
  train, test = npz.open_split(out / "Lab.npz", "train"), npz.open_split(out / "Lab.npz", "test")
  assert train.labels.tolist() == [1] and test.labels.tolist() == [0] and train.num_classes == 3
  np.testing.assert_array_equal(train.x[0, :15], kinect.to_ntu_sequence(v2))
  np.testing.assert_array_equal(test.x[0, :10], kinect.to_ntu_sequence(_v1_clip(10)))
  assert class_names(common.data(str(out / "Lab.npz")), 3) == ("wave", "sit", "jump")
  assert "c.npy" in json.loads((out / "Lab_prepare_log.json").read_text())["skipped"]


@pytest.mark.parametrize(
  "rows, message",
  [
    ([["a.npy", 3, "train"]], "label 3 outside 0..1"),
    ([["a.npy", "x", "train"]], "index.csv:2: label 'x' is not an integer"),
    ([["a.npy", 0, "val"]], "index.csv:2: split 'val'"),
    ([["a.npy", 0, "train"], ["a.npy", 1, "test"]], "index.csv:3: file 'a.npy' is empty or listed twice"),
  ],
)
def test_kinect_index_errors_name_the_row(tmp_path, capsys, rows, message):
  folder = _recording_folder(tmp_path, rows, ["wave", "sit"])
  assert cli.main(["kinect", "--raw", str(folder), "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
  assert message in capsys.readouterr().err


def test_prepare_recordings_from_memory(tmp_path):
  items = [
    recordings.Recording("one", _v1_clip(9), 0, "train"),
    recordings.Recording("two", _v1_clip(11, 3)[:, None], 1, "test"),  # (T, 1, 20, 3)
  ]
  log = recordings.prepare_recordings(items, tmp_path, "Mine.npz", ("a", "b"), max_frames=16)
  assert log["files"] == {"Mine.npz": {"train": 1, "test": 1}}
  test = npz.open_split(tmp_path / "Mine.npz", "test")
  assert test.x.shape == (1, 16, 150)
  np.testing.assert_array_equal(test.x[0, :11], kinect.to_ntu_sequence(_v1_clip(11, 3)))
  with pytest.raises(recordings.prepare.PrepareError, match="label 2 outside"):
    recordings.prepare_recordings([recordings.Recording("x", _v1_clip(9), 2, "train")], tmp_path, "B.npz", ("a",))
