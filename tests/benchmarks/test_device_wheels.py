"""benchmarks/device_wheels.sh's package list (LIST=1: no download) against requirements.txt and the packages'
own requirements in this environment."""

import importlib.metadata
import os
import pathlib
import re
import subprocess

from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[2]


def norm(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def requires(name: str) -> set[str]:
  """The installed distribution's unconditional requirements (no extras), normalised."""
  reqs = [Requirement(r) for r in importlib.metadata.requires(name) or ()]
  return {norm(r.name) for r in reqs if r.marker is None or ("extra" not in str(r.marker) and r.marker.evaluate())}


def closure(names: set[str]) -> set[str]:
  """`names` and everything they require, transitively, as installed here."""
  seen, todo = set(), set(names)
  while todo:
    name = todo.pop()
    seen.add(name)
    try:
      todo |= requires(name) - seen
    except importlib.metadata.PackageNotFoundError:
      pass
  return seen


def listing() -> tuple[dict[str, str], dict[str, str], set[str]]:
  env = {**os.environ, "LIST": "1"}
  text = subprocess.run(["bash", str(ROOT / "benchmarks/device_wheels.sh")], env=env, capture_output=True, text=True)
  assert text.returncode == 0, text.stderr
  lines = text.stdout.splitlines()
  wheels = dict(norm(line).split("==") for line in lines if "==" in line and ":" not in line)
  fallback = dict(norm(p).split("==") for p in lines[-2].removeprefix("fallback: ").split())
  host = {norm(p) for p in lines[-1].removeprefix("host: ").split()}
  return wheels, fallback, host


def test_the_wheels_take_requirements_txt_pins():
  wheels, _, _ = listing()
  pins = dict(
    norm(line).split("==")
    for line in (ROOT / "requirements.txt").read_text().splitlines()
    if "==" in line and line[0] != "#"
  )
  pinned = {name: version for name, version in wheels.items() if name in pins}
  assert pinned == {name: pins[name] for name in pinned} and len(pinned) == 3


def test_a_host_with_the_declared_stack_and_the_wheels_has_every_requirement():
  wheels, fallback, host = listing()
  have = set(wheels) | set(fallback) | closure(host)
  assert requires("stars_jax") <= set(wheels) | host  # the project's own, in the wheels or declared the host's
  for name in wheels:  # the wheels install with --no-deps: their requirements must be there already
    assert requires(name) <= have, name
