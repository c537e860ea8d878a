"""The embedded default: MAMP pretraining, then STARS tuning, of a small model on the synthetic skeleton
dataset, on a CPU.

Same code path as the official recipes (configs/mamp_*.py, configs/stars_*.py); only sizes and run lengths
shrink so the job finishes in minutes on 2 CPU cores. The data are generated under data.synthetic.dir on
first use. Three of the 15 synthetic actions are held out of both training stages (the few-shot protocol's
novel classes). results.json and report.md compare the stage-1 and tuned encoders (next to a random one) on
kNN (`knn1.stage1`, `knn1.stars`, ...), the linear probe, few-shot / one-shot on the held-out classes, and
cluster quality (silhouette, k-means NMI / ARI); t-SNE and confusion plots go to plots/.
"""
from stars_jax import recipes
from stars_jax.evaluate import fewshot


def get_config():
  config = recipes.mamp_pretrain("ntu60", "xsub")
  config.stage = "pretrain_tune"
  config.data.path = ""                # '' = the synthetic dataset (stars_jax.data.synthetic)
  config.data.synthetic.split = "xsub"
  config.data.synthetic.num_classes = 15
  config.data.held_out_classes = fewshot.held_out_classes(15, 3)  # (4, 9, 14): 12 seen classes, 432 train clips
  config.data.window = 32              # shorter clips: 8 segments x 25 joints = 200 tokens per person
  config.model.update(dict(dim=64, depth=4, num_heads=4, decoder_dim=64, decoder_depth=2, decoder_heads=4))
  config.batch_size = 32
  # 80 epochs = 1040 steps: long enough for the stage-1 encoder to beat a random one on kNN, and for the tuning
  # to improve on it (benchmarks/results/stars_seeds_*.json; at 20-40 epochs it is barely past random init).
  config.optim.update(dict(epochs=80, warmup_epochs=2, lr=1e-3, min_lr=5e-4))
  config.checkpoint_every_steps = 100
  config.log_every_steps = 10
  config.probe.enabled = True
  # Stage 2: the official 'merged' recipe (upper half of the blocks, final norm, head; SPEC §4.1).
  config.stars = recipes.stars_options("merged", layer_decay=recipes.STARS_LAYER_DECAY["ntu60"])
  config.stars.update(dict(epochs=10, batch_size=32, head_hidden_dim=512))
  config.stars.queue.size = 320        # ~0.75 epoch of the 432 training clips, as 32768 is of NTU-60 XSub
  config.stars.monitor.batch_size = 128
  # Downstream: the official linear probe (augmented clips through the frozen encoder), shortened.
  config.linear = recipes.linear_options()
  config.linear.update(dict(epochs=10, batch_size=64, eval_batch_size=128))
  return config
