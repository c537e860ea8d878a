"""`stars-jax ensemble`: top-k of each run and of the weighted fusion of their saved test scores."""

import numpy as np
import pytest

from stars_jax.evaluate import ensemble

LABELS = [0, 1]
JOINT = [[2.0, 0.0, 0.0], [3.0, 2.0, 0.0]]  # right on sample 0, wrong (by 1) on sample 1
BONE = [[0.0, 1.0, 0.0], [0.0, 2.0, 0.0]]  # wrong (by 1) on sample 0, right on sample 1


def _run(tmp_path, name: str, logits, labels=LABELS) -> str:
  run = tmp_path / name
  run.mkdir()
  np.savez(run / ensemble.SCORES, logits=np.asarray(logits, np.float32), labels=np.asarray(labels, np.int32))
  return str(run)


@pytest.mark.parametrize("use_softmax", [False, True])
def test_the_fusion_is_right_where_each_stream_is_wrong_once(tmp_path, use_softmax):
  joint, bone = _run(tmp_path, "joint", JOINT), _run(tmp_path, "bone", BONE)
  result = ensemble.fuse([joint, bone], [1.0, 1.0], use_softmax)
  assert result["runs"][joint] == result["runs"][bone] == {"top1": 50.0, "top3": 100.0}  # 3 classes: top-3
  assert result["fused"] == {"top1": 100.0, "top3": 100.0}
  assert ensemble.fuse([joint, bone], [1.0, 0.0], use_softmax)["fused"]["top1"] == 50.0  # weight 0: joint alone


def test_topk_accuracy():
  scores = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
  assert ensemble.topk_accuracy(scores, np.array([2, 0]), 1) == 50.0
  assert ensemble.topk_accuracy(scores, np.array([2, 0]), 2) == 100.0


def test_runs_that_score_other_samples_or_lack_scores_are_named(tmp_path):
  joint = _run(tmp_path, "joint", JOINT)
  other = _run(tmp_path, "other", BONE, labels=[1, 1])
  with pytest.raises(ValueError, match="other: its test samples or classes differ"):
    ensemble.fuse([joint, other], [1.0, 1.0])
  with pytest.raises(FileNotFoundError, match="nowhere/test_scores.npz: no test scores"):
    ensemble.fuse([joint, str(tmp_path / "nowhere")], [1.0, 1.0])
  with pytest.raises(ValueError, match="1 weights for 2 runs"):
    ensemble.fuse([joint, joint], [1.0])
  assert ensemble.main([joint, "--weights", "1"]) == 0
