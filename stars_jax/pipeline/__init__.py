"""The `pipeline` job: a paper row with one command (configs/paper.py).

stages.py     a pipeline config's stages, each resolved to the config of the job it runs and its paths
inputs.py     the check of every input file (npz keys and shapes, checkpoint layout) before anything trains
estimate.py   the plan's time per stage, from a short measured warm-up of its step and evaluation functions
run_stage.py  runs one stage (the training stages through stars_jax.train, kNN and few-shot directly)
published.py  the published numbers (SPEC §5.1, §5.2) and report.md
job.py        the job: plan, then every stage in order (skipped when complete), then the report
"""
