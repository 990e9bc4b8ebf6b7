"""Colour every Gaussian: from the portrait where it sees it, a plausible fill where it does not.

1. Seen: the Gaussian's centre projects into the portrait in front of the mesh's z-buffer, its
   triangle faces the camera, and the pixel belongs to the person (selfie segmentation). Its colour
   is the (slightly blurred) photo there, trusted by how squarely its triangle faces the camera.
2. Mirror: a Gaussian the photo sees badly takes the colour of the nearest well-seen Gaussian at
   its mirror position (x -> -x, the rig's plane of symmetry), blended by the two trusts.
3. Hair: unseen scalp above the ears copies the seen hair's texture, mirror-repeated round the head.
4. Fill: what none of these reaches gets its region's tone: skin (median of the seen face), hair
   (median of the seen scalp above the brows), a darker skin for the neck, a dark mouth interior,
   off-white teeth, white of the eyes; then a diffusion over the Gaussians' neighbourhood graph
   blends the fill into the seen colours so no seam shows.
5. Shade: the teeth behind the front ones fade into the mouth's shadow. (The eyes are painted apart:
   realtime.builder.eyes.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.spatial import cKDTree

from realtime.builder.raster import project_points, zbuffer
from realtime.builder.regions import EYE, FACE, MOUTH, SCALP, TEETH
from realtime.camera import Camera

MOUTH_COLOUR = np.array([0.16, 0.06, 0.06])
TEETH_COLOUR = np.array([0.86, 0.83, 0.76])
SCLERA_COLOUR = np.array([0.80, 0.75, 0.72])
NECK_SHADE = 0.82  # the neck's skin is in the chin's shadow
# teeth more than TEETH_LIT_DEPTH behind the front ones fade into the mouth's shadow over TEETH_SHADE_RAMP (m): lit
# as a flash photo shows them, they would shine through the lip corners of a smile from a closed mouth
TEETH_LIT_DEPTH, TEETH_SHADE_RAMP = 0.004, 0.008


@dataclass
class ColourResult:
    """colours: (N, 3) float32 RGB in [0, 1]; trust: (N,) float32 in [0, 1] how much the photo saw each
    Gaussian (after mirroring and the hair texture); tones: the fill tones used, by name."""

    colours: np.ndarray
    trust: np.ndarray
    tones: dict[str, np.ndarray]


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def sample_image(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples (N, C) of image (H, W, C) float at pixel positions uv (N, 2) (pixel centres at +0.5)."""
    coords = [uv[:, 1] - 0.5, uv[:, 0] - 0.5]
    return np.stack([map_coordinates(image[..., c], coords, order=1, mode="nearest") for c in range(image.shape[2])], 1)


def direct_colours(means: np.ndarray, normals: np.ndarray, faces_of: np.ndarray, vertices: np.ndarray,
                   faces: np.ndarray, camera: Camera, image: np.ndarray, person: np.ndarray,
                   depth_tolerance: float = 0.003) -> tuple[np.ndarray, np.ndarray]:
    """Photo colours and their trust.

    means: (N, 3) Gaussian centres; normals: (N, 3) unit normals of their triangles; faces_of: (N,) their
    faces (a Gaussian whose own face wins the z-buffer at its pixel is in front); vertices/faces: the mesh
    as posed for the photo;
    image: (H, W, 3) float in [0, 1]; person: (H, W) float person probability.
    Returns colours (N, 3), trust (N,) in [0, 1] (0 where not seen) and facing (N,), the cosine between
    each normal and the direction to the camera.
    """
    depth, face_ids = zbuffer(vertices, faces, camera)
    uv, z = project_points(means, camera)
    h, w = depth.shape
    px = np.clip(np.floor(uv[:, 0]).astype(np.int64), 0, w - 1)
    py = np.clip(np.floor(uv[:, 1]).astype(np.int64), 0, h - 1)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h) & (z > 0)
    front = (z <= depth[py, px] + depth_tolerance) | (face_ids[py, px] == faces_of)
    centre = -camera.viewmat[:3, :3].T @ camera.viewmat[:3, 3]
    view_dir = means - centre
    view_dir /= np.linalg.norm(view_dir, axis=1, keepdims=True)
    facing = -np.sum(normals * view_dir, axis=1)
    in_person = sample_image(person[..., None], uv)[:, 0]
    trust = inside & front
    trust = trust * _smoothstep(facing, 0.1, 0.45) * _smoothstep(in_person, 0.3, 0.7)
    blurred = np.stack([gaussian_filter(image[..., c], 0.6) for c in range(3)], -1)
    return sample_image(blurred, uv), trust.astype(np.float64), facing


