"""The MoCo and DINO tuning stages (SPEC §4.11): teacher EMA and its schedule, key queue with the official pointer
skip, Sinkhorn-Knopp groups and KoLeo chunks, frozen layers, initialisation from MAMP, resume."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from recipe_files import stars

from stars_jax import losses, sharding
from stars_jax.data.npz import open_split
from stars_jax.models import factory
from stars_jax.train import dino, moco, runner, tune, tuning
from stars_jax.train.checkpoint import Checkpointer
from stars_jax.train.optim import FROZEN


@pytest.fixture
def ablation_config(tiny_config):
  """tiny_config plus tuning options sized for CPU tests ('third' recipe: blocks >= depth/2, norm, head)."""
  config = tiny_config
  config.stars = stars.stars_group("third", 0.45, lr=1e-3)
  config.stars.update(dict(epochs=2, batch_size=8, head_hidden_dim=32, log_every_steps=1))
  config.stars.queue.size = 20
  config.stars.moco.pointer_skip = 2
  config.stars.dino.update(dict(out_dim=16, sinkhorn_groups=2, momentum_steps_per_epoch=0))
  config.stars.monitor.update(dict(val_fraction=0.25, ks=(1, 3), batch_size=8))
  return config


def _setup(config, devices):
  mesh = sharding.make_mesh(devices)
  stage = tune.stage(config, mesh)
  state, step_fn = runner.compile_stage(stage, mesh, config.sharding)
  return mesh, stage, state, step_fn


def _batch(config, mesh, i=0):
  split = open_split(config.data.path, "train")
  b = config.stars.batch_size
  x, ids = np.asarray(split.x[i * b : (i + 1) * b]), np.arange(i * b, (i + 1) * b, dtype=np.int32)
  return sharding.global_batch({"x": x, "index": ids}, mesh)


@flax.struct.dataclass
class _EncoderCheckpoint:
  step: jax.Array
  params: dict


def _encoder_checkpoint(config, directory) -> dict:
  """A checkpoint holding only encoder weights (as a MAMP run or an imported official encoder), drawn apart from
  the tuning model's initialisation. Returns its params."""
  clips = jnp.zeros((1, 2, config.data.window, config.model.num_joints, 3))
  params = factory.encoder(config).init(jax.random.PRNGKey(99), clips)["params"]
  ckpt = Checkpointer(directory, keep=1)
  ckpt.save(_EncoderCheckpoint(jnp.zeros((), jnp.int32), params), {})
  ckpt.wait()
  ckpt.close()
  return jax.device_get(params)


@pytest.mark.parametrize("objective", ["moco", "dino"])
def test_init_from_an_encoder_then_the_teacher_moves_by_the_ema_of_the_pre_step_student(
  ablation_config, objective, tmp_path
):
  ablation_config.stars.objective = objective
  encoder = _encoder_checkpoint(ablation_config, tmp_path / "mamp")
  mesh, stage, state, step_fn = _setup(ablation_config, jax.devices()[:1])
  labels = stage.step.keywords["labels"]
  fresh = jax.device_get(state)
  # The teacher's head is drawn apart from the student's (official `weights_init` after the copy).
  heads = (jax.tree.leaves(fresh.params["head"]), jax.tree.leaves(fresh.teacher["params"]["head"]))
  assert any(not np.array_equal(a, b) for a, b in zip(*heads))
  # Official (SPEC §4.3): the MAMP weights go into student and teacher; both heads stay as initialised.
  state = tuning.load_init(state, tmp_path / "mamp")
  before = jax.device_get(state)
  for params, fresh_params in ((before.params, fresh.params), (before.teacher["params"], fresh.teacher["params"])):
    jax.tree.map(np.testing.assert_array_equal, encoder, {k: params[k] for k in encoder})
    jax.tree.map(np.testing.assert_array_equal, fresh_params["head"], params["head"])
  # The loaded state trains (its leaves own their buffers: a step donating one buffer twice would crash).
  state, metrics = step_fn(state, _batch(ablation_config, mesh))
  after = jax.device_get(state)
  assert np.isfinite(metrics["loss"])
  m = ablation_config.stars.moco.momentum if objective == "moco" else ablation_config.stars.dino.teacher_momentum
  if objective == "dino":
    np.testing.assert_allclose(metrics["teacher_momentum"], m, rtol=1e-7)  # cosine schedule at step 0
  # teacher' = m teacher + (1 - m) student, both before the step (float32: within a few ulp of each term).
  expected = jax.tree.map(lambda t, s: m * t + (1 - m) * s, before.teacher["params"], before.params)
  jax.tree.map(lambda e, a: np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-7), expected, after.teacher["params"])
  tuned = frozen = 0
  for label, a, b in zip(jax.tree.leaves(labels), jax.tree.leaves(before.params), jax.tree.leaves(after.params)):
    if label == FROZEN:
      np.testing.assert_array_equal(a, b)
      frozen += 1
    else:
      tuned += not np.array_equal(a, b)
  assert frozen and tuned
  if objective == "moco":
    _check_moco_queue(ablation_config, mesh, state, step_fn)


