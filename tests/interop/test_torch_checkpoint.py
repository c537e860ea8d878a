"""Official checkpoint layout (SPEC §2.10 tables), import/export round trips, and imported checkpoints feeding
our training code. No torch needed: official files are written with torch when it is importable, else with
our zip writer in the same layout."""

import argparse
import collections
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from recipe_files import stars

from stars_jax import main as cli
from stars_jax import sharding, support_queue
from stars_jax.interop import export_torch, import_torch, pth, torch_checkpoint
from stars_jax.models.classifier import Classifier
from stars_jax.models.mamp import MAMP
from stars_jax.models.stars import STARS, DINOTuner
from stars_jax.train import checkpoint, tune, tuning
from stars_jax.train import state as state_lib


def block(p: str, d: int = 256, h: int = 1024) -> list:
  """SPEC §2.10 block(P): the 12 tensors of one transformer block, in state_dict order."""
  return [
    (f"{p}.norm1.weight", (d,)),
    (f"{p}.norm1.bias", (d,)),
    (f"{p}.attn.proj.weight", (d, d)),
    (f"{p}.attn.proj.bias", (d,)),
    (f"{p}.attn.qkv.weight", (3 * d, d)),
    (f"{p}.attn.qkv.bias", (3 * d,)),
    (f"{p}.norm2.weight", (d,)),
    (f"{p}.norm2.bias", (d,)),
    (f"{p}.mlp.fc1.weight", (h, d)),
    (f"{p}.mlp.fc1.bias", (h,)),
    (f"{p}.mlp.fc2.weight", (d, h)),
    (f"{p}.mlp.fc2.bias", (d,)),
  ]


def encoder(d=256, depth=8, tp=30, v=25, u=4, prefix="") -> list:
  return [
    (prefix + k, s)
    for k, s in [
      ("temp_embed", (1, tp, 1, d)),
      ("pos_embed", (1, 1, v, d)),
      ("joints_embed.proj.weight", (d, 3, u, 1)),
      ("joints_embed.proj.bias", (d,)),
      *sum((block(f"blocks.{i}", d, 4 * d) for i in range(depth)), []),
      ("norm.weight", (d,)),
      ("norm.bias", (d,)),
    ]
  ]


def table_a(decoder_depth: int, d=256, depth=8, tp=30, v=25, u=4) -> list:
  """SPEC §2.10 A: MAMP pretraining model."""
  enc = encoder(d, depth, tp, v, u)
  return [
    enc[0],
    enc[1],
    ("mask_token", (1, 1, d)),
    ("decoder_temp_embed", (1, tp, 1, d)),
    ("decoder_pos_embed", (1, 1, v, d)),
    *enc[2:],
    ("decoder_embed.weight", (d, d)),
    ("decoder_embed.bias", (d,)),
    *sum((block(f"decoder_blocks.{j}", d, 4 * d) for j in range(decoder_depth)), []),
    ("decoder_norm.weight", (d,)),
    ("decoder_norm.bias", (d,)),
    ("decoder_pred.weight", (3 * u, d)),
    ("decoder_pred.bias", (3 * u,)),
  ]


def table_b(c: int, d=256, depth=8, tp=30, v=25, hidden=2048) -> list:
  """SPEC §2.10 B: fine-tune model."""
  return [
    *encoder(d, depth, tp, v),
    ("head.bn.weight", (hidden,)),
    ("head.bn.bias", (hidden,)),
    ("head.bn.running_mean", (hidden,)),
    ("head.bn.running_var", (hidden,)),
    ("head.bn.num_batches_tracked", ()),
    ("head.fc1.weight", (hidden, v * d)),
    ("head.fc1.bias", (hidden,)),
    ("head.fc2.weight", (c, hidden)),
    ("head.fc2.bias", (c,)),
  ]


def table_c(c: int, d=256, depth=8, tp=30, v=25) -> list:
  """SPEC §2.10 C: linear-probe model after the BatchNorm surgery."""
  return [
    *encoder(d, depth, tp, v),
    ("head.fc.0.running_mean", (d,)),
    ("head.fc.0.running_var", (d,)),
    ("head.fc.0.num_batches_tracked", ()),
    ("head.fc.1.weight", (c, d)),
    ("head.fc.1.bias", (c,)),
  ]


