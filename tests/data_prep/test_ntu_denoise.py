"""Denoising and actor selection (SPEC §1.3) on hand-built bodies with hand-worked expected outputs."""

import numpy as np
import pytest
from prep_fixtures import tall, wide

from stars_jax.data_prep.ntu_denoise import DenoiseError, DenoiseOptions, body_motion, denoise, overlaps, spread_valid
from stars_jax.data_prep.ntu_skeleton import BodyTrack, RawSkeleton


def track(body_id: str, frames: list[int], make=tall, shift: float = 0.0) -> BodyTrack:
  joints = np.stack([make(t, shift) for t in range(len(frames))]).astype(np.float32)  # (n, 25, 3)
  return BodyTrack(body_id, joints, np.zeros((len(frames), 25, 2), np.float32), tuple(frames))


def skeleton(*bodies: BodyTrack) -> RawSkeleton:
  num_frames = max(f for b in bodies for f in b.frames) + 1
  return RawSkeleton("S001C001P001R001A001", num_frames, bodies, ())


def rows(body: BodyTrack) -> np.ndarray:
  return body.joints.reshape(len(body.frames), 75)


def test_spread_rule_boundary():
  body = tall()[None].copy()  # y-extent 2.25
  body[0, :, 0] = np.linspace(0, 0.8 * 2.25, 25)  # x-extent exactly 0.8 * y-extent: valid
  assert spread_valid(body.astype(np.float32)).tolist() == [True]
  assert spread_valid(wide()[None].astype(np.float32)).tolist() == [False]


def test_overlap_rule_counts_a_shared_frame_as_no_overlap():
  assert not overlaps((0, 14), (14, 29), touching_overlaps=False)
  assert overlaps((0, 14), (14, 29), touching_overlaps=True)
  assert overlaps((0, 14), (13, 29), touching_overlaps=False)
  assert not overlaps((0, 0), (3, 9), touching_overlaps=False)  # actor 2 starts as [0, 0]


def test_single_body_is_taken_as_is():
  body = track("1", list(range(5)), shift=0.5)  # short, but alone: no denoising at all
  joints, report = denoise(skeleton(body))
  np.testing.assert_array_equal(joints, rows(body))
  assert report.bodies == 1 and report.actors == 1


def test_short_and_spread_noise_bodies_are_dropped():
  actor = track("1", list(range(30)), shift=0.25)
  short = track("2", list(range(11)))  # 11 frames <= 11: length noise
  spread = track("3", list(range(10, 30)), make=wide)  # every frame invalid: spread noise
  joints, report = denoise(skeleton(actor, short, spread))
  assert report.dropped_by_length == ["2"] and report.dropped_by_spread == ["3"]
  assert report.actors == 1 and report.missing_frames_removed == 0
  np.testing.assert_array_equal(joints, rows(actor))  # (30, 75): the lone actor


@pytest.mark.parametrize("invalid, dropped", [(14, True), (13, False)])  # 14/20 = 0.7 >= 0.69754 > 0.65
def test_spread_ratio_threshold(invalid, dropped):
  actor = track("1", list(range(20)), shift=0.25)
  body = track("2", list(range(20)))
  joints = body.joints.copy()
  joints[:invalid] = wide()
  body = BodyTrack("2", joints, body.colors, body.frames)
  _, report = denoise(skeleton(actor, body))
  assert (report.dropped_by_spread == ["2"]) == dropped
  assert report.actors == (1 if dropped else 2)


def test_spread_filter_stops_when_one_body_is_left():
  first, second = track("1", list(range(20)), make=wide), track("2", list(range(20)), make=wide)
  joints, report = denoise(skeleton(first, second))
  assert report.dropped_by_spread == ["1"]  # "2" is as wide but is the last body standing
  np.testing.assert_array_equal(joints, rows(second))


