"""The `pipeline` job: every multi-stage job (the main job, the tuning ablation, the real-data recipes, a paper
row) as steps in order, each reading an earlier step's output.

steps.py      a pipeline config's steps, each resolved to the config of the job it runs and its paths
inputs.py     the check of every input file (npz keys and shapes, checkpoint layout) before anything trains
estimate.py   the plan's time per step, from a short measured warm-up of its step and evaluation functions
run_step.py   runs one step (the training stages through stars_jax.train, kNN, few-shot and probe directly)
job.py        the job: plan, then every step in order (skipped when complete), then the table and report.md
"""