def stars_model(d=256, depth=8, tp=30, v=25, hidden=4096, prefix="encoder_student.") -> list:
  """SPEC §2.10 D without the queue: encoder + PretrainHead under `prefix`."""
  s = prefix + "head."
  bn = lambda p, n: (
    [(f"{p}.{x}", (n,)) for x in ("weight", "bias", "running_mean", "running_var")]
    + [  # noqa
      (f"{p}.num_batches_tracked", ())
    ]
  )
  return [
    *encoder(d, depth, tp, v, prefix=prefix),
    *bn(s + "projector.0", d),
    (s + "predictor.0.weight", (hidden, d)),
    *bn(s + "predictor.1", hidden),
    (s + "predictor.3.weight", (d, hidden)),
    (s + "predictor.3.bias", (d,)),
  ]


def table_d(d=256, depth=8, tp=30, v=25, hidden=4096, k=32768) -> list:
  """SPEC §2.10 D: STARS tuning checkpoint."""
  return [("queue", (d, k)), ("queue_ptr", (1,)), ("queue_id", (k,)), *stars_model(d, depth, tp, v, hidden)]


def table_e(d=256, depth=8, tp=30, v=25, hidden=4096, k=32768) -> list:
  """SPEC §2.10 E: MoCo ablation checkpoint (key queue without ids; student and teacher as in D)."""
  return [
    ("queue", (d, k)),
    ("queue_ptr", (1,)),
    *stars_model(d, depth, tp, v, hidden),
    *stars_model(d, depth, tp, v, hidden, prefix="encoder_teacher."),
  ]


def table_f(d=256, depth=8, tp=30, v=25, out=128) -> list:
  """SPEC §2.10 F: DINO ablation checkpoint (`dino_head: False`): encoder + Linear head, student and teacher."""
  return [
    (f"{prefix}{k}", s)
    for prefix in ("encoder_student.", "encoder_teacher.")
    for k, s in [*encoder(d, depth, tp, v), ("head.weight", (out, d)), ("head.bias", (out,))]
  ]


BUFFERS = ("running_mean", "running_var", "num_batches_tracked", "queue", "queue_ptr", "queue_id")


def num_params(table) -> int:
  return sum(int(np.prod(s)) for k, s in table if k.split(".")[-1] not in BUFFERS)


def test_spec_tables_totals():
  """The tables above reproduce SPEC §2.10's counts, so they are a faithful transcription."""
  assert (len(table_a(3)), num_params(table_a(3))) == (147, 8_789_004)
  assert (len(table_a(5)), num_params(table_a(5))) == (171, 10_368_524)
  assert num_params(encoder()) == 6_336_000 and len(encoder()) == 102
  assert [num_params(table_b(c)) for c in (60, 120, 51)] == [19_572_284, 19_695_224, 19_553_843]
  assert num_params(table_c(60)) == 6_336_000 + 256 * 60 + 60
  assert num_params(table_d()) == 8_442_112


def zeros_like_init(model, *args, **kwargs) -> dict:
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *args, **kwargs))
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def layout(state: dict) -> list:
  return [(k, tuple(np.shape(v))) for k, v in state.items()]


CLIP = np.zeros((1, 2, 120, 25, 3), np.float32)


@pytest.mark.parametrize("decoder_depth", [3, 5])
def test_mamp_layout_matches_spec(decoder_depth):
  from stars_jax import masking

  model = MAMP(decoder_depth=decoder_depth)
  x = jnp.zeros((1, 120, 25, 3))
  variables = zeros_like_init(model, x, masking.masking_from_keep(jnp.zeros((1, 74), jnp.int32), 750))
  exported = torch_checkpoint.official_state(variables, "mamp")["model"]
  assert layout(exported) == table_a(decoder_depth)
  imported = torch_checkpoint.to_flax({k: np.zeros(s, np.float32) for k, s in table_a(decoder_depth)})
  assert jax.tree.map(np.shape, imported["params"]) == jax.tree.map(np.shape, variables["params"])


