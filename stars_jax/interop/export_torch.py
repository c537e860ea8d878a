"""`stars-jax export-torch DIR --out FILE.pth [--format auto|mamp|stars|moco|dino]`: our newest checkpoint under
DIR (a MAMP, tuning or classifier run's checkpoints/ or best/) -> an official-layout PyTorch file.

'mamp' writes {'model': state_dict} (MAMP's linear/fine-tune scripts, STARS' knn_eval.py and stage-2 init);
'stars' writes the raw SkeletonNNCLR state dict (encoder_student.*, head, queue: STARS' stage 3 and its
evaluation scripts); 'moco' / 'dino' the ablations' state dicts (student, teacher, MoCo's key queue: their third
stages). 'auto' picks the tuning format of a checkpoint with a teacher or queue. PyTorch is not needed.
"""

import argparse
import sys

from stars_jax import errors
from stars_jax.interop import torch_checkpoint
from stars_jax.train import checkpoint


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="stars-jax export-torch", description=__doc__)
  parser.add_argument("directory", help="checkpoint directory of ours (holding <step>/state)")
  parser.add_argument("--out", required=True, help="output .pth/.pt file")
  parser.add_argument("--format", default="auto", choices=("auto",) + torch_checkpoint.FORMATS)
  args = parser.parse_args(argv)
  try:
    fmt = torch_checkpoint.export_checkpoint(args.directory, args.out, args.format)
  except (OSError, ValueError, checkpoint.CheckpointError, errors.BadInput) as e:
    print(f"stars-jax export-torch: {e}", file=sys.stderr)
    return 2
  print(f"wrote {args.out} ({fmt} format)")
  return 0
