"""Per-person gains: each shape's full action measured on the person's own face, through the tracker's own fit.

Two things stand between a person's full expression and a full activation, and both are known once the tracker has
calibrated the person (identity, neutral and landmark offsets folded into its basis, the camera fixed):

* the fit's priors: the pull of every activation towards zero shrinks the shapes that move few landmarks (a blink
  moves the lids, a few of the fitted points) more than those that move many. Fitting the person's own model,
  posed with one shape at its full action, gives the fit's reading of it (`fit_responses`); its inverse undoes
  the shrinking for that person, that camera and those settings (up to MAX_GAIN; the L1 pull's threshold keeps
  the smallest activations at zero, so a gain does not wake every twitch);
* the person's eye opening: the rig's eyeBlink shape moves the lids through the rig's own eye opening, and a person
  whose eye opens less closes it fully by moving them less (`blink_gains`): the rig's lid opening over the
  person's. A wider eye than the rig's gets no gain below 1 (the fit holds activations at 1 as its lids meet).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from realtime.camera import Camera
from realtime.rig.lbs import landmarks as rig_landmarks
from realtime.rig.model import Rig, RigParams
from realtime.track.fit import FitSettings, LandmarkBasis, fit_frame, landmark_points, project

# each blink shape, and the middle points of its eye's upper and lower lid (MediaPipe ids; "Left" the subject's)
BLINK_LIDS = {"eyeBlinkLeft": (386, 374), "eyeBlinkRight": (159, 145)}
MAX_GAIN = 2.5  # no shape is read more than this much larger than the fit sees it (noise grows with the gain)


def fit_responses(basis: LandmarkBasis, camera: Camera, pose: RigParams, settings: FitSettings) -> np.ndarray:
    """(E,) the fit's reading of each bounded shape (activations in [0, 1], as ARKit's) at its full action: the
    basis' landmarks posed at `pose` with that one shape at 1, projected by `camera` and fitted (converged, from
    the pose). Unbounded (statistical) shapes read 1."""
    out = np.ones(basis.n_expr)
    neutral = replace(pose, expr=np.zeros(basis.n_expr))
    for k in np.flatnonzero((basis.lower[:basis.n_expr] >= 0) & (basis.upper[:basis.n_expr] > 0)):
        expr = np.zeros(basis.n_expr)
        expr[k] = basis.upper[k]
        observed = project(camera, landmark_points(basis, replace(neutral, expr=expr))).T
        fitted = fit_frame(basis, observed, camera, neutral, settings, cold=True)
        out[k] = fitted.params.expr[k] / basis.upper[k]
    return out


def blink_gains(basis: LandmarkBasis, rig: Rig) -> np.ndarray:
    """(E,) the rig's lid opening over the person's for the blinks whose lid points the basis fits, 1 for every
    other shape. basis: a calibrated tracking basis of `rig` (its neutral is the person's)."""
    gains = np.ones(rig.n_expr)
    template = rig_landmarks(rig.astype(np.float64), rig.v_template.astype(np.float64))   # (L_rig, 3)
    for name, lids in BLINK_LIDS.items():
        if name not in rig.expr_names or not np.all(np.isin(lids, basis.ids)) or not np.all(np.isin(lids, rig.lmk_ids)):
            continue
        rows = [int(np.flatnonzero(basis.ids == i)[0]) for i in lids]
        person = np.linalg.norm(basis.rest_local[:, rows[0]] - basis.rest_local[:, rows[1]])
        at = [int(np.flatnonzero(rig.lmk_ids == i)[0]) for i in lids]
        own = np.linalg.norm(template[at[0]] - template[at[1]])
        gains[rig.expr_names.index(name)] = max(own / max(person, 1e-9), 1.0)
    return gains


def person_gains(basis: LandmarkBasis, rig: Rig, camera: Camera, pose: RigParams,
                 settings: FitSettings) -> np.ndarray:
    """(E,) output gains for a calibrated person: the blinks' eye-opening ratio over the fit's reading of each
    shape, at most MAX_GAIN; a shape the fit reads below 1 / MAX_GAIN on its own (others explain its landmarks)
    keeps the opening ratio alone."""
    responses = fit_responses(basis, camera, pose, settings)
    seen = responses >= 1.0 / MAX_GAIN
    return np.minimum(blink_gains(basis, rig) / np.where(seen, responses, 1.0), MAX_GAIN)