@pytest.mark.parametrize("protocol,table", [("finetune", table_b(60)), ("linear", table_c(60))])
def test_classifier_layout_matches_spec(protocol, table):
  variables = zeros_like_init(Classifier(num_classes=60, protocol=protocol), CLIP)
  assert layout(torch_checkpoint.official_state(variables, "mamp")["model"]) == table
  imported = torch_checkpoint.to_flax({k: np.zeros(s, np.float32) for k, s in table})
  assert jax.tree.map(np.shape, imported) == jax.tree.map(np.shape, variables)


def test_stars_layout_matches_spec():
  variables = zeros_like_init(STARS(), CLIP, train=False)
  variables["queue"] = support_queue.init(jax.random.PRNGKey(0), 32768, 256)
  assert layout(torch_checkpoint.official_state(variables, "stars")) == table_d()
  # The 'mamp' export of a STARS model is its encoder (what MAMP's downstream scripts load).
  assert layout(torch_checkpoint.official_state(variables, "mamp")["model"]) == encoder()


def test_ablation_layouts_match_spec():
  variables = zeros_like_init(STARS(), CLIP, train=False)
  moco = {**variables, "queue": support_queue.init(jax.random.PRNGKey(0), 32768, 256), "teacher": variables}
  assert layout(torch_checkpoint.official_state(moco, "moco")) == table_e()
  dino = zeros_like_init(DINOTuner(), CLIP, train=False)
  assert layout(torch_checkpoint.official_state({**dino, "teacher": dino}, "dino")) == table_f()
  # Their 'mamp' export is the student's encoder; a tuning format needs the teacher.
  assert layout(torch_checkpoint.official_state(dino, "mamp")["model"]) == encoder()
  with pytest.raises(ValueError, match="teacher"):
    torch_checkpoint.official_state(dino, "dino")


TINY = dict(d=32, depth=2, tp=4, v=25)


def random_official(kind: str, seed: int = 0) -> dict:
  """A tiny official-format checkpoint object (float32 tensors, int64 counters), as the official code saves."""
  rng = np.random.default_rng(seed)
  table = {
    "mamp": table_a(1, **TINY),
    "finetune": table_b(5, hidden=64, **TINY),
    "linear": table_c(5, **TINY),
    "stars": table_d(hidden=64, k=16, **TINY),
    "moco": table_e(hidden=64, k=16, **TINY),
    "dino": table_f(out=16, **TINY),
  }[kind]
  state = collections.OrderedDict()
  for k, s in table:
    if k.endswith("num_batches_tracked"):
      state[k] = np.asarray(7, np.int64)
    elif k == "queue_ptr":
      state[k] = np.asarray([8], np.int64)
    elif k == "queue_id":
      state[k] = rng.integers(-1, 100, s).astype(np.int64)
    else:
      state[k] = rng.normal(size=s).astype(np.float32)
  if kind in TUNING_KINDS:
    return state
  return {"model": state, "args": argparse.Namespace(model_args={"num_heads": 4}, lr=1e-3), "epoch": 399}


TUNING_KINDS = ("stars", "moco", "dino")  # raw state dicts; the others are {'model': ...}


def save_official(obj, path) -> None:
  try:
    import torch
  except ImportError:
    pth.save(obj, path)
    return
  convert = lambda v: torch.from_numpy(v) if isinstance(v, np.ndarray) else v  # noqa: E731
  if "model" in obj:
    obj = {**obj, "model": collections.OrderedDict((k, convert(v)) for k, v in obj["model"].items())}
  else:
    obj = collections.OrderedDict((k, convert(v)) for k, v in obj.items())
  torch.save(obj, path)