def test_motion_on_valid_frames_reorders_actors():
  # "1" moves only in its 5 wide (invalid) frames; "2" moves steadily. Overall "1" has more motion, but
  # recomputed on its valid frames (static) it has less, so "2" becomes actor 1.
  one = track("1", list(range(20)))
  joints = one.joints.copy()
  joints[:5] = np.stack([wide(t, 2.0) for t in range(5)])
  one = BodyTrack("1", joints, one.colors, one.frames)
  two = track("2", list(range(20)), shift=0.05)
  assert body_motion(one.joints) > body_motion(two.joints)
  assert body_motion(one.joints[5:]) < body_motion(two.joints)
  out, report = denoise(skeleton(one, two))
  assert report.actors == 2 and report.dropped_by_spread == []
  np.testing.assert_array_equal(out[:, :75], rows(two))
  np.testing.assert_array_equal(out[:, 75:], rows(one))


def test_non_overlapping_actors_share_the_first_slot():
  first = track("1", list(range(15)), shift=0.25)  # more motion: actor 1
  later = track("2", list(range(15, 30)), shift=0.01)
  out, report = denoise(skeleton(first, later))
  assert out.shape == (30, 150) and report.actors == 2
  np.testing.assert_array_equal(out[:15, :75], rows(first))
  np.testing.assert_array_equal(out[15:, :75], rows(later))
  assert not out[:, 75:].any()


@pytest.mark.parametrize("touching_overlaps", [False, True])
def test_touching_intervals(touching_overlaps):
  first = track("1", list(range(15)), shift=0.25)  # frames 0..14
  later = track("2", list(range(14, 30)), shift=0.01)  # frames 14..29: frame 14 shared
  out, _ = denoise(skeleton(first, later), DenoiseOptions(touching_overlaps=touching_overlaps))
  if touching_overlaps:  # "2" goes to the second slot
    np.testing.assert_array_equal(out[:15, :75], rows(first))
    np.testing.assert_array_equal(out[14:, 75:], rows(later))
    assert not out[:14, 75:].any()
  else:  # official: "2" overwrites actor 1's frame 14
    np.testing.assert_array_equal(out[:14, :75], rows(first)[:14])
    np.testing.assert_array_equal(out[14:, :75], rows(later))
    assert not out[:, 75:].any()


@pytest.mark.parametrize("interval", ["official", "true"])
def test_body_that_vanishes_and_returns(interval):
  actor = track("1", list(range(30)), shift=0.25)
  back = track("2", list(range(10)) + list(range(20, 30)), shift=0.01)  # gone in frames 10..19
  out, report = denoise(skeleton(actor, back), DenoiseOptions(interval=interval))
  np.testing.assert_array_equal(out[:, :75], rows(actor))
  if interval == "official":  # laid on frames 0..19 from its first appearance
    np.testing.assert_array_equal(out[:20, 75:], rows(back))
    assert not out[20:, 75:].any()
  else:
    np.testing.assert_array_equal(out[:10, 75:], rows(back)[:10])
    np.testing.assert_array_equal(out[20:, 75:], rows(back)[10:])
    assert not out[10:20, 75:].any()
  assert report.missing_frames_removed == 0


def test_frames_without_any_actor_are_removed():
  first = track("1", list(range(14)), shift=0.25)  # frames 0..13
  gap = track("9", list(range(14, 20)))  # 6 frames: length noise; frames 14..19 end up empty
  later = track("2", list(range(20, 36)), shift=0.01)  # frames 20..35
  out, report = denoise(skeleton(first, gap, later))
  assert report.dropped_by_length == ["9"] and report.missing_frames_removed == 6
  assert out.shape == (30, 150)
  np.testing.assert_array_equal(out[:, :75], np.concatenate([rows(first), rows(later)]))


def test_third_overlapping_body_is_discarded():
  a = track("1", list(range(20)), shift=0.3)
  b = track("2", list(range(20)), shift=0.2)
  c = track("3", list(range(5, 20)), shift=0.1)
  out, report = denoise(skeleton(a, b, c))
  assert report.discarded_overlapping == ["3"]
  np.testing.assert_array_equal(out[:, :75], rows(a))
  np.testing.assert_array_equal(out[:, 75:], rows(b))


def test_all_bodies_short_is_an_error():
  with pytest.raises(DenoiseError, match="every body is shorter than 12 frames"):
    denoise(skeleton(track("1", list(range(5))), track("2", list(range(5)))))
