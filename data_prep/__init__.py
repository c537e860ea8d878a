"""Raw NTU RGB+D 60/120 and PKU-MMD I/II preprocessing into the official npz layout and TFDS builds.

See data_prep/README.md; the rules follow SPEC §1.1-1.5.
"""
