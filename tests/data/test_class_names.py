"""Action names per label: the synthetic actions in label order, NTU RGB+D 60 / 120 by class count, else None."""

import pytest
from recipe_files import common

from stars_jax.data import synthetic_motions
from stars_jax.data.class_names import NTU60_ACTIONS, NTU120_ACTIONS, class_names, classes_path


def _synthetic(num_classes: int, actions: tuple[str, ...] = ()):
  config = common.data("")
  config.synthetic.update(dict(num_classes=num_classes, actions=actions))
  return config


def test_synthetic_names_follow_actions_order():
  names = class_names(_synthetic(5), 5)
  assert names == ("wave", "kick", "bow", "handshake", "raise right arm")
  every = class_names(_synthetic(len(synthetic_motions.ACTIONS)), len(synthetic_motions.ACTIONS))
  assert every == tuple(action.name for action in synthetic_motions.ACTIONS)


def test_synthetic_names_of_chosen_actions():
  """data.synthetic.actions picks the actions in label order; the first num_classes are generated."""
  assert class_names(_synthetic(2, ("hug", "bow", "clap")), 2) == ("hug", "bow")


def test_ntu_names_by_class_count():
  assert len(NTU120_ACTIONS) == len(set(NTU120_ACTIONS)) == 120
  assert NTU120_ACTIONS[:60] == NTU60_ACTIONS
  ntu60 = class_names(common.data("data/NTU60_XSub.npz"), 60)
  ntu120 = class_names(common.data("data/NTU120_XSet.npz"), 120)
  assert ntu60 == NTU60_ACTIONS and ntu120 == NTU120_ACTIONS
  # Label i is action A(i+1).
  assert (ntu120[0], ntu120[2], ntu120[54], ntu120[59]) == (
    "drink water",
    "brushing teeth",
    "hugging other person",
    "walking apart from each other",
  )
  assert (ntu120[60], ntu120[119]) == ("put on headphone", "finger-guessing game (playing rock-paper-scissors)")


def test_tfds_build_is_not_synthetic_and_unknown_counts_have_no_names():
  tfds = common.data("")
  tfds.format = "array_record"
  assert class_names(tfds, 60) == NTU60_ACTIONS  # a TFDS build: '' is not the synthetic dataset
  assert class_names(common.data("data/PKUv1_XSub.npz"), 51) is None


def test_names_beside_a_real_npz_win_and_must_match_its_class_count(tmp_path):
  """`stars-jax prepare nwucla|kinect` writes <stem>.classes.txt; 10 classes alone would have no names."""
  path = tmp_path / "NWUCLA_XView.npz"
  assert class_names(common.data(str(path)), 10) is None
  classes_path(path).write_text("walk\n\nsit down\n")  # blank lines are not names
  assert class_names(common.data(str(path)), 2) == ("walk", "sit down")
  with pytest.raises(ValueError, match="NWUCLA_XView.classes.txt: 2 action names for 3 classes"):
    class_names(common.data(str(path)), 3)
