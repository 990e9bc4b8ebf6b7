"""The constants of gsplat 1.5.3's 3DGS rasterizer, shared by both backends so they draw the same picture."""

import numpy as np

EPS2D = 0.3  # pixels^2 added to the diagonal of every projected covariance (screen-space dilation)
NEAR_PLANE = 0.01  # metres; Gaussians whose camera z is outside [near, far] are culled
FAR_PLANE = 1e10
TILE_SIZE = 16  # pixels per side of a rasterization tile
ALPHA_THRESHOLD = np.float32(1.0 / 255.0)  # contributions below this alpha are skipped
MAX_ALPHA = np.float32(0.999)  # alpha of a single Gaussian is clamped to this
MIN_TRANSMITTANCE = np.float32(1e-4)  # a pixel stops once its transmittance would fall to this or below
MAX_EXTENT_SIGMAS = np.float32(3.33)  # a projected Gaussian's bounding box is at most this many sigmas wide
FOV_MARGIN = np.float32(0.3)  # x/z and y/z are clamped to the image's half-extent plus 0.3 tan(fov / 2)

# LLVM fast-math flags for the numba kernels: reassociation and contraction only, no 'nnan'/'ninf',
# since the projection culls NaN and infinite Gaussians through comparisons.
FASTMATH = {"contract", "reassoc", "nsz", "arcp", "afn"}
