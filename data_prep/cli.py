"""`stars-jax prepare ntu60|ntu120|pku1|pku2|nwucla|kinect --raw DIR --out DIR`: raw files -> official npz (or TFDS
build; NTU and PKU-MMD)."""

import argparse
import logging
import sys

from stars_jax import errors
from stars_jax.data_prep import ntu, nwucla, pku, prepare, recordings
from stars_jax.data_prep.ntu_denoise import INTERVALS, DenoiseOptions
from stars_jax.data_prep.ntu_transform import SECOND_PERSON


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="stars-jax prepare", description=__doc__)
  p.add_argument("dataset", choices=("ntu60", "ntu120", "pku1", "pku2", "nwucla", "kinect"))
  p.add_argument(
    "--raw",
    required=True,
    help="raw folder: NTU .skeleton files anywhere below it; PKU: skeleton/, label/ and the split files; NW-UCLA: "
    "the aAA_sSS_eEE_vVV.json clips anywhere below it; kinect: index.csv (file,label,split) [+ classes.txt]",
  )
  p.add_argument(
    "--out", required=True, help="output folder (npz files + <dataset>_prepare_log.json, or the TFDS data_dir)"
  )
  p.add_argument("--format", choices=("npz", "tfds"), default="npz")
  p.add_argument("--workers", type=int, default=prepare.cpu_count(), help="processes (default: all cores)")
  p.add_argument("--no-progress", action="store_true")
  p.add_argument(
    "--allow-empty-split",
    action="store_true",
    help="write an npz even when a split is empty (default: an error, since no job can train or test on it)",
  )
  ntu_args = p.add_argument_group("NTU RGB+D")
  ntu_args.add_argument("--exclude", help="missing-skeleton list (one sample name per line) to skip unread")
  ntu_args.add_argument(
    "--interval",
    choices=INTERVALS,
    default="official",
    help="'official': a body that vanishes and returns is laid on consecutive frames from "
    "its first appearance (SPEC §7.22); 'true': on the frames it appears in",
  )
  ntu_args.add_argument(
    "--touching-overlaps",
    action="store_true",
    help="treat bodies sharing one boundary frame as overlapping (official: they do not)",
  )
  ntu_args.add_argument(
    "--second-person",
    choices=SECOND_PERSON,
    help="lone actor's second slot (default: zeros for ntu60, duplicate for ntu120)",
  )
  pku_args = p.add_argument_group("PKU-MMD")
  pku_args.add_argument(
    "--end-inclusive",
    action="store_true",
    help="instances are rows [start, end] (official: [start, end), end frame dropped)",
  )
  pku_args.add_argument(
    "--max-frames", type=int, default=pku.MAX_FRAMES, help="PKU instances keep their first N frames (official 300)"
  )
  pku_args.add_argument("--skeleton-dir", help="default RAW/skeleton")
  pku_args.add_argument("--label-dir", help="default RAW/label")
  kinect_args = p.add_argument_group("NW-UCLA and Kinect recordings")
  kinect_args.add_argument(
    "--min-frames",
    type=int,
    default=recordings.MIN_FRAMES,
    help="clips with fewer frames holding a skeleton are skipped and logged",
  )
  kinect_args.add_argument("--name", default="Kinect", help="kinect: the output <name>.npz")
  return p


def _dataset(args: argparse.Namespace) -> prepare.Dataset:
  if args.dataset.startswith("ntu"):
    options = DenoiseOptions(args.interval, args.touching_overlaps)
    return ntu.ntu_dataset(args.dataset, args.raw, args.exclude, options, args.second_person)
  if args.dataset == "nwucla":
    return nwucla.nwucla_dataset(args.raw, args.min_frames)
  if args.dataset == "kinect":
    return recordings.kinect_dataset(args.raw, args.name, args.min_frames)
  options = pku.PkuOptions(args.end_inclusive, args.max_frames)
  return pku.pku_dataset(args.dataset, args.raw, options, args.skeleton_dir, args.label_dir)


def main(argv: list[str]) -> int:
  args = _parser().parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
  try:
    dataset = _dataset(args)
    prepare.output_dir(args.out)
    if args.format == "tfds":
      if args.dataset in ("nwucla", "kinect"):
        raise ValueError(f"--format tfds is for NTU and PKU-MMD; {args.dataset} is written as npz")
      from stars_jax.data_prep import tfds_builders  # tensorflow_datasets only for this format

      for config, path in tfds_builders.build(dataset, args.out, args.workers, not args.no_progress).items():
        print(f"{config}: {path}")
      return 0
    log = prepare.prepare(
      dataset, args.out, args.workers, progress=not args.no_progress, allow_empty_split=args.allow_empty_split
    )
  except (errors.BadInput, FileNotFoundError, ValueError) as e:
    print(f"stars-jax prepare: {e}", file=sys.stderr)
    return 2
  for file, sizes in log["files"].items():
    print(f"{file}: {sizes['train']} train / {sizes['test']} test")
  for source, why in list(log["skipped"].items())[:10]:
    print(f"skipped {source}: {why}")
  print(
    f"{log['samples']} samples, {len(log['skipped'])} sources skipped, {log['files_per_second']} files/s; "
    f"log: {args.out}/{args.dataset}_prepare_log.json"
  )
  return 0