def _check_moco_queue(config, mesh, state, step_fn):
  """After step 1 of a fresh queue of 20, batch 8, pointer skip 2: steps 2 and 3 end at 0 and 10."""
  b, k, skip = config.stars.batch_size, config.stars.queue.size, config.stars.moco.pointer_skip
  ptrs = [int(state.queue.ptr)]
  for i in (1, 2):
    state, _ = step_fn(state, _batch(config, mesh, i))
    ptrs.append(int(state.queue.ptr))
  assert ptrs == [(b + skip) % k, (2 * (b + skip)) % k, (3 * (b + skip)) % k]  # 10, 0, 10
  ids = np.asarray(state.queue.ids)
  # Step 3 wrote rows 0..7 (ids 16..23); rows 8, 9 are the skipped ones, never written (id -1); step 2 wrote 10..17.
  np.testing.assert_array_equal(ids[:8], np.arange(16, 24))
  np.testing.assert_array_equal(ids[8:10], [-1, -1])
  np.testing.assert_array_equal(ids[10:18], np.arange(8, 16))
  np.testing.assert_allclose(np.linalg.norm(np.asarray(state.queue.embeddings), axis=1), 1.0, rtol=1e-6)


def test_moco_key_shuffle_leaves_keys_unchanged_under_global_batch_norm(ablation_config):
  mesh = sharding.make_mesh()
  model = factory.stars(ablation_config)
  clips = tuning.views(_batch(ablation_config, mesh)["x"], jax.random.PRNGKey(0), ablation_config)
  teacher = model.init(jax.random.PRNGKey(1), clips, train=False)
  plain, _ = moco.teacher_keys(model, teacher, clips, None, None)
  shuffled, _ = moco.teacher_keys(model, teacher, clips, jax.random.PRNGKey(3), mesh)
  # The permutation only reorders the 8-term BatchNorm sums (relative error <= 8 eps each); the unit keys agree
  # to a few times that.
  np.testing.assert_allclose(shuffled, plain, atol=1e-5)


def test_dino_targets_are_per_group_and_koleo_per_chunk(ablation_config):
  d = ablation_config.stars.dino
  rng = np.random.default_rng(0)
  t = jnp.asarray(rng.normal(size=(2, 8, 16)), jnp.float32)
  t = t / jnp.linalg.norm(t, axis=-1, keepdims=True)
  q = dino.targets(t, d)  # 2 groups of 4 samples x 2 views
  for g in range(2):
    rows = slice(4 * g, 4 * g + 4)
    own = losses.sinkhorn_knopp(jnp.concatenate([t[0, rows], t[1, rows]]), d.teacher_temperature, 3)
    np.testing.assert_allclose(jnp.concatenate([q[0, rows], q[1, rows]]), own, rtol=1e-6, atol=1e-9)
  d.sinkhorn_groups = 1
  assert not np.allclose(dino.targets(t, d), q, atol=1e-3)  # over the whole batch: other targets
  # KoLeo with two chunks per view: the sum over the four half-views (one group).
  k = dino.koleo(t, d)
  halves = [t[v, h * 4 : h * 4 + 4] for v in range(2) for h in range(2)]
  np.testing.assert_allclose(k, sum(losses.koleo_loss(c) for c in halves), rtol=1e-6)


def test_dino_momentum_schedule_is_the_official_cosine():
  d = stars.dino_group()
  m = lambda step: float(dino.teacher_momentum(jnp.asarray(step), d, 100))  # noqa: E731
  assert m(0) == pytest.approx(0.996, abs=1e-7)
  assert m(50) == pytest.approx(0.998, abs=1e-7)
  assert m(100) == pytest.approx(1.0, abs=1e-7) and m(150) == pytest.approx(1.0, abs=1e-7)


def test_moco_run_checkpoints_the_teacher_and_queue_and_a_tuning_checkpoint_restores_them(ablation_config, tmp_path):
  """Through the runner: the saved state carries teacher and key queue, and `stars.init` on that run restores them
  exactly (a third stage from a second). Resume itself is the runner's, tested for every stage in test_runner."""
  ablation_config.stars.objective = "moco"
  _encoder_checkpoint(ablation_config, tmp_path / "mamp")
  ablation_config.stars.update(init=str(tmp_path / "mamp"), max_steps=2)
  run = tune.train(ablation_config, tmp_path / "run", sharding.make_mesh(jax.devices()[:1]))
  assert int(run.state.queue.ptr) == 2 * (8 + 2) % 20  # two batches of 8 and two pointer skips of 2
  restored = tuning.load_init(_setup(ablation_config, jax.devices()[:1])[2], tmp_path / "run" / "checkpoints")
  for field in ("params", "batch_stats", "queue", "teacher"):
    jax.tree.map(
      np.testing.assert_array_equal,
      jax.device_get(getattr(restored, field)),
      jax.device_get(getattr(run.state, field)),
    )


def test_objective_settings_are_checked(ablation_config):
  mesh = sharding.make_mesh(jax.devices()[:1])
  ablation_config.stars.objective = "byol"
  with pytest.raises(ValueError, match="stars.objective='byol'"):
    tune.stage(ablation_config, mesh)
  ablation_config.stars.objective = "dino"
  ablation_config.stars.dino.sinkhorn_groups = 3
  with pytest.raises(ValueError, match="stars.dino.sinkhorn_groups=3"):
    tune.stage(ablation_config, mesh)
  ablation_config.stars.dino.sinkhorn_groups = 2
  ablation_config.stars.dino.koleo_chunks_per_view = 3
  with pytest.raises(ValueError, match="koleo_chunks_per_view=3"):
    tune.stage(ablation_config, mesh)
  ablation_config.stars.objective = "moco"
  ablation_config.stars.moco.pointer_skip = 20
  with pytest.raises(ValueError, match="stars.moco.pointer_skip=20"):
    tune.stage(ablation_config, mesh)
