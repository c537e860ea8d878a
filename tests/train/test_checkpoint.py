"""The checkpoint helper: round trip of every state field (absent queue and empty batch_stats included),
retention, partial restores and the errors that name the directory and config key."""

import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stars_jax import support_queue
from stars_jax.train import checkpoint
from stars_jax.train.state import TrainState


def _state(step: int, queue: bool = False) -> TrainState:
  params = {
    "blocks_0": {"kernel": jnp.full((3, 4), float(step)), "bias": jnp.arange(4.0)},
    "norm": {"scale": jnp.ones(4)},
  }
  return TrainState(
    step=jnp.asarray(step, jnp.int32),
    params=params,
    batch_stats={} if not queue else {"bn": {"mean": jnp.full((4,), 0.5)}},
    opt_state=(jnp.zeros(()), {"mu": params}),
    rng=jax.random.PRNGKey(step),
    queue=support_queue.init(jax.random.PRNGKey(1), 6, 4) if queue else None,
  )


@pytest.mark.parametrize("queue", [False, True])
def test_round_trip_restores_every_field_and_the_extra_item(tmp_path, queue):
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt", keep=2)
  saved = _state(5, queue)
  ckpt.save(saved, {"iterator": {"step": 5}, "monitor": {"best": {"step": 3}}})
  ckpt.wait()
  restored, extra = ckpt.restore(_state(0, queue))
  ckpt.close()
  assert extra == {"iterator": {"step": 5}, "monitor": {"best": {"step": 3}}}
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), jax.device_get(saved))
  assert (restored.queue is None) == (not queue)


def test_keeps_the_newest_and_saves_a_step_once(tmp_path):
  ckpt = checkpoint.Checkpointer(tmp_path, keep=2)
  for step in (1, 2, 3, 3):
    ckpt.save(_state(step), {"iterator": {}})
  ckpt.wait()
  assert ckpt.latest_step() == 3
  ckpt.close()
  assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [2, 3]


def test_keep_steps_survive_rotation_and_restore_by_epoch(tmp_path):
  """A kept step outlives the rotation; `epochs` finds it through the recorded input-pipeline position (here 10
  samples in batches of 4: 2 steps per epoch, so 2 epochs = step 4)."""
  ckpt = checkpoint.Checkpointer(tmp_path, keep=2, keep_steps=[4])
  for step in range(2, 12, 2):
    ckpt.save(_state(step), {"iterator": {"num_samples": 10, "global_batch_size": 4}})
  ckpt.close()
  assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [4, 8, 10]
  target = {"blocks_0": {"kernel": jnp.zeros((3, 4))}}
  restored = checkpoint.restore_params(tmp_path, target, "linear.init", epochs=2)
  np.testing.assert_array_equal(restored["blocks_0"]["kernel"], np.full((3, 4), 4.0))
  assert float(checkpoint.restore_params(tmp_path, target, "linear.init")["blocks_0"]["kernel"][0, 0]) == 10.0
  with pytest.raises(FileNotFoundError, match=r"after 3 epochs \(step 6; linear.init_epoch\).*\[4, 8, 10\]"):
    checkpoint.restore_params(tmp_path, target, "linear.init", epochs=3)


def test_restore_by_epoch_needs_a_recorded_pipeline_position(tmp_path):
  ckpt = checkpoint.Checkpointer(tmp_path, keep=1)
  ckpt.save(_state(1), {"imported": True})  # as an imported official checkpoint: no iterator
  ckpt.close()
  with pytest.raises(ValueError, match=r"no input-pipeline position.*set finetune.init_epoch=-1"):
    checkpoint.restore_params(tmp_path, {"norm": {"scale": jnp.zeros(4)}}, "finetune.init", epochs=301)


def test_restore_params_takes_the_newest_step_and_only_the_target(tmp_path):
  ckpt = checkpoint.Checkpointer(tmp_path, keep=3)
  for step in (1, 2):
    ckpt.save(_state(step), {"iterator": {}})
  ckpt.close()
  target = {"blocks_0": {"kernel": jnp.zeros((3, 4)), "bias": jnp.zeros(4)}}  # norm left out
  restored = checkpoint.restore_params(tmp_path, target, "linear.init")
  assert set(restored) == {"blocks_0"}
  np.testing.assert_array_equal(restored["blocks_0"]["kernel"], np.full((3, 4), 2.0))


def test_errors_name_the_directory_and_config_key(tmp_path):
  with pytest.raises(FileNotFoundError, match=rf"no checkpoint under {tmp_path}/missing \(config key stars.init\)"):
    checkpoint.latest_item_path(tmp_path / "missing", "stars.init")
  assert not (tmp_path / "missing").exists()
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
  ckpt.save(_state(1), {"iterator": {}})
  ckpt.close()
  wrong = {"blocks_0": {"kernel": jnp.zeros((5, 4))}}
  message = r"ckpt/1/state: checkpoint key 'params/blocks_0/kernel' has shape \(3, 4\).*expects \(5, 4\).*finetune.init"
  with pytest.raises(ValueError, match=message):
    checkpoint.restore_params(tmp_path / "ckpt", wrong, "finetune.init")