@pytest.mark.parametrize("kind", ["mamp", "finetune", "linear", "stars", "moco", "dino"])
def test_import_export_round_trip_is_exact(tmp_path, kind):
  source = random_official(kind)
  save_official(source, tmp_path / "official.pth")
  assert import_torch.main([str(tmp_path / "official.pth"), "--out", str(tmp_path / "ours")]) == 0
  assert export_torch.main([str(tmp_path / "ours"), "--out", str(tmp_path / "back.pth")]) == 0
  back = pth.load(tmp_path / "back.pth")
  original = source if kind in TUNING_KINDS else source["model"]
  back = back if kind in TUNING_KINDS else back["model"]
  assert list(back) == list(original)
  for k, v in original.items():
    expected = np.zeros_like(v) if k.endswith("num_batches_tracked") else v  # the counter is not kept
    assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], expected), k


def tiny_tune_config(init: str, data_path: str):
  config = stars.recipe("ntu60", "xsub", "third")
  config.data.update(path=data_path, window=16, num_threads=1)
  config.model.update(dim=32, depth=2, num_heads=4, compute_dtype="float32")
  config.stars.update(head_hidden_dim=64, batch_size=8, init=init)
  config.stars.queue.size = 16
  return config


@pytest.mark.parametrize("kind", ["mamp", "stars"])
def test_imported_checkpoint_initialises_stars(tmp_path, tiny_config, kind):
  """`stars.init=DIR` on an imported official checkpoint: the encoder (and for STARS the head, BatchNorm
  statistics and queue) equal the official tensors."""
  source = random_official(kind, seed=1)
  save_official(source, tmp_path / "official.pth")
  torch_checkpoint.import_checkpoint(tmp_path / "official.pth", tmp_path / "ours")
  config = tiny_tune_config(str(tmp_path / "ours"), tiny_config.data.path)
  mesh = sharding.make_mesh()
  stage = tune.stage(config, mesh)
  state, _ = state_lib.create_sharded(stage.create, mesh, config.sharding, stage.rules)
  fresh_head = jax.device_get(state.params["head"])
  state = tuning.load_init(state, config.stars.init)
  state_dict = source["model"] if kind == "mamp" else {k.removeprefix("encoder_student."): v for k, v in source.items()}
  expected = torch_checkpoint.to_flax({k: v for k, v in state_dict.items() if not k.startswith(("decoder", "mask"))})
  params = jax.device_get(state.params)
  for name in ("blocks_1", "joints_embed", "temp_embed", "norm"):
    assert jax.tree.all(jax.tree.map(np.array_equal, params[name], expected["params"][name]))
  if kind == "stars":
    assert jax.tree.all(jax.tree.map(np.array_equal, params["head"], expected["params"]["head"]))
    assert jax.tree.all(jax.tree.map(np.array_equal, jax.device_get(state.batch_stats), expected["batch_stats"]))
    np.testing.assert_array_equal(np.asarray(state.queue.embeddings), source["queue"].T)
    np.testing.assert_array_equal(np.asarray(state.queue.ids), source["queue_id"])
    assert int(state.queue.ptr) == 8
  else:
    assert jax.tree.all(jax.tree.map(np.array_equal, params["head"], fresh_head))  # head stays fresh (§4.3)


@pytest.mark.parametrize("kind", ["moco", "dino"])
def test_imported_ablation_checkpoint_initialises_its_objective(tmp_path, tiny_config, kind):
  """An official MoCo / DINO checkpoint as `stars.init` of that objective: student, teacher and MoCo's key queue
  (ids -1: the official queue has none) equal the official tensors."""
  source = random_official(kind, seed=2)
  save_official(source, tmp_path / "official.pth")
  info = torch_checkpoint.import_checkpoint(tmp_path / "official.pth", tmp_path / "ours")
  assert info["format"] == kind
  config = tiny_tune_config(str(tmp_path / "ours"), tiny_config.data.path)
  config.stars.objective = kind
  config.stars.moco.pointer_skip = 0
  config.stars.dino.update(out_dim=16, sinkhorn_groups=1)
  mesh = sharding.make_mesh(jax.devices()[:1])
  stage = tune.stage(config, mesh)
  state, _ = state_lib.create_sharded(stage.create, mesh, config.sharding, stage.rules)
  state = jax.device_get(tuning.load_init(state, config.stars.init))
  for prefix, variables in (("encoder_student.", state), ("encoder_teacher.", None)):
    expected = torch_checkpoint.to_flax({k.removeprefix(prefix): v for k, v in source.items() if k.startswith(prefix)})
    ours = {"params": state.params, "batch_stats": state.batch_stats} if variables is not None else state.teacher
    assert jax.tree.all(jax.tree.map(np.array_equal, ours["params"], expected["params"])), prefix
    assert jax.tree.all(jax.tree.map(np.array_equal, ours["batch_stats"], expected["batch_stats"])), prefix
  if kind == "moco":
    np.testing.assert_array_equal(np.asarray(state.queue.embeddings), source["queue"].T)
    assert (np.asarray(state.queue.ids) == -1).all() and int(state.queue.ptr) == 8


