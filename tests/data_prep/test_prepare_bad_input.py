"""`stars-jax prepare` on hostile raw folders: it never writes what it cannot vouch for, never hangs, and every
refusal is exit 2 with one message naming the file (issue 28)."""

import json
import os
import signal

import numpy as np
import pytest
from prep_fixtures import single, write_ntu, write_pku, write_pku_split

from stars_jax.data_prep import cli, prepare
from stars_jax.data_prep.prepare import SourceResult

SKELETONS = "nturgb+d_skeletons"
BOTH_SPLITS = ("S001C001P001R001A001", "S001C002P003R001A002")  # xsub train + test, xview test + train


def _raw(tmp_path, *names, frames=12):
  folder = tmp_path / "raw"
  for name in (*BOTH_SPLITS, *names):
    write_ntu(folder / SKELETONS, name, single(frames))
  return folder


def _prepare(raw, out, *extra, dataset="ntu60"):
  return cli.main([dataset, "--raw", str(raw), "--out", str(out), "--workers", "1", "--no-progress", *extra])


@pytest.mark.parametrize(
  ("name", "dataset", "reason"),
  [
    ("S001C001P001R001A000", "ntu60", "action 0 outside 1..120"),  # today: label 59 through a -1 index
    ("S000C001P001R001A001", "ntu60", "setup 0 outside 1..32"),
    ("S001C004P001R001A001", "ntu60", "camera 4 outside 1..3"),
    ("S001C001P041R001A001", "ntu60", "performer 41 is in neither split of NTU60_XSub.npz"),  # dropped today
    ("S001C001P107R001A001", "ntu120", "performer 107 outside 1..106"),
    ("S001C001P001R003A001", "ntu120", "replication 3 outside 1..2"),
  ],
)
def test_names_outside_the_datasets_ids_are_refused_by_name(tmp_path, capsys, name, dataset, reason):
  out = tmp_path / "out"
  assert _prepare(_raw(tmp_path, name), out, dataset=dataset) == 2
  err = capsys.readouterr().err
  assert f"{name}.skeleton: {reason}" in err and "nothing written" in err
  assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize(
  ("value", "what"),
  [
    (1e39, "non-finite"),
    (1e30, "outside the plausibility bound |x| <= 100 m"),
    (150.0, "outside the plausibility bound"),
  ],
)
def test_values_are_checked_after_the_float32_cast_and_against_the_bound(tmp_path, capsys, value, what):
  """1e39 is finite in float64 (the parser's check) and inf in float32 (the npz); 1e30 and 150 m are finite but
  no Kinect skeleton lies that far from the camera."""
  raw = _raw(tmp_path)
  frames = single(12)
  frames[5][0][1][7, 2] = value  # frame 5, joint 7, z
  path = write_ntu(raw / SKELETONS, "S001C003P001R001A003", frames)
  out = tmp_path / "out"
  assert _prepare(raw, out) == 2
  err = capsys.readouterr().err
  assert f"{path}: sample S001C003P001R001A003: {what}" in err and "at frame 5" in err
  assert list(out.iterdir()) == []


def test_pku_values_beyond_float32_are_refused(tmp_path, capsys):
  folder = tmp_path / "pku"
  video = np.full((20, 150), 0.5)
  video[3, 10] = 1e39
  write_pku(folder, "0002-L", video, ["3,0,10,1"])
  write_pku(folder, "0003-L", np.full((20, 150), 0.5), ["3,0,10,1"])
  write_pku_split(folder / "Split", "cross-subject.txt", ["0002-L"], ["0003-L"])
  write_pku_split(folder / "Split", "cross-view.txt", ["0003-L"], ["0002-L"])
  assert _prepare(folder, tmp_path / "out", dataset="pku1") == 2
  assert "0002-L.txt: sample 0002-L/0: non-finite" in capsys.readouterr().err


def test_an_empty_split_is_an_error_unless_allowed(tmp_path, capsys):
  """One performer and one camera: NTU60_XSub has no test and NTU60_XView no training clip."""
  raw = tmp_path / "raw"
  for action in (1, 2, 3):
    write_ntu(raw / SKELETONS, f"S001C001P001R001A{action:03d}", single(12))
  out = tmp_path / "out"
  assert _prepare(raw, out) == 2
  err = capsys.readouterr().err
  assert "NTU60_XSub.npz test, NTU60_XView.npz train" in err and "--allow-empty-split" in err
  assert list(out.iterdir()) == []
  assert _prepare(raw, out, "--allow-empty-split") == 0
  log = json.loads((out / "ntu60_prepare_log.json").read_text())
  assert log["empty_splits"] == ["NTU60_XSub.npz test", "NTU60_XView.npz train"]
  assert log["files"]["NTU60_XSub.npz"] == {"train": 3, "test": 0}


def _alarm(signum, frame):
  raise TimeoutError("prepare blocked (opened a FIFO?)")


def test_directories_and_fifos_named_skeleton_are_skipped_with_a_line(tmp_path, caplog):
  raw = _raw(tmp_path)
  (raw / SKELETONS / "S001C003P001R001A003.skeleton").mkdir()
  fifo = raw / SKELETONS / "S001C003P001R001A004.skeleton"
  os.mkfifo(fifo)
  previous = signal.signal(signal.SIGALRM, _alarm)
  signal.alarm(60)  # a reader that opens the FIFO blocks forever: fail instead
  try:
    assert _prepare(raw, tmp_path / "out") == 0
  finally:
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
  log = json.loads((tmp_path / "out" / "ntu60_prepare_log.json").read_text())
  assert log["skipped"] == {
    str(raw / SKELETONS / "S001C003P001R001A003.skeleton"): "not a regular file (a directory, FIFO or device)",
    str(fifo): "not a regular file (a directory, FIFO or device)",
  }
  assert log["samples"] == 2
  assert f"skipped {fifo}: not a regular file" in caplog.text


def test_a_file_whose_first_actor_is_always_zero_is_skipped_naming_the_file(tmp_path):
  raw = _raw(tmp_path)
  path = write_ntu(raw / SKELETONS, "S001C003P001R001A003", [[("1", np.zeros((25, 3)))] for _ in range(12)])
  assert _prepare(raw, tmp_path / "out") == 0
  log = json.loads((tmp_path / "out" / "ntu60_prepare_log.json").read_text())
  assert log["skipped"]["S001C003P001R001A003"] == f"{path}: actor 1 is zero in every frame (nothing to centre on)"


def _fails(source: str) -> SourceResult:
  raise ZeroDivisionError("division by zero")


def test_any_failure_of_one_file_names_that_file():
  result = prepare.checked(_fails, "/raw/S001C001P001R001A001.skeleton")
  assert result.error == "/raw/S001C001P001R001A001.skeleton: ZeroDivisionError: division by zero"
  assert not result.samples


def test_out_pointing_at_a_file_is_one_line(tmp_path, capsys):
  out = tmp_path / "out.npz"
  out.write_text("not a folder")
  assert _prepare(_raw(tmp_path), out) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and f"--out {out}: not a directory" in err[0]
  assert out.read_text() == "not a folder"
