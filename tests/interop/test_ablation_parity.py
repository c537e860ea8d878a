"""One MoCo and one DINO tuning step against the official `net/moco.py` and `net/dino.py` with their processors'
optimizer groups, on identical weights and inputs (SPEC §4.11).

Runs with `pytest tests/interop --torch-reference DIR` (official MAMP/ and STARS/ checkouts, torch importable);
skipped otherwise. Weights travel official -> .pt -> `import_checkpoint` -> `stars.init`, so the import of the
ablation formats (student, teacher, MoCo's key queue) is part of the comparison. Criterion as in test_parity:
max |ours - official| <= 1e-5 * max |official|, float32. As there, the optimizer is compared on the official
gradients: some leaves have an exactly zero true gradient (attention key bias; before the projector's BatchNorm
the final norm's and the projector's biases) whose rounding noise Adam would turn into full steps.
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import parity_cases
import pytest
import recipe_files

from stars_jax import config_lib, sharding
from stars_jax.interop import parity, torch_checkpoint
from stars_jax.train import dino, moco, optim, runner, tune, tuning
from stars_jax.train.optim import FROZEN

TOL = 1e-5
CHECKS = parity.Differences(TOL)
DIM, HEADS, FRAMES, JOINTS, T_PATCH, HIDDEN, QUEUE, N, M, OUT = 32, 4, 16, 25, 4, 64, 64, 8, 2, 16
# The official DINO processor tunes blocks >= 4 whatever the depth (SPEC §7.18): depth 8 makes that the upper half.
DEPTH = 8
ENCODER = dict(**parity_cases.official_encoder(DEPTH, HEADS, FRAMES, JOINTS, T_PATCH), dim_feat=DIM, mask_ratio=0.0)


def perturb_teacher_head(torch, model) -> None:
  """Teacher head apart from the student's (official: `weights_init` after the copy)."""
  with torch.no_grad():
    for p in model.encoder_teacher.head.parameters():
      p.add_(0.1 * torch.randn_like(p))
    for p in model.encoder_student.head.parameters():
      p.add_(0.1 * torch.randn_like(p))


def ours_for(official_model, torch, tmp_path, data_path: str, objective: str):
  """Our tuning stage of `objective` initialised from the official model's saved state dict."""
  torch.save(official_model.state_dict(), tmp_path / "official.pt")
  torch_checkpoint.import_checkpoint(tmp_path / "official.pt", tmp_path / "ours")
  config = config_lib.load_config(f"{recipe_files.CONFIGS / objective}.py:ntu60_xsub_third")
  config.data.update(path=data_path, window=FRAMES, num_threads=1)
  config.model.update(dim=DIM, depth=DEPTH, num_heads=HEADS, compute_dtype="float32")
  config.stars.update(head_hidden_dim=HIDDEN, batch_size=N, init=str(tmp_path / "ours"))
  config.stars.queue.size = QUEUE
  config.stars.moco.pointer_skip = N  # the per-GPU batch: one rank here
  config.stars.dino.update(out_dim=OUT, sinkhorn_groups=1)  # Sinkhorn-Knopp over one rank's batch
  mesh = sharding.make_mesh(jax.devices()[:1])
  stage = tune.stage(config, mesh)
  state, step = runner.compile_stage(stage, mesh, config.sharding)  # the step as `runner.run` jits it
  state = tuning.load_init(state, config.stars.init)
  return config, state, step, stage.step.keywords


def official_optimizer(official_processor, model, torch, layer_decay: float):
  """The processor's `load_optimizer` (third stage) on the model: AdamW groups of the tuned tensors."""
  processor = types.SimpleNamespace(
    model=types.SimpleNamespace(encoder_student=model.encoder_student),
    io=types.SimpleNamespace(print_log=lambda *a: None),
    arg=types.SimpleNamespace(
      third_stage=True,
      model_args={"depth": DEPTH},
      base_lr=1e-3,
      layer_decay=layer_decay,
      optimizer="AdamW",
      weight_decay=1e-4,
      nesterov=False,
    ),
  )
  official_processor.load_optimizer(processor)
  return processor.optimizer


