"""Numerical parity with the official PyTorch code on identical weights and inputs (SPEC §2, §4.2-4.6).

Runs with `pytest tests/interop --torch-reference DIR` where DIR holds checkouts DIR/MAMP and DIR/STARS, and
torch is importable; skipped otherwise (marker `torch`). Weights travel official -> .pth -> `import_checkpoint`
-> ours, so the import path is part of every comparison. Criterion: max |ours - official| <= 1e-5 *
max |official|, float32.
"""

import argparse
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import parity_cases
import pytest
from recipe_files import mamp, stars

from stars_jax import losses, masking, sharding
from stars_jax.interop import parity, torch_checkpoint
from stars_jax.models import factory
from stars_jax.models.classifier import Classifier
from stars_jax.models.mamp import MAMP, Encoder
from stars_jax.models.stars import STARS
from stars_jax.train import nnclr, optim, runner, tune, tuning
from stars_jax.train import state as state_lib
from stars_jax.train.optim import FROZEN

TOL = 1e-5
DIM, DEPTH, HEADS, FRAMES, JOINTS, T_PATCH, HIDDEN, QUEUE, N, M = 32, 2, 4, 16, 25, 4, 64, 64, 8, 2
ENCODER = parity_cases.official_encoder(DEPTH, HEADS, FRAMES, JOINTS, T_PATCH)


CHECKS = parity.Differences(TOL)
check, check_tree = CHECKS.check, CHECKS.check_tree


def clips(seed: int = 0) -> np.ndarray:
  """(N, M, T, V, C) smooth random motion; the second person is absent in half of the clips (NTU-60 style)."""
  rng = np.random.default_rng(seed)
  x = np.cumsum(rng.normal(scale=0.05, size=(N, M, FRAMES, JOINTS, 3)), axis=2)
  x += rng.normal(size=(N, M, 1, JOINTS, 3))
  x[::2, 1] = 0.0
  return x.astype(np.float32)


def imported(torch, obj, tmp_path) -> dict:
  """Saves an official checkpoint object, imports it, and reads our variables back."""
  torch.save(obj, tmp_path / "official.pth")
  torch_checkpoint.import_checkpoint(tmp_path / "official.pth", tmp_path / "ours")
  return torch_checkpoint.read_checkpoint(tmp_path / "ours")


def mamp_pair(official, torch, tmp_path):
  model = official.mamp.Transformer(dim_feat=DIM, decoder_dim_feat=DIM, decoder_depth=1, norm_skes_loss=True, **ENCODER)
  params = imported(torch, {"model": model.state_dict(), "args": argparse.Namespace(), "epoch": 0}, tmp_path)["params"]
  ours = MAMP(
    dim=DIM,
    depth=DEPTH,
    num_heads=HEADS,
    num_frames=FRAMES,
    num_joints=JOINTS,
    t_patch=T_PATCH,
    decoder_dim=DIM,
    decoder_depth=1,
    decoder_heads=HEADS,
  )
  return model, ours, jax.tree.map(jnp.asarray, params)


def official_mamp_forward(model, torch, x: np.ndarray):
  """Official forward (loss, pred, mask) and the keep indices its masking drew."""
  drawn = []
  masking_fn = model.motion_aware_random_masking
  model.motion_aware_random_masking = lambda *a: drawn.append(masking_fn(*a)) or drawn[-1]
  loss, pred, mask = model(
    torch.from_numpy(parity.to_official_clips(x)), mask_ratio=0.9, motion_stride=1, motion_aware_tau=0.8
  )
  return loss, pred, mask, drawn[-1][3].numpy()


def ours_mamp_loss(params, ours: MAMP, x: np.ndarray, ids_keep: np.ndarray):
  folded = jnp.asarray(x).reshape(N * M, FRAMES, JOINTS, 3)
  mask = masking.masking_from_keep(jnp.asarray(ids_keep), ours.num_tokens)
  pred = ours.apply({"params": params}, folded, mask)
  target = losses.reconstruction_target(folded, t_patch=T_PATCH)
  return losses.masked_mse(pred, target, mask.mask), (pred, mask.mask)


