"""Action names of a dataset's labels (label i = the i-th name), for plot legends and tick labels.

The synthetic dataset names its actions (`synthetic_motions.ACTIONS`, or the `data.synthetic.actions` chosen).
A real npz with a `<stem>.classes.txt` beside it (written by `stars-jax prepare nwucla|kinect`) has the names on
its lines. Otherwise a real dataset is recognised by its number of classes only (a data config names a file, not a
dataset): 60 and 120 are NTU RGB+D 60 / 120 (label i = action A(i+1)); any other count (e.g. PKU-MMD's 51) has no
names.
"""

import pathlib

import ml_collections

from stars_jax.data import synthetic_motions

# NTU RGB+D 120 actions A1..A120 (the official list; A1..A60 are NTU RGB+D 60, A50..A60 and A106..A120 mutual).
NTU120_ACTIONS = (
  "drink water",
  "eat meal/snack",
  "brushing teeth",
  "brushing hair",
  "drop",
  "pickup",
  "throw",
  "sitting down",
  "standing up (from sitting position)",
  "clapping",
  "reading",
  "writing",
  "tear up paper",
  "wear jacket",
  "take off jacket",
  "wear a shoe",
  "take off a shoe",
  "wear on glasses",
  "take off glasses",
  "put on a hat/cap",
  "take off a hat/cap",
  "cheer up",
  "hand waving",
  "kicking something",
  "reach into pocket",
  "hopping (one foot jumping)",
  "jump up",
  "make a phone call/answer phone",
  "playing with phone/tablet",
  "typing on a keyboard",
  "pointing to something with finger",
  "taking a selfie",
  "check time (from watch)",
  "rub two hands together",
  "nod head/bow",
  "shake head",
  "wipe face",
  "salute",
  "put the palms together",
  "cross hands in front (say stop)",
  "sneeze/cough",
  "staggering",
  "falling",
  "touch head (headache)",
  "touch chest (stomachache/heart pain)",
  "touch back (backache)",
  "touch neck (neckache)",
  "nausea or vomiting condition",
  "use a fan (with hand or paper)/feeling warm",
  "punching/slapping other person",
  "kicking other person",
  "pushing other person",
  "pat on back of other person",
  "point finger at the other person",
  "hugging other person",
  "giving something to other person",
  "touch other person's pocket",
  "handshaking",
  "walking towards each other",
  "walking apart from each other",
  "put on headphone",
  "take off headphone",
  "shoot at the basket",
  "bounce ball",
  "tennis bat swing",
  "juggling table tennis balls",
  "hush (quiet)",
  "flick hair",
  "thumb up",
  "thumb down",
  "make ok sign",
  "make victory sign",
  "staple book",
  "counting money",
  "cutting nails",
  "cutting paper (using scissors)",
  "snapping fingers",
  "open bottle",
  "sniff (smell)",
  "squat down",
  "toss a coin",
  "fold paper",
  "ball up paper",
  "play magic cube",
  "apply cream on face",
  "apply cream on hand back",
  "put on bag",
  "take off bag",
  "put something into a bag",
  "take something out of a bag",
  "open a box",
  "move heavy objects",
  "shake fist",
  "throw up cap/hat",
  "hands up (both hands)",
  "cross arms",
  "arm circles",
  "arm swings",
  "running on the spot",
  "butt kicks (kick backward)",
  "cross toe touch",
  "side kick",
  "yawn",
  "stretch oneself",
  "blow nose",
  "hit other person with something",
  "wield knife towards other person",
  "knock over other person (hit with body)",
  "grab other person's stuff",
  "shoot at other person with a gun",
  "step on foot",
  "high-five",
  "cheers and drink",
  "carry something with other person",
  "take a photo of other person",
  "follow other person",
  "whisper in other person's ear",
  "exchange things with other person",
  "support somebody with hand",
  "finger-guessing game (playing rock-paper-scissors)",
)
NTU60_ACTIONS = NTU120_ACTIONS[:60]


def classes_path(npz_path: str | pathlib.Path) -> pathlib.Path:
  """`<stem>.classes.txt` beside an npz: one action name per line, line k naming label k."""
  return pathlib.Path(npz_path).with_suffix(".classes.txt")


def read_classes(path: str | pathlib.Path) -> tuple[str, ...]:
  """The names of a `.classes.txt` file, one per non-blank line."""
  return tuple(line.strip() for line in pathlib.Path(path).read_text().splitlines() if line.strip())


def class_names(data_config: ml_collections.ConfigDict, num_classes: int) -> tuple[str, ...] | None:
  """The names of labels 0..num_classes-1 (`num_classes`: of the dataset's split), or None if unknown. Synthetic
  (data.path '' with format 'npz'): data.synthetic.actions, or ACTIONS' own order if that is empty."""
  if data_config.format == "npz" and not data_config.path:
    names = tuple(data_config.synthetic.actions) or tuple(action.name for action in synthetic_motions.ACTIONS)
    return names[:num_classes]
  sidecar = classes_path(data_config.path) if data_config.format == "npz" else None
  if sidecar is not None and sidecar.is_file():
    names = read_classes(sidecar)
    if len(names) != num_classes:
      raise ValueError(f"{sidecar}: {len(names)} action names for {num_classes} classes in {data_config.path}")
    return names
  return {60: NTU60_ACTIONS, 120: NTU120_ACTIONS}.get(num_classes)
