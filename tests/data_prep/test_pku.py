"""PKU-MMD I / II (SPEC §1.5) from fixture skeleton, label and split files, with hand-worked samples."""

import json

import numpy as np
import pytest
from prep_fixtures import write_pku, write_pku_split

from stars_jax.data import npz
from stars_jax.data_prep import cli, pku


def _video(frames: int) -> np.ndarray:
  """Row r holds (r + 1) / 4 in its first column and (r + 0.5) / 4 in its last (metres within the plausibility
  bound, exact in the text format and float32); the rest zero."""
  out = np.zeros((frames, 150), np.float32)
  out[:, 0] = (np.arange(frames) + 1) / 4
  out[:, -1] = (np.arange(frames) + 0.5) / 4
  return out


@pytest.fixture
def raw(tmp_path):
  folder = tmp_path / "pku_v1"
  short = _video(10)
  short[7:] = 0  # an all-zero stretch
  write_pku(folder, "0291-M", _video(320), ["51,0,320,1"])  # sorts after 0002-L: listed first on purpose
  write_pku(folder, "0002-L", short, ["3,2,5,1", "5,4,4,2", "1,7,9,1", "2,0,3,3"])
  write_pku_split(folder / "Split", "cross-subject.txt", ["0002-L"], ["0291-M"])
  write_pku_split(folder / "Split", "cross-view.txt", ["0291-M"], ["0002-L"])
  return folder


def test_prepare_pku1(raw, tmp_path):
  out = tmp_path / "out"
  assert cli.main(["pku1", "--raw", str(raw), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
  train = npz.open_split(out / "PKUv1_XSub.npz", "train")
  assert train.num_classes == 51 and train.x.shape == (2, 300, 150)
  assert train.labels.tolist() == [2, 1]  # rows 1 and 4 of 0002-L; rows 2 (empty) and 3 (all zero) skipped
  expected = np.zeros((300, 150), np.float32)
  expected[:3] = _video(10)[2:5]  # [2, 5): end frame excluded
  np.testing.assert_array_equal(train.x[0], expected)
  expected = np.zeros((300, 150), np.float32)
  expected[:3] = _video(10)[0:3]
  np.testing.assert_array_equal(train.x[1], expected)
  test = npz.open_split(out / "PKUv1_XSub.npz", "test")
  assert test.labels.tolist() == [50]
  np.testing.assert_array_equal(test.x[0], _video(320)[:300])  # truncated to the first 300 frames
  assert npz.open_split(out / "PKUv1_XView.npz", "train").labels.tolist() == [50]
  log = json.loads((out / "pku1_prepare_log.json").read_text())
  assert log["events"] == {"0002-L": {"empty_instances": [1, 2]}, "0291-M": {"truncated_instances": [0]}}


def test_end_inclusive_option(raw):
  rows = pku.read_labels(raw / "label" / "0002-L.txt")
  found, events = pku.instances(_video(10), rows, pku.PkuOptions(end_inclusive=True))
  assert [(k, label, len(clip)) for k, label, clip in found] == [(0, 2, 4), (1, 4, 1), (2, 0, 3), (3, 1, 4)]
  assert events == {}


def test_split_file_second_line():
  names = ["a/0", "b/0", "a/1", "c/0"]
  split = pku.split_by_video(names, {"a", "c"})
  assert split["train"].tolist() == [0, 2, 3] and split["test"].tolist() == [1]


def test_pku2_reads_v2_split_files(raw, tmp_path):
  for name in ("cross-subject.txt", "cross-view.txt"):
    (raw / "Split" / name).rename(raw / "Split" / name.replace("-", "_").replace(".txt", "_v2.txt"))
  log = pku.pku_dataset("pku2", raw)
  assert sorted(log.files) == ["PKUv2_XSub.npz", "PKUv2_XView.npz"]
  with pytest.raises(FileNotFoundError, match="expected one split file cross-subject.txt"):
    pku.pku_dataset("pku1", raw)


@pytest.mark.parametrize(
  "label_line, message",
  [
    ("3,2", r"0002-L.txt:1: expected 'label,start,end,confidence' integers, got '3,2'"),
    ("x,2,5,1", r"0002-L.txt:1: expected 'label,start,end,confidence' integers"),
    ("52,2,5,1", r"0002-L.txt:1: label 52 outside 1..51"),
  ],
)
def test_bad_label_files(raw, label_line, message):
  (raw / "label" / "0002-L.txt").write_text(label_line + "\n")
  result = pku.process_video(str(raw / "label" / "0002-L.txt"), str(raw / "skeleton"), pku.PkuOptions())
  assert result.samples == [] and result.error
  with pytest.raises(pku.PkuFormatError, match=message):
    pku.read_labels(raw / "label" / "0002-L.txt")


def test_bad_skeleton_rows(tmp_path):
  path = tmp_path / "v.txt"
  path.write_text(" ".join(["1"] * 150) + "\n" + " ".join(["1"] * 149) + "\n")
  with pytest.raises(pku.PkuFormatError, match=r"v.txt:2: expected 150 numbers, got 149"):
    pku.read_skeleton(path)
  path.write_text(" ".join(["1"] * 149 + ["y"]) + "\n")
  with pytest.raises(pku.PkuFormatError, match=r"v.txt:1: non-numeric or non-finite value 'y'"):
    pku.read_skeleton(path)