@pytest.mark.torch
def test_motion_aware_masking_same_noise(official):
  """motion_aware_masking given the official uniform draws keeps the same tokens in the same order."""
  import torch

  model = official.mamp.Transformer(dim_feat=DIM, decoder_dim_feat=DIM, decoder_depth=1, **ENCODER)
  x = clips().reshape(N * M, FRAMES, JOINTS, 3)
  u = np.random.default_rng(1).random((N * M, FRAMES // T_PATCH * JOINTS), dtype=np.float32)
  tokens = torch.zeros(N * M, u.shape[1], DIM)
  rand = torch.rand
  torch.rand = lambda *a, **k: torch.from_numpy(u)
  try:
    x_orig = model.patchify(torch.from_numpy(x)).reshape(N * M, FRAMES // T_PATCH, JOINTS, -1)
    _, mask_ref, _, keep_ref = model.motion_aware_random_masking(tokens, x_orig, 0.9, 0.8)
  finally:
    torch.rand = rand
  num_keep = masking.num_visible(u.shape[1], 0.9)
  ours = masking.motion_aware_masking(
    None, jnp.asarray(x), t_patch=T_PATCH, num_keep=num_keep, tau=0.8, noise=jnp.asarray(u)
  )
  np.testing.assert_array_equal(np.asarray(ours.ids_keep), keep_ref.numpy())
  np.testing.assert_array_equal(np.asarray(ours.mask), mask_ref.numpy())


@pytest.mark.torch
def test_mamp_decoder_and_loss(official, tmp_path):
  import torch

  model, ours, params = mamp_pair(official, torch, tmp_path)
  x = clips()
  with torch.no_grad():
    loss, pred, mask, ids_keep = official_mamp_forward(model, torch, x)
  our_loss, (our_pred, our_mask) = ours_mamp_loss(params, ours, x, ids_keep)
  np.testing.assert_array_equal(np.asarray(our_mask), mask.numpy())
  check("mamp decoder prediction", our_pred, pred.numpy())
  check("mamp loss", our_loss, loss.numpy())


@pytest.mark.torch
def test_mamp_optimizer_step(official, tmp_path):
  """One stage-1 step (timm weight-decay groups, AdamW betas 0.9/0.95, wd 0.05) on the same masking: the
  gradients, then our optimizer's step from the official gradients. (Comparing parameters after two
  independent steps is ill-conditioned: Adam's first update is lr * sign(g), so gradient entries that are
  zero up to rounding flip by 2 lr.)"""
  import torch

  model, ours, params = mamp_pair(official, torch, tmp_path)
  x = clips(1)
  optimizer = torch.optim.AdamW(parity.weight_decay_groups(model, 0.05), lr=1e-3, betas=(0.9, 0.95))
  loss, _, _, ids_keep = official_mamp_forward(model, torch, x)
  optimizer.zero_grad()
  loss.backward()
  grads_ref = parity_cases.official_grads(model)
  optimizer.step()
  grads = jax.grad(lambda p: ours_mamp_loss(p, ours, x, ids_keep)[0])(params)
  check_tree("mamp step: gradients", grads, grads_ref)
  o = mamp.pretrain_group("ntu60").optim  # the stage-1 recipe's optimizer (what pretrain.stage builds)
  assert (o.name, o.lr, o.b1, o.b2, o.eps, o.weight_decay, o.decay_groups, o.layer_decay, o.clip) == (
    "adamw",
    1e-3,
    0.9,
    0.95,
    1e-8,
    0.05,
    "no_1d",
    1.0,
    "none",
  )
  labels = optim.param_labels(params, ours.depth)
  tx = optim.make_optimizer(o, optax.constant_schedule(o.lr), labels, ours.depth)
  updates, _ = tx.update(jax.tree.map(jnp.asarray, grads_ref), tx.init(params), params)
  new_params = optim.apply_updates(params, updates, labels)
  after = torch_checkpoint.to_flax(parity.state_dict(model))["params"]
  check_tree("mamp step: params (same gradients)", new_params, after)


@pytest.mark.torch
@pytest.mark.parametrize("protocol", ["linear", "finetune"])
def test_encoder_and_classifier_heads(official, tmp_path, protocol):
  """Encoder features (final norm) and logits of the linear-probe / fine-tune model, train and eval BN."""
  import torch

  kwargs = dict(dim_feat=DIM, num_classes=5, **ENCODER)
  if protocol == "linear":
    model = parity.linprobe(official, **kwargs)
  else:
    model = official.downstream.Transformer(protocol="finetune", **kwargs)
    model.head.dropout.p = 0.0
  with torch.no_grad():
    for p in model.head.parameters():
      p.add_(0.1 * torch.randn_like(p))
  variables = imported(torch, {"model": model.state_dict()}, tmp_path)
  ours = Classifier(
    dim=DIM,
    depth=DEPTH,
    num_heads=HEADS,
    num_frames=FRAMES,
    num_joints=JOINTS,
    t_patch=T_PATCH,
    num_classes=5,
    protocol=protocol,
    head_hidden_dim=2048,
    head_dropout=0.0,
  )
  features = []
  model.norm.register_forward_hook(lambda m, i, o: features.append(o.detach().numpy()))
  x = clips()
  official_x = torch.from_numpy(parity.to_official_clips(x))
  with torch.no_grad():
    model.train()
    logits_train = model(official_x).numpy()
    model.eval()
    logits_eval = model(official_x).numpy()
  encoder = Encoder(dim=DIM, depth=DEPTH, num_heads=HEADS, num_frames=FRAMES, num_joints=JOINTS, t_patch=T_PATCH)
  our_features = encoder.apply({"params": {k: v for k, v in variables["params"].items() if k != "head"}}, x)
  check("encoder features", np.asarray(our_features).reshape(features[0].shape), features[0])
  our_train, updated = ours.apply(variables, x, train=True, mutable=["batch_stats"])
  check(f"{protocol} head logits (train)", our_train, logits_train)
  check_tree(
    f"{protocol} head BN statistics",
    updated["batch_stats"],
    torch_checkpoint.to_flax(parity.state_dict(model))["batch_stats"],
  )
  check(f"{protocol} head logits (eval)", ours.apply({**variables, **updated}, x, train=False), logits_eval)


def stars_pair(official, torch, tmp_path, data_path: str):
  """An official SkeletonNNCLR with perturbed head and a filled queue, and our tuning state imported from it
  through the STARS stage (`tune.stage`: state creation, `tuning.load_init`). `data_path`: an npz for the
  stage's splits (opened when the stage is built, never read here), e.g. the `tiny_config` fixture's."""
  model = parity.nnclr(
    official,
    pretrain=True,
    feature_dim=DIM,
    queue_size=QUEUE,
    Temperature=0.07,
    topk=0,
    dim_feat=DIM,
    predictor_hidden_dim=HIDDEN,
    mask_ratio=0.0,
    **ENCODER,
  )
  with torch.no_grad():
    for p in model.encoder_student.head.parameters():
      p.add_(0.1 * torch.randn_like(p))
    model.queue_id.copy_(torch.randint(-1, 2 * N, (QUEUE,)))
    model.queue_ptr.fill_(N)
  torch.save(model.state_dict(), tmp_path / "stars.pt")
  torch_checkpoint.import_checkpoint(tmp_path / "stars.pt", tmp_path / "stars")
  config = stars.recipe("ntu60", "xsub", "merged")
  config.data.update(path=data_path, window=FRAMES, num_threads=1)
  config.model.update(dim=DIM, depth=DEPTH, num_heads=HEADS, compute_dtype="float32")
  config.stars.update(head_hidden_dim=HIDDEN, batch_size=N, init=str(tmp_path / "stars"))
  config.stars.queue.size = QUEUE
  ours = factory.stars(config)
  mesh = sharding.make_mesh()
  stage = tune.stage(config, mesh)
  state, step = runner.compile_stage(stage, mesh, config.sharding)  # the step as `runner.run` jits it
  state = tuning.load_init(state, config.stars.init)
  # The stage's optimizer, rebuilt here to apply it to given gradients (its schedule is constant).
  labels = optim.param_labels(state.params, ours.depth, ours.first_tuned_layer)
  tx = optim.make_optimizer(config.stars.optim, optim.make_schedule(config.stars, 10), labels, ours.depth)
  return model, ours, config, state, (step, tx, labels)


@pytest.mark.torch
def test_stars_head_outputs(official, tmp_path, tiny_config):
  """STARS projector z and predictor p (train-mode BN, then eval with the updated running statistics)."""
  import torch

  model, ours, config, state, _ = stars_pair(official, torch, tmp_path, tiny_config.data.path)
  x = clips()
  encoder = model.encoder_student
  official_x = torch.from_numpy(parity.to_official_clips(x))
  with torch.no_grad():
    encoder.train()
    p_train, z_train = encoder(official_x)
    encoder.eval()
    p_eval, z_eval = encoder(official_x)
  single = STARS(
    **{
      f.name: getattr(ours, f.name)
      for f in ours.__dataclass_fields__.values()
      if f.name not in ("parent", "name", "bn_updates_per_step")
    },
    bn_updates_per_step=1,
  )
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  (p, z), updated = single.apply(variables, x, train=True, mutable=["batch_stats"])
  check("stars projector z (train)", z, z_train.numpy())
  check("stars predictor p (train)", p, p_train.numpy())
  check_tree(
    "stars BN statistics",
    updated["batch_stats"],
    torch_checkpoint.to_flax(
      {k[len("encoder_student.") :]: v for k, v in parity.state_dict(model).items() if k.startswith("encoder_student.")}
    )["batch_stats"],
  )
  p, z = single.apply({**variables, **updated}, x, train=False)
  check("stars projector z (eval)", z, z_eval.numpy())
  check("stars predictor p (eval)", p, p_eval.numpy())


@pytest.mark.torch
def test_stars_optimizer_step(official, tmp_path, tiny_config):
  """One STARS 'merged' step. Our jitted `nnclr.train_step` against the official processor's step: loss, BN
  statistics (moved twice), queue; the gradients of the tuned tensors; and our optimizer (per-tensor clipping,
  AdamW groups with layer decay, frozen layers) from the official gradients (see test_mamp_optimizer_step)."""
  import torch

  model, ours, config, state, (step, tx, labels) = stars_pair(official, torch, tmp_path, tiny_config.data.path)
  x, ids = parity_cases.raw_samples(N)
  clips_ = tuning.views(jnp.asarray(x), jax.random.PRNGKey(0), config)  # deterministic (p_interval [1.0])
  processor = types.SimpleNamespace(
    model=types.SimpleNamespace(encoder_student=model.encoder_student),
    io=types.SimpleNamespace(print_log=lambda *a: None),
    arg=types.SimpleNamespace(
      third_stage=True,
      model_args={"depth": DEPTH},
      base_lr=1e-3,
      layer_decay=0.45,
      fully_tune=False,
      optimizer="AdamW",
      weight_decay=0.05,
      nesterov=False,
    ),
  )
  official.clr.CLRTuningProcessor.load_optimizer(processor)
  model.train()
  official_x = torch.from_numpy(parity.to_official_clips(clips_))
  loss = model(official_x, official_x.clone(), torch.from_numpy(ids))
  processor.optimizer.zero_grad()
  loss.backward()
  raw_ref = parity_cases.official_grads(model.encoder_student)
  official.clr.clip_gradients(model.encoder_student, 3.0)
  processor.optimizer.step()
  after = parity.state_dict(model)
  student = torch_checkpoint.to_flax(
    {k[len(torch_checkpoint.STUDENT) :]: v for k, v in after.items() if k.startswith(torch_checkpoint.STUDENT)}
  )

  grads, _ = jax.grad(nnclr.loss_fn, has_aux=True)(
    state.params, state.batch_stats, ours, clips_, jnp.asarray(ids), state.queue, None, config.stars
  )
  label_of = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(labels)[0]}
  tuned = lambda tree: {
    k: v
    for k, v in (
      (jax.tree_util.keystr(p), v)
      for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]  # noqa: E731
    )
    if label_of[k] != FROZEN
  }
  grads, grads_ref = tuned(grads), tuned(raw_ref)
  # The projector's BatchNorm removes any per-channel shift of the pooled feature h that is the same for every
  # clip, so the gradients of norm.bias and projector.0.bias are exactly zero: both sides hold rounding noise.
  scale = max(np.abs(g).max() for g in grads_ref.values())
  for zero in ("['norm']['bias']", "['head']['projector_0']['bias']"):
    noise = max(np.abs(np.asarray(grads.pop(zero))).max(), np.abs(grads_ref.pop(zero)).max()) / scale
    CHECKS.record("stars step: zero gradients (noise / largest)", noise)
    assert noise <= 10 * TOL
  # Other gradients relative to the largest one (several nearly cancel, e.g. the last block's biases).
  check_tree("stars step: gradients (tuned tensors)", grads, grads_ref, tree_scale=True)
  updates, _ = tx.update(jax.tree.map(jnp.asarray, raw_ref), state.opt_state, state.params)
  check_tree(
    "stars step: params (same gradients)", optim.apply_updates(state.params, updates, labels), student["params"]
  )

  new_state, metrics = step(state, {"x": jnp.asarray(x), "index": jnp.asarray(ids, jnp.int32)})  # donates state
  check("stars step: loss", metrics["loss"], loss.detach().numpy())
  check_tree("stars step: BN statistics", jax.device_get(new_state.batch_stats), student["batch_stats"])
  queue = torch_checkpoint.queue_to_flax(after)
  check("stars step: queue", new_state.queue.embeddings, queue.embeddings)
  np.testing.assert_array_equal(np.asarray(new_state.queue.ids), np.asarray(queue.ids))
  assert int(new_state.queue.ptr) == int(queue.ptr)


@pytest.mark.torch
def test_our_checkpoints_load_in_official_models(official, tmp_path, tiny_config):
  """Training states of ours (STARS and MAMP), saved by our Checkpointer and exported, load into the official
  models with strict key matching (MAMP's linear-probe loader: only head.fc missing) and give our outputs."""
  import torch

  from stars_jax.train import checkpoint, pretrain

  model, ours, config, state, _ = stars_pair(official, torch, tmp_path, tiny_config.data.path)
  state = state.replace(params=jax.tree.map(lambda p: p + 0.01, state.params))  # differ from the official init
  ckpt = checkpoint.Checkpointer(tmp_path / "ours_stars")
  ckpt.save(state, {})
  ckpt.close()
  assert torch_checkpoint.export_checkpoint(tmp_path / "ours_stars", tmp_path / "stars.pt") == "stars"
  model.load_state_dict(torch.load(tmp_path / "stars.pt", weights_only=True), strict=True)
  x = clips()
  with torch.no_grad():
    p_ref, z_ref = model.encoder_student.eval()(torch.from_numpy(parity.to_official_clips(x)))
  p, z = ours.apply({"params": state.params, "batch_stats": state.batch_stats}, x, train=False)
  check("exported stars: predictor p (eval)", p, p_ref.numpy())
  check("exported stars: projector z (eval)", z, z_ref.numpy())

  mamp_config = mamp.recipe("ntu60", "xsub")
  mamp_config.data.update(path=config.data.path, window=FRAMES, num_threads=1)
  mamp_config.model.update(
    dim=DIM,
    depth=DEPTH,
    num_heads=HEADS,
    decoder_dim=DIM,
    decoder_depth=1,
    decoder_heads=HEADS,
    compute_dtype="float32",
  )
  mesh = sharding.make_mesh()
  mamp_stage = pretrain.stage(mamp_config)
  mamp_state, _ = state_lib.create_sharded(mamp_stage.create, mesh, mamp_config.sharding)
  ckpt = checkpoint.Checkpointer(tmp_path / "ours_mamp")
  ckpt.save(mamp_state, {})
  ckpt.close()
  assert torch_checkpoint.export_checkpoint(tmp_path / "ours_mamp", tmp_path / "mamp.pth") == "mamp"
  exported = torch.load(tmp_path / "mamp.pth", weights_only=True)
  official.mamp.Transformer(dim_feat=DIM, decoder_dim_feat=DIM, decoder_depth=1, **ENCODER).load_state_dict(
    exported["model"], strict=True
  )
  probe = official.downstream.Transformer(protocol="linprobe", dim_feat=DIM, num_classes=5, **ENCODER)
  result = probe.load_state_dict(exported["model"], strict=False)  # as MAMP's main_linprobe.py loads
  assert set(result.missing_keys) == {"head.fc.weight", "head.fc.bias"}
  features = []
  probe.norm.register_forward_hook(lambda m, i, o: features.append(o.detach().numpy()))
  with torch.no_grad():
    probe.eval()(torch.from_numpy(parity.to_official_clips(x)))
  encoder = Encoder(dim=DIM, depth=DEPTH, num_heads=HEADS, num_frames=FRAMES, num_joints=JOINTS, t_patch=T_PATCH)
  ours_features = encoder.apply(
    {"params": {k: v for k, v in mamp_state.params.items() if not k.startswith(("decoder", "mask"))}}, x
  )
  check("exported mamp: encoder features", np.asarray(ours_features).reshape(features[0].shape), features[0])