def official_after_step(model) -> tuple[dict, dict]:
  """The official model's student and teacher variables (ours' layout) after its step."""
  after = parity.state_dict(model)
  split = (
    lambda prefix: torch_checkpoint.to_flax(  # noqa: E731
      {k[len(prefix) :]: v for k, v in after.items() if k.startswith(prefix)}
    )
  )
  return split(torch_checkpoint.STUDENT), split(torch_checkpoint.TEACHER)


def compare_update(name, state, grads, raw_ref, keywords, after_student, zero_gradient=()) -> None:
  """Our gradients against the official ones (tuned tensors, relative to the largest; the `zero_gradient` leaves,
  whose true gradient is exactly zero, only bounded as noise), and our optimizer applied to the official
  gradients against the official step's parameters."""
  labels, tx = keywords["labels"], keywords["tx"]
  label_of = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(labels)[0]}
  tuned = lambda tree: {  # noqa: E731
    k: v
    for k, v in ((jax.tree_util.keystr(p), v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0])
    if label_of[k] != FROZEN
  }
  ours, reference = tuned(grads), tuned(raw_ref)
  scale = max(np.abs(g).max() for g in reference.values())
  for zero in zero_gradient:
    noise = max(np.abs(np.asarray(ours.pop(zero))).max(), np.abs(reference.pop(zero)).max()) / scale
    CHECKS.record(f"{name}: zero gradients (noise / largest)", noise)
    assert noise <= 10 * TOL, zero
  CHECKS.check_tree(f"{name}: gradients (tuned tensors)", ours, reference, tree_scale=True)
  full_ref = jax.tree.map(lambda p: np.zeros(p.shape, np.float32), jax.device_get(state.params))
  for path, g in jax.tree_util.tree_flatten_with_path(raw_ref)[0]:
    node = full_ref
    for key in path[:-1]:
      node = node[key.key]
    node[path[-1].key] = g
  updates, _ = tx.update(jax.tree.map(jnp.asarray, full_ref), state.opt_state, state.params)
  CHECKS.check_tree(
    f"{name}: params (same gradients)",
    {k: v for k, v in optim.apply_updates(state.params, updates, labels).items() if k in after_student},
    after_student,
  )


