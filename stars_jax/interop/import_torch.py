"""`stars-jax import-torch CKPT --out DIR`: an official MAMP / STARS / MoCo / DINO PyTorch checkpoint -> our orbax
checkpoint.

DIR can then be given to `--config.stars.init=DIR` (a MAMP checkpoint starts tuning from the official stage-1
weights; a STARS, MoCo or DINO tuning checkpoint also restores the head, BatchNorm statistics, queue and teacher
of that objective) or to evaluation.
PyTorch is not needed.
"""

import argparse
import json
import sys

from stars_jax import errors
from stars_jax.interop import torch_checkpoint


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="stars-jax import-torch", description=__doc__)
  parser.add_argument("checkpoint", help="official .pth/.pt file (MAMP {'model': ...}, STARS/MoCo/DINO state dict)")
  parser.add_argument("--out", required=True, help="directory for the orbax checkpoint (created)")
  args = parser.parse_args(argv)
  try:
    info = torch_checkpoint.import_checkpoint(args.checkpoint, args.out)
  except (OSError, ValueError, errors.BadInput) as e:
    print(f"stars-jax import-torch: {e}", file=sys.stderr)
    return 2
  print(json.dumps({k: v for k, v in info.items() if k != "args"}, indent=2, default=str))
  return 0
