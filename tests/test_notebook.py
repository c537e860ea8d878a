"""The notebooks run top to bottom (shell and magic lines skipped), so they cannot rot."""

import json
import pathlib

from nwucla_clips import write_nwucla_clips

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _execute(name: str, monkeypatch, tmp_path) -> dict:
  """Runs notebooks/<name>'s code cells in one namespace, with tempfile's directory in tmp_path; the namespace."""
  import tempfile

  import matplotlib

  matplotlib.use("Agg")  # plt.show() is a no-op
  notebook = json.loads((ROOT / "notebooks" / name).read_text())
  monkeypatch.chdir(ROOT)
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the notebook's workdir lands in tmp_path
  monkeypatch.syspath_prepend(str(ROOT))
  namespace: dict = {"__name__": "__main__"}
  for cell in notebook["cells"]:
    if cell["cell_type"] != "code":
      continue
    lines = [line for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith(("%", "!"))]
    exec(compile("\n".join(lines), name, "exec"), namespace)  # noqa: S102
  return namespace


def test_quickstart_notebook_executes(monkeypatch, tmp_path):
  namespace = _execute("quickstart.ipynb", monkeypatch, tmp_path)
  results, workdir = namespace["results"], namespace["workdir"]
  assert {"knn1", "linear", "fewshot", "silhouette", "nmi"} <= set(results)
  assert set(results["knn1"]) >= {"stage1", "stars"}
  assert "| knn1 |" in namespace["table"]
  assert (workdir / "report.md").is_file() and (workdir / "probe" / "plots" / "tsne_stars.png").is_file()


def test_real_data_notebook_prepares_trains_and_plots(monkeypatch, tmp_path):
  """notebooks/real_data.ipynb on generated NW-UCLA-format clips, with the seconds-long `tiny` variant."""
  monkeypatch.setenv("NWUCLA_RAW", str(write_nwucla_clips(tmp_path / "raw")))
  monkeypatch.setenv("NWUCLA_CONFIG", "configs/nwucla.py:tiny")
  namespace = _execute("real_data.ipynb", monkeypatch, tmp_path)
  assert namespace["log"]["files"] == {"NWUCLA_XView.npz": {"train": 40, "test": 20}}
  results, run = namespace["results"], namespace["workdir"] / "run"
  assert set(results["knn1"]) == {"random_init", "stage1", "stars", "stars_last"}
  assert "| knn1 |" in namespace["table"]
  for encoder in ("random_init", "stage1", "stars"):
    assert (run / "probe" / "plots" / f"tsne_{encoder}.png").is_file()
