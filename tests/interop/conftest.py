"""The official code for the parity tests (`--torch-reference DIR` with DIR/MAMP and DIR/STARS checkouts)."""

import pytest

from stars_jax.interop import parity


@pytest.fixture(scope="session")
def official(request):
  """The official modules, loaded once; the largest differences each test module recorded (its module-level
  `CHECKS`) are printed at the end."""
  root = request.config.getoption("--torch-reference")
  if not root:
    pytest.skip("needs --torch-reference DIR (official MAMP and STARS checkouts)")
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  yield parity.load_official(root)
  for item in request.session.items:
    checks = getattr(item.module, "CHECKS", None)
    if isinstance(checks, parity.Differences) and checks.largest:
      print(f"\nlargest relative differences ({item.module.__name__}):\n{checks.report()}")
      checks.largest = {}
