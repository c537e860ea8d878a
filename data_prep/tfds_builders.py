"""TFDS builders for NTU RGB+D 60/120 and PKU-MMD I/II (manual download; array_record; no TensorFlow).

Each builder config is one official split file (e.g. ntu_rgbd60/xsub); its train/test splits hold the same
samples in the same order as the npz. Records: {'skeleton': (T, 150) float32 unpadded, 'label', 'name'};
`info.metadata` holds `max_frames` (readers pad to it) and every split's labels (readers need no scan).
Build with `stars-jax prepare <dataset> --raw DIR --out DIR --format tfds`; read with `stars_jax.data.tfds_reader`.
"""

import pathlib
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from stars_jax.data_prep import ntu, pku, prepare

VERSION = "1.0.0"
_INSTRUCTIONS = {
  "ntu": (
    "Request NTU RGB+D at https://rose1.ntu.edu.sg/dataset/actionRecognition/ (academic use only), "
    "download the 3D skeleton archives (nturgbd_skeletons_s001_to_s017.zip, and for NTU-120 also "
    "nturgbd_skeletons_s018_to_s032.zip), unzip them anywhere under the manual dir (any folder "
    "layout: every SsssCcccPpppRrrrAaaa.skeleton below it is used). See data_prep/README.md."
  ),
  "pku": (
    "Request PKU-MMD at https://www.icst.pku.edu.cn/struct/Projects/PKUMMD.html, then place the "
    "phase's skeleton files in <manual_dir>/skeleton/<video>.txt, the label files in "
    "<manual_dir>/label/<video>.txt and its split files (cross-subject.txt, cross-view.txt for "
    "phase I; cross_subject_v2.txt, cross_view_v2.txt for phase II) anywhere under the manual dir. "
    "See data_prep/README.md."
  ),
}


class _SkeletonBuilder(tfds.core.GeneratorBasedBuilder):
  """Shared build: stage every raw source once (in parallel), then emit each split in official order."""

  VERSION = tfds.core.Version(VERSION)
  DATASET = ""  # 'ntu60' | 'ntu120' | 'pku1' | 'pku2'
  FILES: dict[str, str] = {}  # config name -> npz file name of the same split rule
  disable_shuffling = True  # keep the official sample order

  def __init__(
    self, *, staged: prepare.Staged | None = None, dataset: prepare.Dataset | None = None, workers: int = 1, **kwargs
  ):
    self._staged, self._dataset, self._workers = staged, dataset, workers
    kwargs.setdefault("file_format", "array_record")  # TFRecord would need TensorFlow
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=f"{self.DATASET} skeletons in the official MAMP/STARS preprocessing (SPEC §1.4-1.5).",
      features=tfds.features.FeaturesDict(
        {
          "skeleton": tfds.features.Tensor(shape=(None, 150), dtype=np.float32),  # (T, 150) unpadded
          "label": tfds.features.ClassLabel(num_classes=self.NUM_CLASSES),
          "name": tfds.features.Text(),
        }
      ),
      metadata=tfds.core.MetadataDict(),
      supervised_keys=("skeleton", "label"),
    )

  def _make_dataset(self, raw: pathlib.Path) -> prepare.Dataset:
    raise NotImplementedError

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    if self._staged is None:
      dataset = self._dataset or self._make_dataset(pathlib.Path(dl_manager.manual_dir))
      staging = pathlib.Path(tempfile.mkdtemp(prefix=f"{self.DATASET}_")) / "staging"
      self._staged = prepare.stage(dataset, staging, self._workers, progress=True)
      self._dataset = dataset
    staged = self._staged
    splits = self._dataset.files[self.FILES[self.builder_config.name]](staged.names)
    self.info.metadata["max_frames"] = staged.max_frames(self._dataset)
    self.info.metadata["labels"] = {k: staged.labels[v].tolist() for k, v in splits.items()}
    return {split: self._generate_examples(staged, indices) for split, indices in splits.items()}

  def _generate_examples(self, staged: prepare.Staged, indices: np.ndarray):
    for index in indices:
      name = staged.names[index]
      yield name, {"skeleton": np.array(staged.store[int(index)]), "label": int(staged.labels[index]), "name": name}


def _configs(files: dict[str, str]) -> list[tfds.core.BuilderConfig]:
  return [tfds.core.BuilderConfig(name=name, description=f"the split rule of {file}") for name, file in files.items()]


class NtuRgbd60(_SkeletonBuilder):
  DATASET, NUM_CLASSES = "ntu60", 60
  FILES = {"xsub": "NTU60_XSub.npz", "xview": "NTU60_XView.npz"}
  BUILDER_CONFIGS = _configs(FILES)
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS["ntu"]

  def _make_dataset(self, raw):
    return ntu.ntu_dataset(self.DATASET, raw)


class NtuRgbd120(NtuRgbd60):
  DATASET, NUM_CLASSES = "ntu120", 120
  FILES = {"xsub": "NTU120_XSub.npz", "xset": "NTU120_XSet.npz"}
  BUILDER_CONFIGS = _configs(FILES)


class PkuMmd1(_SkeletonBuilder):
  DATASET, NUM_CLASSES = "pku1", pku.NUM_CLASSES
  FILES = {"xsub": "PKUv1_XSub.npz", "xview": "PKUv1_XView.npz"}
  BUILDER_CONFIGS = _configs(FILES)
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS["pku"]

  def _make_dataset(self, raw):
    return pku.pku_dataset(self.DATASET, raw)


class PkuMmd2(PkuMmd1):
  DATASET = "pku2"
  FILES = {"xsub": "PKUv2_XSub.npz", "xview": "PKUv2_XView.npz"}
  BUILDER_CONFIGS = _configs(FILES)


BUILDERS = {cls.DATASET: cls for cls in (NtuRgbd60, NtuRgbd120, PkuMmd1, PkuMmd2)}


def build(
  dataset: prepare.Dataset, out_dir: str | pathlib.Path, workers: int = 1, progress: bool = False
) -> dict[str, pathlib.Path]:
  """Every config of the dataset's builder under out_dir (a TFDS data_dir), staging the raw data once.

  Returns config name -> the build directory that `data.path` (with data.format='array_record') points at.
  """
  staging = pathlib.Path(out_dir) / f".{dataset.name}_staging.partial"
  pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)
  staged = prepare.stage(dataset, staging, workers, progress)
  try:
    cls = BUILDERS[dataset.name]
    dirs = {}
    for config in cls.FILES:
      builder = cls(staged=staged, dataset=dataset, data_dir=str(out_dir), config=config)
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(out_dir)))
      dirs[config] = pathlib.Path(builder.data_dir)
  finally:
    staged.store.close()
  return dirs
