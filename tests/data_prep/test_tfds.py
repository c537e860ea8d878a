"""TFDS build (array_record, no TensorFlow) read back through the config option data.format='array_record'."""

import sys

import ml_collections
import numpy as np
import pytest
from prep_fixtures import single, tall, write_ntu

from stars_jax.data import npz, pipeline, sources
from stars_jax.data_prep import cli

pytest.importorskip("tensorflow_datasets")


def test_tfds_build_matches_npz_and_feeds_the_pipeline(tmp_path, capsys):
  raw = tmp_path / "raw"
  write_ntu(raw, "S001C001P001R001A001", single(20))
  write_ntu(raw, "S001C002P003R001A002", single(30, 0.1))
  write_ntu(raw, "S001C003P001R001A003", [[("1", tall(t, 0.25)), ("2", tall(t, 0.01))] for t in range(14)])
  args = ["ntu60", "--raw", str(raw), "--workers", "1", "--no-progress"]
  assert cli.main(args + ["--out", str(tmp_path / "npz")]) == 0
  assert cli.main(args + ["--out", str(tmp_path / "tfds"), "--format", "tfds"]) == 0
  assert "xsub: " in capsys.readouterr().out
  assert "tensorflow" not in sys.modules
  for config, file in (("xsub", "NTU60_XSub.npz"), ("xview", "NTU60_XView.npz")):
    data = ml_collections.ConfigDict(
      dict(path=str(tmp_path / "tfds" / "ntu_rgbd60" / config / "1.0.0"), format="array_record")
    )
    for split in ("train", "test"):
      built = sources.open_split(data, split)
      reference = npz.open_split(tmp_path / "npz" / file, split)
      assert built.x.shape == reference.x.shape and built.num_classes == 60
      np.testing.assert_array_equal(built.labels, reference.labels)
      for i in range(len(reference)):
        np.testing.assert_array_equal(built.x[i], reference.x[i])
  batch = next(pipeline.eval_batches(built, global_batch_size=2, num_threads=1))
  np.testing.assert_array_equal(batch["x"][0], reference.x[0])


def test_open_split_formats(tmp_path):
  with pytest.raises(ValueError, match="data.format='hdf5'"):
    sources.open_split(ml_collections.ConfigDict(dict(path="x", format="hdf5")), "train")
  with pytest.raises(FileNotFoundError, match="is not a TFDS build directory"):
    sources.open_split(ml_collections.ConfigDict(dict(path=str(tmp_path), format="array_record")), "train")
