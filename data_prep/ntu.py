"""NTU RGB+D 60 / 120 from raw `.skeleton` files to the official npz files (SPEC §1.1-1.4)."""

import dataclasses
import functools
import logging
import pathlib

from stars_jax.data_prep import ntu_transform
from stars_jax.data_prep.ntu_denoise import DenoiseError, DenoiseOptions, denoise
from stars_jax.data_prep.ntu_skeleton import NAME_RE, NoSkeletonError, SkeletonFormatError, parse_name, read_skeleton
from stars_jax.data_prep.prepare import Dataset, PrepareError, Sample, SourceResult

SUFFIX = ".skeleton"
FILES = {  # output file -> split rule key, SPEC §1.4
  "ntu60": {"NTU60_XSub.npz": ("ntu60", "xsub"), "NTU60_XView.npz": ("ntu60", "xview")},
  "ntu120": {"NTU120_XSub.npz": ("ntu120", "xsub"), "NTU120_XSet.npz": ("ntu120", "xset")},
}
DEFAULT_SECOND_PERSON = {"ntu60": "zeros", "ntu120": "duplicate"}  # SPEC §1.4, §7.10
ID_RANGES = {"setup": (1, 32), "camera": (1, 3), "performer": (1, 106), "replication": (1, 2), "action": (1, 120)}


def read_exclusions(path: str | pathlib.Path) -> set[str]:
  """Sample names of a missing-skeleton list (one per line; blank lines and '#' comments ignored)."""
  names = set()
  for number, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
    entry = line.split("#")[0].strip()
    if not entry:
      continue
    entry = entry.removesuffix(SUFFIX)
    if NAME_RE.fullmatch(entry) is None:
      raise ValueError(f"{path}:{number}: {line.strip()!r} is not an NTU sample name (SsssCcccPpppRrrrAaaa)")
    names.add(entry)
  return names


def id_problem(fields: dict[str, int], dataset: str) -> str:
  """Why a name's ids lie outside the dataset ('' if they do not): an id outside ID_RANGES, or a performer,
  camera or setup in neither the train nor the test list of one of the dataset's split rules."""
  for field, (low, high) in ID_RANGES.items():
    if not low <= fields[field] <= high:
      return f"{field} {fields[field]} outside {low}..{high}"
  for file, key in FILES[dataset].items():
    rule = ntu_transform.SPLITS[key]
    if fields[rule.field] not in rule.train + rule.test:
      return f"{rule.field} {fields[rule.field]} is in neither split of {file}"
  return ""


def find_skeletons(raw: str | pathlib.Path, dataset: str) -> tuple[list[pathlib.Path], dict[str, str]]:
  """The dataset's `.skeleton` files anywhere under `raw`, in sample-name order, and {name: reason} of the
  entries skipped unread: directories, FIFOs and other special files named `*.skeleton` (logged).

  NTU-120's setups 18-32 usually sit in a second folder (`nturgb+d_skeletons_120`); any layout works; NTU-60 reads
  setups 1-17 (actions 1-60) of it. A name with an id outside the dataset (action 0, setup 0, a performer or camera
  no split rule places) is a PrepareError naming every such file: it would be mislabelled or silently dropped.
  """
  raw = pathlib.Path(raw)
  if not raw.is_dir():
    raise FileNotFoundError(f"raw NTU folder {raw} does not exist")
  found: dict[str, pathlib.Path] = {}
  skipped: dict[str, str] = {}
  bad = []
  for path in raw.rglob(f"*{SUFFIX}"):
    name = path.name[: -len(SUFFIX)]
    if NAME_RE.fullmatch(name) is None:
      continue
    if not path.is_file():  # never opened: a FIFO would block the reader forever
      skipped[str(path)] = "not a regular file (a directory, FIFO or device)"
      logging.warning("skipped %s: not a regular file (a directory, FIFO or device)", path)
      continue
    fields = parse_name(name)
    problem = id_problem(fields, "ntu120")
    if problem:
      bad.append(f"{path}: {problem}")
      continue
    if fields["setup"] > ntu_transform.MAX_SETUP[dataset] or fields["action"] > ntu_transform.NUM_CLASSES[dataset]:
      continue  # an NTU-120 sample outside NTU-60
    problem = id_problem(fields, dataset)
    if problem:
      bad.append(f"{path}: {problem}")
      continue
    if name in found:
      raise ValueError(f"sample {name} found twice: {found[name]} and {path}")
    found[name] = path
  if bad:
    more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
    raise PrepareError(
      f"{len(bad)} file name(s) outside {dataset}'s ids; nothing written:\n  " + "\n  ".join(bad[:20]) + more
    )
  if not found:
    raise FileNotFoundError(f"no {dataset} .skeleton files (SsssCcccPpppRrrrAaaa{SUFFIX}) under {raw}")
  return [found[name] for name in sorted(found)], skipped


def process_file(path: str, second_person: str, options: DenoiseOptions) -> SourceResult:
  """One `.skeleton` file -> its sample (or why it has none)."""
  name = pathlib.Path(path).name[: -len(SUFFIX)]
  try:
    raw = read_skeleton(path)
    joints, report = denoise(raw, options)
  except SkeletonFormatError as e:
    return SourceResult(name, error=str(e))
  except (NoSkeletonError, DenoiseError) as e:
    return SourceResult(name, skipped=str(e))
  events = {}
  if raw.dropped_frames:
    events["empty_frames_dropped"] = len(raw.dropped_frames)
  if report.bodies > 1:
    events.update({k: v for k, v in dataclasses.asdict(report).items() if v})
  if not joints[:, : ntu_transform.PERSON_WIDTH].any():
    return SourceResult(name, skipped=f"{path}: actor 1 is zero in every frame (nothing to centre on)")
  sequence = ntu_transform.transform(joints, second_person)  # (T, 150)
  return SourceResult(name, [Sample(name, ntu_transform.label_of(name), sequence)], events=events)


def ntu_dataset(
  dataset: str,
  raw: str | pathlib.Path,
  exclude: str | pathlib.Path | None = None,
  options: DenoiseOptions = DenoiseOptions(),  # noqa: B008 (a frozen dataclass)
  second_person: str | None = None,
) -> Dataset:
  """The preparation of 'ntu60' or 'ntu120' from the raw folder (optionally less an exclusion list)."""
  if dataset not in FILES:
    raise ValueError(f"dataset must be one of {sorted(FILES)}, got {dataset!r}")
  second_person = second_person or DEFAULT_SECOND_PERSON[dataset]
  excluded_names = read_exclusions(exclude) if exclude else set()
  paths = []
  found, excluded = find_skeletons(raw, dataset)
  for path in found:
    name = path.name[: -len(SUFFIX)]
    if name in excluded_names:
      excluded[name] = f"listed in {exclude}"
    else:
      paths.append(str(path))
  files = {
    file: functools.partial(ntu_transform.split_indices, rule=ntu_transform.SPLITS[key])
    for file, key in FILES[dataset].items()
  }
  return Dataset(
    name=dataset,
    sources=tuple(paths),
    process=functools.partial(process_file, second_person=second_person, options=options),
    num_classes=ntu_transform.NUM_CLASSES[dataset],
    files=files,
    max_frames=ntu_transform.MAX_FRAMES,
    truncate=False,
    excluded=excluded,
    options={
      "raw": str(raw),
      "exclude": str(exclude or ""),
      "second_person": second_person,
      **dataclasses.asdict(options),
    },
  )
