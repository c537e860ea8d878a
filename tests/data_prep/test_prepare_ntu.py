"""`stars-jax prepare ntu60|ntu120` end to end on fixture raw folders: npz layout, order, log, errors."""

import json

import numpy as np
import pytest
from prep_fixtures import single, tall, wide, write_ntu

from stars_jax.data import npz
from stars_jax.data_prep import cli, ntu, prepare, writer


@pytest.fixture
def raw(tmp_path):
  folder = tmp_path / "raw"
  write_ntu(folder / "nturgb+d_skeletons", "S001C001P001R001A001", single(20))  # xsub train, xview test
  write_ntu(
    folder / "nturgb+d_skeletons",
    "S001C002P003R001A002",  # xsub test, xview train
    [[]] + [[("5", tall(t, 0.25)), ("6", wide(t))] for t in range(15)],
  )  # empty frame + spread noise
  write_ntu(
    folder / "nturgb+d_skeletons",
    "S001C003P001R001A003",  # two actors
    [[("1", tall(t, 0.25)), ("2", tall(t, 0.01))] for t in range(14)],
  )
  write_ntu(folder / "nturgb+d_skeletons", "S001C001P002R001A004", [[], []])  # no skeleton
  write_ntu(folder / "nturgb+d_skeletons", "S002C002P001R001A005", single(12))  # on the exclusion list
  write_ntu(folder / "nturgb+d_skeletons_120", "S018C002P008R001A061", single(16))  # NTU-120 only
  (tmp_path / "missing.txt").write_text("# published list\nS002C002P001R001A005\n\n")
  return folder


def _expected(frames: np.ndarray, duplicate: bool = False) -> np.ndarray:
  """Hand rule: centre (T, 75) on frame 0's spine middle, second person zeros or a copy, pad to 300."""
  x = frames.reshape(len(frames), 75) - np.tile(frames[0, 1], 25)
  out = np.zeros((300, 150), np.float32)
  out[: len(x), :75] = x
  if duplicate:
    out[: len(x), 75:] = x
  return out


def test_prepare_ntu60(raw, tmp_path, capsys):
  out = tmp_path / "out"
  assert (
    cli.main(
      [
        "ntu60",
        "--raw",
        str(raw),
        "--out",
        str(out),
        "--exclude",
        str(tmp_path / "missing.txt"),
        "--workers",
        "1",
        "--no-progress",
      ]
    )
    == 0
  )
  assert "NTU60_XSub.npz: 2 train / 1 test" in capsys.readouterr().out
  assert sorted(p.name for p in out.iterdir()) == ["NTU60_XSub.npz", "NTU60_XView.npz", "ntu60_prepare_log.json"]
  with np.load(out / "NTU60_XSub.npz") as f:
    assert f["x_train"].dtype == np.float32 and f["y_train"].dtype == np.float64
    assert f["x_train"].shape == (2, 300, 150) and f["y_train"].shape == (2, 60)
  sub = npz.open_split(out / "NTU60_XSub.npz", "train")  # subject 1 (A001, A003) in name order
  assert sub.labels.tolist() == [0, 2]
  one = np.stack([tall(t, 0.25) for t in range(20)]).astype(np.float32)
  np.testing.assert_array_equal(sub.x[0], _expected(one))
  two_actor = sub.x[1]
  assert np.count_nonzero(two_actor.any(axis=1)) == 14 and two_actor[:14, 75:].any()
  test = npz.open_split(out / "NTU60_XSub.npz", "test")
  assert test.labels.tolist() == [1]
  np.testing.assert_array_equal(test.x[0], _expected(np.stack([tall(t, 0.25) for t in range(15)])))
  view = npz.open_split(out / "NTU60_XView.npz", "train")  # cameras 2 then 3
  assert view.labels.tolist() == [1, 2]
  log = json.loads((out / "ntu60_prepare_log.json").read_text())
  assert log["files"] == {"NTU60_XSub.npz": {"train": 2, "test": 1}, "NTU60_XView.npz": {"train": 2, "test": 1}}
  assert set(log["skipped"]) == {"S001C001P002R001A004", "S002C002P001R001A005"}
  assert "none of its 2 frames" in log["skipped"]["S001C001P002R001A004"]
  assert log["events"]["S001C002P003R001A002"] == {
    "bodies": 2,
    "dropped_by_spread": ["6"],
    "actors": 1,
    "empty_frames_dropped": 1,
  }


def test_prepare_ntu120_duplicates_lone_actor_in_parallel(raw, tmp_path):
  serial = prepare.prepare(ntu.ntu_dataset("ntu120", raw), tmp_path / "a", workers=1)
  parallel = prepare.prepare(ntu.ntu_dataset("ntu120", raw), tmp_path / "b", workers=2)
  assert (
    serial["files"]
    == parallel["files"]
    == {"NTU120_XSub.npz": {"train": 4, "test": 1}, "NTU120_XSet.npz": {"train": 2, "test": 3}}
  )
  for name in ("NTU120_XSub.npz", "NTU120_XSet.npz"):
    with np.load(tmp_path / "a" / name) as a, np.load(tmp_path / "b" / name) as b:
      for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
  xset = npz.open_split(tmp_path / "a" / "NTU120_XSet.npz", "train")  # even setups: S002, then S018
  assert xset.labels.tolist() == [4, 60] and xset.num_classes == 120
  np.testing.assert_array_equal(xset.x[1], _expected(np.stack([tall(t, 0.25) for t in range(16)]), True))


def test_corrupt_file_fails_listing_every_error_and_writes_nothing(raw, tmp_path, capsys):
  bad = raw / "nturgb+d_skeletons" / "S001C001P001R001A001.skeleton"
  bad.write_text(bad.read_text().replace("277.419", "x", 1))
  (raw / "nturgb+d_skeletons" / "S001C003P001R001A003.skeleton").write_text("3\n1\n")
  out = tmp_path / "out"
  assert cli.main(["ntu60", "--raw", str(raw), "--out", str(out), "--workers", "1", "--no-progress"]) == 2
  err = capsys.readouterr().err
  assert "2 malformed raw file(s); nothing written" in err
  assert f"{bad}:5: non-numeric or non-finite value 'x'" in err
  assert "S001C003P001R001A003.skeleton:3: file ends early" in err
  assert list(out.iterdir()) == []  # no npz, no staging left behind


def test_interrupted_write_leaves_no_output(raw, tmp_path, monkeypatch):
  dataset = ntu.ntu_dataset("ntu60", raw)
  write = writer.write_split_npz

  def broken(path, *args):
    if path.name == "NTU60_XView.npz":
      raise KeyboardInterrupt
    write(path, *args)

  monkeypatch.setattr(writer, "write_split_npz", broken)
  with pytest.raises(KeyboardInterrupt):
    prepare.prepare(dataset, tmp_path / "out")
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["NTU60_XSub.npz"]  # complete one only


def test_bad_exclusion_list_names_file_and_line(tmp_path):
  (tmp_path / "list.txt").write_text("S001C001P001R001A001\nnot-a-name\n")
  with pytest.raises(ValueError, match=r"list.txt:2: 'not-a-name' is not an NTU sample name"):
    ntu.read_exclusions(tmp_path / "list.txt")