def mirror_fill(rest_means: np.ndarray, colours: np.ndarray, trust: np.ndarray, max_distance: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Blend in the colour of the mirror side: for each Gaussian, the nearest Gaussian of trust >= 0.5 to its
    reflection (x -> -x) within `max_distance` metres. rest_means: (N, 3) in rig rest space.
    Returns colours (N, 3) and trust (N,) after blending."""
    good = np.flatnonzero(trust >= 0.5)
    if len(good) == 0:
        return colours, trust
    tree = cKDTree(rest_means[good])
    dist, idx = tree.query(rest_means * np.array([-1.0, 1.0, 1.0]), distance_upper_bound=max_distance)
    found = np.isfinite(dist)
    mirror_trust = np.zeros_like(trust)
    mirror_colour = np.zeros_like(colours)
    mirror_trust[found] = trust[good[idx[found]]]
    mirror_colour[found] = colours[good[idx[found]]]
    weight_self = trust
    weight_mirror = (1 - trust) * mirror_trust
    total = weight_self + weight_mirror
    blended = np.where(total[:, None] > 0, (weight_self[:, None] * colours + weight_mirror[:, None] * mirror_colour)
                       / np.maximum(total, 1e-12)[:, None], colours)
    return blended, total


def diffuse(rest_means: np.ndarray, colours: np.ndarray, trust: np.ndarray, prior: np.ndarray,
            neighbours: int = 8, iterations: int = 60, prior_weight: float = 0.15) -> np.ndarray:
    """Fill untrusted colours: each Gaussian relaxes towards the mean of its `neighbours` nearest ones and its
    region prior, held to its own colour in proportion to its trust. colours, prior: (N, 3); trust: (N,)."""
    tree = cKDTree(rest_means)
    _, nbr = tree.query(rest_means, k=neighbours + 1)
    nbr = nbr[:, 1:]
    x = np.where(trust[:, None] > 0, colours, prior)
    t = trust[:, None]
    for _ in range(iterations):
        relaxed = (x[nbr].mean(1) + prior_weight * prior) / (1 + prior_weight)
        x = t * colours + (1 - t) * relaxed
    return x


def wrap_texture(points: np.ndarray, colours: np.ndarray, source: np.ndarray, target: np.ndarray,
                 centre: np.ndarray) -> np.ndarray:
    """Colours for the `target` points copied from the `source` points (both (N,) bool masks over points
    (N, 3) with colours (N, 3)), so that an unseen stretch of scalp carries the seen hair's texture.

    In azimuth (about the vertical axis through `centre`, 0 facing +z) and elevation, each target's azimuth
    is folded back and forth (mirror-repeat) into the azimuth range the sources cover, its elevation kept
    above the lowest 40% of the sources', and the target takes the colour of the nearest source there.
    Mirroring at the edges keeps the copy continuous with what is seen. Returns (T, 3) colours in the order of
    np.flatnonzero(target).
    """
    rel = points - centre
    azimuth = np.arctan2(rel[:, 0], rel[:, 2])
    elevation = np.arctan2(rel[:, 1], np.hypot(rel[:, 0], rel[:, 2]))
    lo, hi = np.percentile(azimuth[source], [2, 98])
    u = np.mod((azimuth[target] - lo) / max(hi - lo, 1e-6), 2.0)
    folded = lo + (hi - lo) * np.where(u > 1, 2 - u, u)
    tree = cKDTree(np.stack([azimuth[source], elevation[source]], 1))
    # the lowest seen hair borders the face (fringe tips, temples): copy from the hair above it
    floor = np.percentile(elevation[source], 40)
    _, idx = tree.query(np.stack([folded, np.maximum(elevation[target], floor)], 1))
    return colours[source][idx]


def _median(colours: np.ndarray, mask: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    return np.median(colours[mask], axis=0) if np.count_nonzero(mask) >= 10 else fallback


def tone_match(colours: np.ndarray, tones: np.ndarray) -> np.ndarray:
    """(N,) in [0, 1]: how plausible colours (N, 3) are next to the expected tones (K, 3): 1 within 0.12
    (RGB distance) of one, 0 beyond 0.3 from all. The scalp and neck are a generic shape, so where they
    stick out of the real head the photo shows background there."""
    distance = np.linalg.norm(colours[:, None, :] - np.asarray(tones)[None], axis=-1).min(1)
    return 1.0 - _smoothstep(distance, 0.12, 0.3)


def scalp_tones(hair: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """(5, 3) tones expected on the scalp above the chin: hair shadowed to highlighted, skin."""
    return np.stack([hair * 0.6, hair, np.minimum(hair * 1.4, 1.0), skin * NECK_SHADE, skin])


def neck_tones(neck: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """(3, 3) tones expected on the neck: what the photo shows under the chin (skin or a collar), skin."""
    return np.stack([neck, skin * NECK_SHADE, skin])


def colour_gaussians(means: np.ndarray, rest_means: np.ndarray, normals: np.ndarray, binding: np.ndarray,
                     regions: np.ndarray, vertices: np.ndarray, faces: np.ndarray, camera: Camera,
                     image: np.ndarray, person: np.ndarray, hair_line_y: float, neck_line_y: float
                     ) -> ColourResult:
    """Colours of N Gaussians from one portrait.

    means: (N, 3) centres on the mesh posed as in the photo; rest_means: (N, 3) the same in rig rest space
    (for mirroring, fill regions and neighbourhoods); normals: (N, 3) unit triangle normals (posed);
    binding: (N,) faces; regions: (F,) per-face labels (FACE, SCALP, MOUTH, TEETH, EYE); vertices: (V, 3)
    posed mesh; faces: (F, 3); camera: the portrait's; image: (H, W, 3) float in [0, 1];
    person: (H, W) person probability; hair_line_y: rest-space height above which the seen scalp is hair
    (the brows); neck_line_y: below it the scalp is neck (the chin); unseen hair reaches down to a quarter
    of the way from the chin to the brows (the nape).
    """
    direct, trust, facing = direct_colours(means, normals, binding, vertices, faces, camera, image, person)
    region = regions[binding]
    y = rest_means[:, 1]
    skin = _median(direct, (trust >= 0.5) & (region == FACE), np.array([0.75, 0.6, 0.5]))
    hair = _median(direct, (trust >= 0.5) & (region == SCALP) & (y > hair_line_y), skin * 0.5)
    # the scalp and neck are a guess at the head's shape: trust the photo there only when it faces the
    # camera squarely and shows a colour expected there
    scalp = (region == SCALP) & (y > neck_line_y)
    neck = (region == SCALP) & (y <= neck_line_y)
    neck_tone = _median(direct, (trust >= 0.5) & neck & (facing > 0.7), skin * NECK_SHADE)
    trust[scalp] *= _smoothstep(facing[scalp], 0.35, 0.7) * tone_match(direct[scalp], scalp_tones(hair, skin))
    trust[neck] *= _smoothstep(facing[neck], 0.35, 0.7) * tone_match(direct[neck], neck_tones(neck_tone, skin))
    seen = trust >= 0.5
    extent = np.linalg.norm(rest_means.max(0) - rest_means.min(0))
    colours, trust = mirror_fill(rest_means, direct, trust, max_distance=0.02 * extent)
    nape = neck_line_y + 0.25 * (hair_line_y - neck_line_y)
    hairiness = _smoothstep(y, neck_line_y - 0.25 * (hair_line_y - neck_line_y), nape)[:, None]
    scalp_tone = hairiness * hair + (1 - hairiness) * skin * NECK_SHADE
    # the unseen hair takes the seen hair's texture (held half as firmly as a photo colour)
    hair_like = tone_match(direct, np.stack([hair * 0.6, hair, np.minimum(hair * 1.4, 1.0)])) > 0.5
    source = scalp & seen & (y > hair_line_y) & hair_like
    unseen = scalp & (trust < 0.5) & (hairiness[:, 0] > 0.5)
    if np.count_nonzero(source) >= 20 and np.any(unseen):
        centre = rest_means[scalp].mean(0)
        colours[unseen] = wrap_texture(rest_means, direct, source, unseen, centre)
        trust[unseen] = 0.5 * hairiness[unseen, 0]
    prior = np.select([region[:, None] == MOUTH, region[:, None] == TEETH, region[:, None] == EYE,
                       region[:, None] == SCALP], [MOUTH_COLOUR, TEETH_COLOUR, SCLERA_COLOUR, scalp_tone], skin)
    # the mouth's inside and the teeth take their fill directly (no diffusion from the lips into them)
    inner = (region == MOUTH) | (region == TEETH)
    colours[inner] = trust[inner, None] * colours[inner] + (1 - trust[inner, None]) * prior[inner]
    result = diffuse(rest_means, colours, np.where(inner, 1.0, trust), prior)
    teeth = region == TEETH
    if np.any(teeth):  # behind the front teeth, the arch sits in the cheeks' shadow
        back = rest_means[teeth, 2].max() - rest_means[teeth, 2]
        lit = 1.0 - _smoothstep(back, TEETH_LIT_DEPTH, TEETH_LIT_DEPTH + TEETH_SHADE_RAMP)[:, None]
        result[teeth] = lit * result[teeth] + (1.0 - lit) * MOUTH_COLOUR
    tones = {"skin": skin, "hair": hair, "neck": neck_tone, "mouth": MOUTH_COLOUR, "teeth": TEETH_COLOUR,
             "sclera": SCLERA_COLOUR}
    return ColourResult(colours=np.clip(result, 0, 1).astype(np.float32), trust=trust.astype(np.float32),
                        tones=tones)