def test_imported_classifier_restores_into_the_classifier(tmp_path):
  save_official(random_official("finetune"), tmp_path / "official.pth")
  info = torch_checkpoint.import_checkpoint(tmp_path / "official.pth", tmp_path / "ours")
  assert info["kind"] == "finetune" and info["num_classes"] == 5 and info["epoch"] == 399
  assert info["args"]["model_args"] == {"num_heads": 4}
  model = Classifier(
    dim=32, depth=2, num_heads=4, num_frames=16, num_classes=5, protocol="finetune", head_hidden_dim=64
  )
  target = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, 2, 16, 25, 3), np.float32)))
  restored = checkpoint.restore_fields(checkpoint.latest_item_path(tmp_path / "ours"), target)
  assert jax.tree.map(np.shape, restored) == jax.tree.map(np.shape, target)


def test_subcommands_registered():
  assert cli._SUBCOMMANDS["import-torch"] == import_torch.__name__
  assert cli._SUBCOMMANDS["export-torch"] == export_torch.__name__


def test_pth_reader_details(tmp_path):
  """Strided, 0-d and bfloat16 tensors; shared storages; Namespace; a non-zip file is refused."""
  import ml_dtypes

  base = np.arange(12, dtype=np.float32).reshape(3, 4)
  obj = {
    "t": base.T,
    "s": np.asarray(5, np.int64),
    "b": np.ones(3, ml_dtypes.bfloat16),
    "args": argparse.Namespace(lr=0.1),
    "nested": [1, "x", (2.5, None)],
  }
  pth.save(obj, tmp_path / "a.pth")
  back = pth.load(tmp_path / "a.pth")
  np.testing.assert_array_equal(back["t"], base.T)
  assert back["s"].shape == () and back["s"] == 5 and back["b"].dtype == ml_dtypes.bfloat16
  assert back["args"].lr == 0.1 and back["nested"] == [1, "x", (2.5, None)]
  (tmp_path / "legacy.pth").write_bytes(pickle.dumps({"a": 1}))
  with pytest.raises(ValueError, match="not a zip-format"):
    pth.load(tmp_path / "legacy.pth")


def test_pth_reader_never_calls_unknown_globals(tmp_path):
  """A pickle that would call os.system when unpickled normally yields an inert Opaque record."""
  payload = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."  # os.system("true"), protocol 2
  with zipfile.ZipFile(tmp_path / "evil.pth", "w") as archive:
    archive.writestr("archive/data.pkl", payload)
  result = pth.load(tmp_path / "evil.pth")
  assert isinstance(result, pth.Opaque) and result.qualname == "os.system" and result.args == ("true",)


def test_import_and_export_errors_are_one_line_naming_the_file(tmp_path, capsys):
  assert import_torch.main([str(tmp_path / "missing.pth"), "--out", str(tmp_path / "out")]) == 2
  assert capsys.readouterr().err.strip() == f"stars-jax import-torch: {tmp_path}/missing.pth: no such file"
  (tmp_path / "ckpt" / "7").mkdir(parents=True)  # a step directory without its state/ item
  assert export_torch.main([str(tmp_path / "ckpt"), "--out", str(tmp_path / "x.pth")]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith(f"stars-jax export-torch: {tmp_path}/ckpt (export-torch DIRECTORY): no readable checkpoint")
  assert "step 7" in err and len(err.splitlines()) == 1
  assert not (tmp_path / "x.pth").exists()
