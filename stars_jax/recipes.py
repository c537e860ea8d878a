"""Official recipe values shared by the config files in `configs/` (numbers from SPEC §2.1, §3.1–3.2).

Config files call these builders and override what differs, so every official number lives in one place.
"""
import ml_collections

# Official npz file per (dataset, split), SPEC §1.4–1.5.
NPZ_FILES = {
    ("ntu60", "xsub"): "NTU60_XSub.npz",
    ("ntu60", "xview"): "NTU60_XView.npz",
    ("ntu120", "xsub"): "NTU120_XSub.npz",
    ("ntu120", "xset"): "NTU120_XSet.npz",
    ("pku1", "xsub"): "PKUv1_XSub.npz",
    ("pku2", "xsub"): "PKUv2_XSub.npz",
}


def data_config(path: str) -> ml_collections.ConfigDict:
  """Feeder settings of every official pretraining config (SPEC §1.6)."""
  return ml_collections.ConfigDict(dict(
      path=path,               # npz in the official layout; `synthetic` below is used when path is ''
      synthetic=ml_collections.ConfigDict(dict(
          dir="data/synthetic", split="xsub", num_classes=12, num_subjects=10, num_cameras=3,
          num_repetitions=2, seed=0)),
      window=120,              # frames after crop-resize
      train_p_interval=(0.5, 1.0),
      eval_p_interval=(0.95,),
      random_rot=True,
      rot_max=0.3,             # radians
      num_threads=4,           # grain reader threads per host
      prefetch=8,
  ))


def model_config(decoder_depth: int) -> ml_collections.ConfigDict:
  """MAMP encoder-decoder, SPEC §2.1."""
  return ml_collections.ConfigDict(dict(
      dim=256, depth=8, num_heads=8, mlp_ratio=4.0, t_patch=4, num_joints=25,
      decoder_dim=256, decoder_depth=decoder_depth, decoder_heads=8,
      compute_dtype="auto",    # 'auto': bfloat16 on GPU/TPU, float32 on CPU; or 'float32' / 'bfloat16'
      attention_impl="",       # jax.nn.dot_product_attention implementation: '' (auto), 'xla', 'cudnn'
  ))


def mamp_pretrain(dataset: str, split: str) -> ml_collections.ConfigDict:
  """The official MAMP stage-1 recipe for one dataset/split (SPEC §3.2)."""
  ntu120_or_pku = dataset in ("ntu120", "pku1", "pku2")
  config = ml_collections.ConfigDict()
  config.stage = "pretrain"
  config.seed = 0
  config.data = data_config(f"data/{NPZ_FILES[(dataset, split)]}")
  config.model = model_config(decoder_depth=5 if ntu120_or_pku else 3)
  config.masking = ml_collections.ConfigDict(dict(
      mask_ratio=0.9,
      tau=0.75 if dataset == "ntu120" else 0.80,  # motion_aware_tau; 0 = uniform masking (MAE baseline)
      motion_target=True,    # False: reconstruct positions (MAE baseline)
      normalize_target=True,  # norm_skes_loss
      motion_stride=1,
  ))
  config.batch_size = 128    # global: 4 GPUs x 32
  config.optim = ml_collections.ConfigDict(dict(
      epochs=400, warmup_epochs=20, lr=1e-3, min_lr=5e-4,
      b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.05,  # no decay on 1-D tensors and biases (timm 0.3.2)
  ))
  config.sharding = ml_collections.ConfigDict(dict(
      fsdp=False,              # True: shard parameters and optimizer state over the `data` axis
      fsdp_min_size=2 ** 16,   # tensors smaller than this stay replicated under FSDP
  ))
  config.checkpoint_every_steps = 2000
  config.keep_checkpoints = 3
  config.log_every_steps = 50
  config.max_steps = -1        # > 0 stops early (benchmarks, smoke runs); the schedule still spans all epochs
  config.probe = ml_collections.ConfigDict(dict(
      enabled=False,           # after training: kNN-1 / logistic probe of the encoder vs a random one
      batch_size=256,
  ))
  return config
