"""The avatar does what the face does, judged from outside: a person-like avatar (the demo avatar with another
head shape) blinks and smiles on a known script; that clip drives the demo avatar through the offline loop
(tracking, deform, splat), and MediaPipe reads both videos."""

import numpy as np
import pytest

from realtime.app.fidelity import frames_landmarks, other_identity, render_motion, video_landmarks
from realtime.app.library import demo_avatar
from realtime.app.motions import Motion, still, tour, with_lead_in
from realtime.app.offline import render_to_file
from realtime.face.detector import LandmarkDetector
from realtime.face.signals import face_signals
from realtime.painter import AvatarPainter
from realtime.pipeline import drive

SIZE, FPS, LEAD_S = 256, 25.0, 1.0
BLINK = (1.0, 1.4)      # the tour's first blink, seconds
SMILE = (2.0, 3.5)      # its smile
SCRIPT_S = 4.0          # the part of the tour played (jaw, blink, smile), then a second at rest


def frames(span: tuple[float, float]) -> slice:
    """The clip's frames (lead-in included) over a span of the script's seconds."""
    return slice(int((LEAD_S + span[0]) * FPS), int((LEAD_S + span[1]) * FPS))


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fidelity")
    demo, _ = demo_avatar()
    person = other_identity(demo)
    played = tour(person.rig, person.shape, fps=FPS).frames[:int(SCRIPT_S * FPS)]
    rest = still(person.rig, person.shape, FPS).frames * int(FPS)
    script = with_lead_in(Motion(played + rest, FPS), person.rig, person.shape, LEAD_S)
    clip = render_motion(person, script, folder / "person.mp4", size=SIZE)
    notes = []
    render_to_file(demo, str(clip), folder / "demo.mp4", size=SIZE, backend="cpu", progress=False,
                   report=notes.append)
    painter = AvatarPainter(demo, demo.camera.resized(SIZE, SIZE), backend="cpu")
    with LandmarkDetector(static_image_mode=True) as detector:
        zero = frames_landmarks((f.image for f in drive(still(demo.rig, demo.shape).frames, painter)), detector)
    return (face_signals(video_landmarks(clip)), face_signals(video_landmarks(folder / "demo.mp4")),
            face_signals(zero), notes)


def eyes(signals: dict) -> np.ndarray:
    return 0.5 * (signals["eye_left"] + signals["eye_right"])


def test_every_frame_shows_a_face(measured):
    person, avatar, _, notes = measured
    assert notes == []  # the tracker found the person's face in every frame
    assert np.all(np.isfinite(person["mouth_open"])) and np.all(np.isfinite(avatar["mouth_open"]))


def closure(signals: dict) -> float:
    """How far the eyes close during the blink, as a fraction of their opening at rest (MediaPipe's reading)."""
    calm = slice(int(0.3 * FPS), int(LEAD_S * FPS))
    return 1.0 - eyes(signals)[frames(BLINK)].min() / np.median(eyes(signals)[calm])


def test_the_avatar_blinks_when_the_person_blinks(measured):
    person, avatar, _, _ = measured
    assert closure(person) > 0.2                     # the person blinks
    # and the avatar closes its eyes about as far: within the amplitude the fidelity issue asks of every signal
    assert 0.75 * closure(person) < closure(avatar) < 1.33 * closure(person)


@pytest.mark.xfail(strict=True, reason="MediaPipe reads the demo avatar's shut lids as about half open (the "
                                       "photo's lid texture; the rig closes them): fidelity issue, remaining part")
def test_the_avatars_eyes_close_to_a_fifth_of_their_opening(measured):
    _, avatar, _, _ = measured
    assert closure(avatar) > 0.8


def test_a_neutral_person_gives_the_neutral_avatar(measured):
    _, avatar, zero, _ = measured
    calm = slice(int(0.3 * FPS), int(LEAD_S * FPS))
    width = np.median(avatar["mouth_width"][calm])
    assert width == pytest.approx(zero["mouth_width"][0], rel=0.05)
    tail = slice(-int(0.5 * FPS), None)  # after the script, at rest again
    assert np.median(avatar["mouth_width"][tail]) == pytest.approx(zero["mouth_width"][0], rel=0.05)


def test_the_avatar_smiles_when_the_person_smiles(measured):
    person, avatar, _, _ = measured
    calm = slice(int(0.3 * FPS), int(LEAD_S * FPS))
    rise = lambda s: np.max(s["mouth_width"][frames(SMILE)]) - np.median(s["mouth_width"][calm])  # noqa: E731
    assert rise(person) > 0.03
    assert rise(avatar) > 0.5 * rise(person)