@pytest.mark.torch
def test_moco_step(official, tmp_path, tiny_config):
  """Keys, loss, teacher EMA and BN statistics, queue and its pointer (with the second advance), gradients and
  the optimizer of one MoCo step."""
  import torch

  with parity.cuda_on_cpu():
    model = official.moco.MOCO(
      base_encoder="net.transformer.Transformer",
      pretrain=True,
      feature_dim=DIM,
      queue_size=QUEUE,
      momentum=0.999,
      Temperature=0.07,
      predictor_hidden_dim=HIDDEN,
      **ENCODER,
    )
    perturb_teacher_head(torch, model)
    with torch.no_grad():
      model.queue_ptr.fill_(2 * N)
    config, state, step, keywords = ours_for(model, torch, tmp_path, tiny_config.data.path, "moco")
    x, ids = parity_cases.raw_samples(N, 0, second_person=True)
    clips = tuning.views(jnp.asarray(x), jax.random.PRNGKey(0), config)  # deterministic (p_interval [1.0])
    official_x = torch.from_numpy(parity.to_official_clips(clips))
    optimizer = official_optimizer(official.moco_processor, model, torch, 0.45)
    model.train()
    logits, labels = model(official_x, official_x.clone())
    model.update_ptr(logits.size(0))
    loss = torch.nn.CrossEntropyLoss()(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    raw_ref = parity_cases.official_grads(model.encoder_student)
    official.clr.clip_gradients(model.encoder_student, 3.0)
    optimizer.step()
  student, teacher = official_after_step(model)

  model_ours = keywords["model"]
  ema = {**state.teacher, "params": tuning.ema(state.teacher["params"], state.params, config.stars.moco.momentum)}
  keys, _ = moco.teacher_keys(model_ours, ema, clips, None, None)
  (loss_ours, _), grads = jax.value_and_grad(moco.loss_fn, has_aux=True)(
    state.params, state.batch_stats, model_ours, clips, keys, state.queue.embeddings, 0.07
  )
  CHECKS.check("moco step: loss (our loss_fn)", loss_ours, loss.detach().numpy())
  # As in NNCLR: the projector's BatchNorm removes a per-channel shift of the pooled feature common to every clip,
  # so the final norm's bias and the projector's bias have an exactly zero gradient.
  zero = ("['norm']['bias']", "['head']['projector_0']['bias']")
  compare_update("moco step", state, grads, raw_ref, keywords, student["params"], zero)

  new_state, metrics = step(state, {"x": jnp.asarray(x), "index": jnp.asarray(ids)})
  CHECKS.check("moco step: loss", metrics["loss"], loss.detach().numpy())
  CHECKS.check_tree("moco step: teacher params (EMA)", jax.device_get(new_state.teacher["params"]), teacher["params"])
  CHECKS.check_tree(
    "moco step: teacher BN statistics", jax.device_get(new_state.teacher["batch_stats"]), teacher["batch_stats"]
  )
  CHECKS.check_tree("moco step: student BN statistics", jax.device_get(new_state.batch_stats), student["batch_stats"])
  queue = torch_checkpoint.queue_to_flax(parity.state_dict(model))
  CHECKS.check("moco step: key queue", new_state.queue.embeddings, queue.embeddings)
  assert int(new_state.queue.ptr) == int(queue.ptr) == 4 * N  # 2N + N enqueued + N skipped


@pytest.mark.torch
def test_dino_step(official, tmp_path, tiny_config):
  """Teacher EMA at the schedule's first momentum, Sinkhorn-Knopp targets, cross-view loss plus KoLeo over the
  official chunks, gradients and the optimizer of one DINO step."""
  import torch

  model = official.dino.SkeletonDINO(
    base_encoder="net.transformer.Transformer", pretrain=True, feature_dim=OUT, dino_head=False, n_globals=2, **ENCODER
  )
  perturb_teacher_head(torch, model)
  config, state, step, keywords = ours_for(model, torch, tmp_path, tiny_config.data.path, "dino")
  x, ids = parity_cases.raw_samples(N, 1, second_person=True)
  clips = tuning.views(jnp.asarray(x), jax.random.PRNGKey(0), config)
  official_x = torch.from_numpy(parity.to_official_clips(clips))
  optimizer = official_optimizer(official.dino_processor, model, torch, 0.45)
  dino_loss = official.dino_loss.DINOLoss(
    out_dim=OUT,
    n_locals=0,
    n_globals=2,
    warmup_teacher_temp=0.01,
    teacher_temp=0.04,
    warmup_teacher_temp_epochs=0,
    nepochs=20,
    student_temp=0.1,
    centering_type="sinkhorn_knopp",
    batch_size=N,
  )
  koleo = official.koleo.KoLeoLoss()
  model.train()
  out_student, out_teacher = model([official_x, official_x.clone()], 0.996)  # the schedule's step-0 momentum
  loss, _, _ = dino_loss(out_student, out_teacher, -1)  # epoch 0 - 1, as the official loop passes
  loss = loss + 0.1 * sum(koleo(p) for p in out_student[: N * 4].chunk(4))  # n_locals read as n_globals
  optimizer.zero_grad()
  loss.backward()
  raw_ref = parity_cases.official_grads(model.encoder_student)
  official.clr.clip_gradients(model.encoder_student, 3.0)
  optimizer.step()
  student, teacher = official_after_step(model)

  model_ours, d = keywords["model"], config.stars.dino
  ema = tuning.ema(state.teacher["params"], state.params, d.teacher_momentum)
  teacher_out = model_ours.apply({"params": ema}, clips)
  teacher_out = teacher_out / jnp.linalg.norm(teacher_out, axis=-1, keepdims=True)
  CHECKS.check("dino step: teacher outputs", teacher_out, out_teacher[:N].detach().numpy())
  (loss_ours, _), grads = jax.value_and_grad(dino.loss_fn, has_aux=True)(
    state.params, model_ours, clips, teacher_out, d
  )
  CHECKS.check("dino step: loss (our loss_fn)", loss_ours, loss.detach().numpy())
  compare_update("dino step", state, grads, raw_ref, keywords, student["params"])

  new_state, metrics = step(state, {"x": jnp.asarray(x), "index": jnp.asarray(ids)})
  CHECKS.check("dino step: loss", metrics["loss"], loss.detach().numpy())
  CHECKS.check_tree("dino step: teacher params (EMA)", jax.device_get(new_state.teacher["params"]), teacher["params"])