def test_non_finite_values_are_refused_naming_the_step_and_parameter(tmp_path):
  """A diverged or corrupted checkpoint (here: NaN written into one weight) is never restored silently."""
  ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
  bad = _state(5)
  bad = bad.replace(params={**bad.params, "blocks_0": {**bad.params["blocks_0"], "kernel": jnp.full((3, 4), jnp.nan)}})
  ckpt.save(bad, {"iterator": {}})
  ckpt.wait()
  message = r"ckpt/5/state: non-finite values .* in 'params/blocks_0/kernel'"  # one read: the same error for both
  with pytest.raises(checkpoint.CheckpointError, match=message):
    ckpt.restore(_state(0))  # the only step: nothing to fall back to
  ckpt.close()
  with pytest.raises(checkpoint.CheckpointError, match=message):
    checkpoint.restore_params(tmp_path / "ckpt", {"blocks_0": {"kernel": jnp.zeros((3, 4))}}, "stars.init")


def _truncate_array_files(step_dir):
  for f in (step_dir / "state").rglob("*"):
    if f.is_file() and f.parent.name == "d":  # the array data files
      f.write_bytes(f.read_bytes()[:10])


def _empty_metadata(step_dir):
  (step_dir / "state" / "_METADATA").write_text("")


def _remove_state(step_dir):
  shutil.rmtree(step_dir / "state")


@pytest.mark.parametrize("corrupt", [_truncate_array_files, _empty_metadata, _remove_state])
def test_a_broken_newest_step_falls_back_to_the_previous_one(tmp_path, corrupt, caplog):
  ckpt = checkpoint.Checkpointer(tmp_path, keep=3)
  for step in (3, 6):
    ckpt.save(_state(step), {"iterator": {"step": step}})
  ckpt.close()
  corrupt(tmp_path / "6")
  ckpt = checkpoint.Checkpointer(tmp_path, keep=3)
  with caplog.at_level(logging.WARNING):
    restored, extra = ckpt.restore(_state(0))
  assert int(restored.step) == 3 and extra == {"iterator": {"step": 3}}
  assert f"{tmp_path}/6: unreadable checkpoint" in caplog.text and "Resuming from step 3" in caplog.text
  assert (tmp_path / "broken.6").is_dir() and ckpt.latest_step() == 3
  ckpt.save(_state(6), {"iterator": {"step": 6}})  # training reaches step 6 again and saves it
  ckpt.wait()
  assert ckpt.latest_step() == 6 and int(ckpt.restore(_state(0))[0].step) == 6
  ckpt.close()


def test_no_readable_step_lists_every_reason(tmp_path):
  ckpt = checkpoint.Checkpointer(tmp_path, keep=3)
  for step in (3, 6):
    ckpt.save(_state(step), {"iterator": {}})
  ckpt.close()
  _remove_state(tmp_path / "3")
  _empty_metadata(tmp_path / "6")
  with pytest.raises(checkpoint.CheckpointError, match=rf"{tmp_path}: no readable checkpoint \(step 6: .*; step 3: "):
    checkpoint.Checkpointer(tmp_path).restore(_state(0))


def test_initialising_from_a_directory_skips_a_broken_newest_step(tmp_path, caplog):
  """restore_params (stars.init, linear.init, ...) falls back as a resume does; another model's checkpoint is an
  error of the config, raised at once."""
  ckpt = checkpoint.Checkpointer(tmp_path, keep=3)
  for step in (3, 6):
    ckpt.save(_state(step), {"iterator": {}})
  ckpt.close()
  _truncate_array_files(tmp_path / "6")
  target = {"blocks_0": {"kernel": jnp.zeros((3, 4))}}
  with caplog.at_level(logging.WARNING):
    params = checkpoint.restore_params(tmp_path, target, "linear.init")
  np.testing.assert_array_equal(params["blocks_0"]["kernel"], np.full((3, 4), 3.0))
  assert f"{tmp_path}/6 (linear.init): unreadable checkpoint" in caplog.text
  with pytest.raises(checkpoint.CheckpointMismatch, match="linear.init must point at a checkpoint of this model"):
    checkpoint.restore_params(tmp_path, {"blocks_0": {"kernel": jnp.zeros((2, 4))}}, "linear.init")


@pytest.mark.parametrize(
  "other, message",
  [
    (
      lambda s: s.replace(params={**s.params, "norm": {"scale": jnp.ones(5)}}),
      r"key 'params/norm/scale' has shape \(4,\)",
    ),
    (lambda s: s.replace(queue=None), r"keys \['queue/embeddings', 'queue/ids', 'queue/ptr'\] \(3 in all\) are not"),
  ],
)
def test_resuming_another_models_checkpoint_is_refused_at_once(tmp_path, other, message):
  """A resume reads its state as an initialisation does (the same checks), and must match it field for field:
  another shape, or a saved field the state lacks, is an error of the config, and no step is set aside."""
  ckpt = checkpoint.Checkpointer(tmp_path, keep=3)
  for step in (3, 6):
    ckpt.save(_state(step, queue=True), {"iterator": {}})
  ckpt.wait()
  with pytest.raises(checkpoint.CheckpointMismatch, match=rf"6/state: checkpoint {message}.*--workdir must"):
    ckpt.restore(other(_state(0, queue=True)))
  ckpt.close()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["3", "6"]
