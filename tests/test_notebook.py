"""notebooks/quickstart.ipynb runs top to bottom (shell and magic lines skipped), so it cannot rot."""

import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quickstart_notebook_executes(monkeypatch, tmp_path):
  import tempfile

  import matplotlib

  matplotlib.use("Agg")  # plt.show() is a no-op
  notebook = json.loads((ROOT / "notebooks" / "quickstart.ipynb").read_text())
  monkeypatch.chdir(ROOT)
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the notebook's workdir lands in tmp_path
  monkeypatch.syspath_prepend(str(ROOT))
  namespace: dict = {"__name__": "__main__"}
  for cell in notebook["cells"]:
    if cell["cell_type"] != "code":
      continue
    lines = [line for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith(("%", "!"))]
    exec(compile("\n".join(lines), "quickstart.ipynb", "exec"), namespace)  # noqa: S102
  results, workdir = namespace["results"], namespace["workdir"]
  assert {"knn1", "linear", "fewshot", "silhouette", "nmi"} <= set(results)
  assert set(results["knn1"]) >= {"stage1", "stars"}
  assert "| knn1 |" in namespace["table"]
  assert (workdir / "report.md").is_file() and (workdir / "plots" / "tsne_stars.png").is_file()
