"""The inner loop of the landmark fit, compiled with numba: residuals and Jacobian in one pass over the landmarks.

The model is the one :mod:`realtime.track.fit` describes; this kernel only evaluates it
and its derivatives, so NumPy's per-call overhead (dozens of small array operations a
step) stays out of the per-frame budget. :func:`realtime.track.fit.landmark_points` is
the NumPy reference it is tested against.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def residuals_and_jacobian(x0, xd, xp, moves, feature, coeffs, rots, cam_head, cam_offset, view_r, jd_cam, intrinsics,
                           obs, w, jaw_slot, jac, res, cam, with_jacobian=True):
    """Weighted residuals and their Jacobian for parameters [head turn (3), translation (3), jaw turn (3), coeffs (C)].

    x0: (G, 3, L), xd: (G, 3, L, C), xp: (G, 3, L, Q) group bases (Q may be 0); moves: (G, L) bool, whether group
    g moves landmark l at all (group 0 always does); feature: (Q,); coeffs: (C,)
    rots: (G, 3, 3) group rotations relative to the head (rots[0] = I)
    cam_head: (3, 3) view rotation times head rotation; cam_offset: (3,) camera-space position of the head origin
    view_r: (3, 3) view rotation; jd_cam: (3, C) view rotation times the root joint's coefficient derivative
    intrinsics: (4,) fx, fy, cx, cy; obs: (L, 2) observed pixels; w: (L,) weight per landmark
    jaw_slot: the group index of the jaw, or -1
    Fills jac: (2L, P) with P = 9 + C (rows: u of every landmark, then v), res: (2L,) observed minus model, and
    cam: (3, L) camera-space landmarks. Head and jaw turns are right-multiplied (R · exp(δ)).
    with_jacobian=False fills res and cam only.
    """
    n_groups, _, n_lmk, n_coeffs = xd.shape
    n_feat = xp.shape[3]
    fx, fy, cx, cy = intrinsics[0], intrinsics[1], intrinsics[2], intrinsics[3]
    group_cam = np.zeros((n_groups, 3, 3))
    for g in range(n_groups):
        for a in range(3):
            for b in range(3):
                s = 0.0
                for k in range(3):
                    s += cam_head[a, k] * rots[g, k, b]
                group_cam[g, a, b] = s
    xg = np.zeros((n_groups, 3))
    local = np.zeros(3)
    dcam = np.zeros(3)
    cross = np.zeros(3)
    dc = np.zeros((3, n_coeffs))
    for l in range(n_lmk):
        for g in range(n_groups):
            if not moves[g, l]:
                xg[g, 0] = xg[g, 1] = xg[g, 2] = 0.0
                continue
            for a in range(3):
                s = x0[g, a, l]
                for c in range(n_coeffs):
                    s += xd[g, a, l, c] * coeffs[c]
                for q in range(n_feat):
                    s += xp[g, a, l, q] * feature[q]
                xg[g, a] = s
        for a in range(3):
            s = 0.0
            for g in range(n_groups):
                for b in range(3):
                    s += rots[g, a, b] * xg[g, b]
            local[a] = s
        for a in range(3):
            s = cam_offset[a]
            for b in range(3):
                s += cam_head[a, b] * local[b]
            cam[a, l] = s
        x, y, z = cam[0, l], cam[1, l], cam[2, l]
        inv_z = 1.0 / z
        ux, uz = fx * inv_z, -fx * x * inv_z * inv_z
        vy, vz = fy * inv_z, -fy * y * inv_z * inv_z
        wl = w[l]
        ru, rv = l, n_lmk + l
        res[ru] = (obs[l, 0] - (fx * x * inv_z + cx)) * wl
        res[rv] = (obs[l, 1] - (fy * y * inv_z + cy)) * wl
        if not with_jacobian:
            continue
        # head turn: cam_head · (e_k × local)
        for k in range(3):
            _axis_cross(k, local, cross)
            for a in range(3):
                dcam[a] = cam_head[a, 0] * cross[0] + cam_head[a, 1] * cross[1] + cam_head[a, 2] * cross[2]
            jac[ru, k] = (ux * dcam[0] + uz * dcam[2]) * wl
            jac[rv, k] = (vy * dcam[1] + vz * dcam[2]) * wl
        for k in range(3):
            jac[ru, 3 + k] = (ux * view_r[0, k] + uz * view_r[2, k]) * wl
            jac[rv, 3 + k] = (vy * view_r[1, k] + vz * view_r[2, k]) * wl
        for k in range(3):
            if jaw_slot >= 0 and moves[jaw_slot, l]:
                _axis_cross(k, xg[jaw_slot], cross)
                for a in range(3):
                    dcam[a] = (group_cam[jaw_slot, a, 0] * cross[0] + group_cam[jaw_slot, a, 1] * cross[1]
                               + group_cam[jaw_slot, a, 2] * cross[2])
                jac[ru, 6 + k] = (ux * dcam[0] + uz * dcam[2]) * wl
                jac[rv, 6 + k] = (vy * dcam[1] + vz * dcam[2]) * wl
            else:
                jac[ru, 6 + k] = 0.0
                jac[rv, 6 + k] = 0.0
        # coefficients: Σ_g group_cam[g] · xd[g, :, l, :] + jd_cam
        for a in range(3):
            for c in range(n_coeffs):
                dc[a, c] = jd_cam[a, c]
        for g in range(n_groups):
            if not moves[g, l]:
                continue
            for a in range(3):
                m0, m1, m2 = group_cam[g, a, 0], group_cam[g, a, 1], group_cam[g, a, 2]
                for c in range(n_coeffs):
                    dc[a, c] += m0 * xd[g, 0, l, c] + m1 * xd[g, 1, l, c] + m2 * xd[g, 2, l, c]
        for c in range(n_coeffs):
            jac[ru, 9 + c] = (ux * dc[0, c] + uz * dc[2, c]) * wl
            jac[rv, 9 + c] = (vy * dc[1, c] + vz * dc[2, c]) * wl


@numba.njit(cache=True, nogil=True)
def _axis_cross(k, v, out):
    """out = e_k × v for the unit axis e_k."""
    if k == 0:
        out[0], out[1], out[2] = 0.0, -v[2], v[1]
    elif k == 1:
        out[0], out[1], out[2] = v[2], 0.0, -v[0]
    else:
        out[0], out[1], out[2] = -v[1], v[0], 0.0


@numba.njit(cache=True, nogil=True)
def rotation_matrix(v):
    """Rodrigues' formula for one axis-angle vector v: (3,). Returns (3, 3)."""
    angle = np.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    out = np.eye(3)
    if angle < 1e-12:
        return out
    x, y, z = v[0] / angle, v[1] / angle, v[2] / angle
    s, c = np.sin(angle), 1.0 - np.cos(angle)
    out[0, 0] -= c * (y * y + z * z)
    out[1, 1] -= c * (x * x + z * z)
    out[2, 2] -= c * (x * x + y * y)
    out[0, 1] = -s * z + c * x * y
    out[1, 0] = s * z + c * x * y
    out[0, 2] = s * y + c * x * z
    out[2, 0] = -s * y + c * x * z
    out[1, 2] = -s * x + c * y * z
    out[2, 1] = s * x + c * y * z
    return out


@numba.njit(cache=True, nogil=True)
def rotation_vector(m):
    """The axis-angle vector (3,) of a rotation matrix m: (3, 3), angle in [0, pi)."""
    cos = min(max(0.5 * (m[0, 0] + m[1, 1] + m[2, 2] - 1.0), -1.0), 1.0)
    angle = np.arccos(cos)
    axis = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]])
    sin = np.sin(angle)
    if sin < 1e-6:  # near zero (near pi is out of a head's range)
        return 0.5 * axis
    return axis * (angle / (2.0 * sin))


@numba.njit(cache=True, nogil=True)
def box_qp(a, g, lo, hi, max_rounds):
    """Minimise 0.5 x'Ax - g'x subject to lo <= x <= hi (primal active set from x = 0, which must be feasible).

    a: (P, P) symmetric positive definite; g, lo, hi: (P,) with lo <= 0 <= hi (infinite where unbounded).
    Each round solves the free variables with the bound ones held; a solution that leaves the box is cut at the
    first bound it meets (that variable joins the bound set); a bound variable whose gradient points into the box
    is released. Returns x (P,).
    """
    n = g.shape[0]
    x = np.zeros(n)
    state = np.zeros(n, dtype=np.int64)  # 0 free, -1 held at lo, +1 held at hi
    for i in range(n):  # start with the variables sitting on a bound that the gradient pushes against
        if lo[i] == 0.0 and g[i] < 0.0:
            state[i] = -1
        elif hi[i] == 0.0 and g[i] > 0.0:
            state[i] = 1
    for _ in range(max_rounds):
        free = np.flatnonzero(state == 0)
        held = np.flatnonzero(state != 0)
        target = x.copy()
        if free.shape[0] > 0:
            rhs = g[free] - a[free][:, held] @ x[held]
            target[free] = np.linalg.solve(a[free][:, free], rhs)
        alpha, block = 1.0, -1
        for i in free:
            d = target[i] - x[i]
            if target[i] < lo[i] and d < 0.0:
                t = (lo[i] - x[i]) / d
                if t < alpha:
                    alpha, block = t, i
            elif target[i] > hi[i] and d > 0.0:
                t = (hi[i] - x[i]) / d
                if t < alpha:
                    alpha, block = t, i
        if block >= 0:
            for i in free:
                x[i] += alpha * (target[i] - x[i])
            if target[block] < lo[block]:
                x[block], state[block] = lo[block], -1
            else:
                x[block], state[block] = hi[block], 1
            continue
        x = target
        grad = g - a @ x  # descent direction of the objective
        worst, release = 1e-12, -1
        for i in held:
            push = grad[i] if state[i] < 0 else -grad[i]
            if push > worst:
                worst, release = push, i
        if release < 0:
            break
        state[release] = 0
    return x


@numba.njit(cache=True, nogil=True)
def gauss_newton(x0, xd, xp, moves, j0_root, jd_root, groups, jaw_slot, view_r, view_t, intrinsics, obs, weights,
                 rotation, trans, jaw, eyes, coeffs, prior, linear, temporal, jaw_lower, jaw_upper, lower, upper,
                 iterations, tolerance):
    """Gauss-Newton on [head turn, translation, jaw, coeffs] (see residuals_and_jacobian for the bases).

    j0_root: (3,), jd_root: (3, C) the root joint and its coefficient derivative; groups: (G,) joint per group
    view_r: (3, 3), view_t: (3,) world-to-camera; intrinsics: (4,) fx, fy, cx, cy; obs: (L, 2) pixels
    weights: (L,) per landmark (residuals are further divided by the face's RMS size in the image)
    rotation: (3,) head axis-angle; trans: (3,); jaw: (3,) axis-angle; eyes: (6,) axis-angle, held; coeffs: (C,)
    prior: (P,) pull towards zero of [0 * 6, jaw, coeffs]; temporal: pull towards the start values
    linear: (P,) constant pull towards the lower bound (an L1 prior on parameters bounded below by zero)
    jaw_lower/upper: (3,), lower/upper: (C,) boxes. Returns rotation (3,), trans (3,), jaw (3,), coeffs (C,),
    the projected landmarks (2, L) in pixels at the result, and the number of steps taken.
    """
    n_lmk, n_coeffs = obs.shape[0], coeffs.shape[0]
    n_par = 9 + n_coeffs
    n_groups = groups.shape[0]
    n_feat = xp.shape[3]
    jac = np.empty((2 * n_lmk, n_par))
    res = np.empty(2 * n_lmk)
    cam = np.empty((3, n_lmk))
    jd_cam = view_r @ jd_root
    centre = np.zeros(2)
    for l in range(n_lmk):
        centre += obs[l]
    centre /= n_lmk
    spread = 0.0
    for l in range(n_lmk):
        spread += (obs[l, 0] - centre[0]) ** 2 + (obs[l, 1] - centre[1]) ** 2
    w = weights / (np.sqrt(spread / n_lmk) + 1e-9)
    head = rotation_matrix(rotation)
    eye_rots = np.stack((rotation_matrix(eyes[:3]), rotation_matrix(eyes[3:])))
    trans, jaw, coeffs = trans.copy(), jaw.copy(), coeffs.copy()
    previous = np.zeros(n_par)
    previous[6:9] = jaw
    previous[9:] = coeffs
    low = np.full(n_par, -np.inf)
    high = np.full(n_par, np.inf)
    low[6:9], high[6:9] = jaw_lower, jaw_upper
    low[9:], high[9:] = lower, upper
    damping = prior + temporal + 1e-9
    rots = np.zeros((n_groups, 3, 3))
    feature = np.zeros(n_feat)
    current = np.zeros(n_par)
    steps = 0
    for it in range(iterations + 1):
        jaw_rot = rotation_matrix(jaw)
        rots[0] = np.eye(3)
        for g in range(1, n_groups):
            rots[g] = jaw_rot if groups[g] == 2 else eye_rots[groups[g] - 3]
        if n_feat > 0:  # FLAME's feature: vec(R - I) of neck (at rest), jaw, left eye, right eye
            for k in range(9):
                feature[9 + k] = jaw_rot[k // 3, k % 3] - (1.0 if k // 3 == k % 3 else 0.0)
                feature[18 + k] = eye_rots[0, k // 3, k % 3] - (1.0 if k // 3 == k % 3 else 0.0)
                feature[27 + k] = eye_rots[1, k // 3, k % 3] - (1.0 if k // 3 == k % 3 else 0.0)
        offset = view_r @ (j0_root + jd_root @ coeffs + trans) + view_t
        final = it == iterations
        residuals_and_jacobian(x0, xd, xp, moves, feature, coeffs, rots, view_r @ head, offset, view_r, jd_cam,
                               intrinsics, obs, w, jaw_slot, jac, res, cam, not final)
        if final:
            break
        steps += 1
        current[6:9] = jaw
        current[9:] = coeffs
        grad = jac.T @ res - prior * current - linear - temporal * (current - previous)
        hess = jac.T @ jac
        for i in range(n_par):
            hess[i, i] += damping[i]
        step = box_qp(hess, grad, low - current, high - current, 4 * n_par)
        head = head @ rotation_matrix(step[0:3])
        trans = trans + step[3:6]
        jaw = np.minimum(np.maximum(jaw + step[6:9], jaw_lower), jaw_upper)
        coeffs = np.minimum(np.maximum(coeffs + step[9:], lower), upper)
        if np.max(np.abs(step)) < tolerance:
            iterations = it + 1  # evaluate once more at the result, then stop
    proj = np.empty((2, n_lmk))
    for l in range(n_lmk):
        proj[0, l] = intrinsics[0] * cam[0, l] / cam[2, l] + intrinsics[2]
        proj[1, l] = intrinsics[1] * cam[1, l] / cam[2, l] + intrinsics[3]
    return rotation_vector(head), trans, jaw, coeffs, proj, steps


@numba.njit(cache=True, nogil=True)
def gaze_newton(rotation, trans, joints, iris_offsets, view_r, view_t, intrinsics, targets, eyes, prior, scale,
                limit, iterations):
    """Pitch and yaw of each eye so that its projected iris centre lands on `targets`.

    rotation: (3,) head axis-angle; trans: (3,); joints: (5, 3) rest joints of this identity and expression
    iris_offsets: (2, 3) rest iris centre minus eye joint, left then right; view_r, view_t, intrinsics as in
    gauss_newton; targets: (2, 2) pixels; eyes: (6,) start axis-angles (their third component is dropped)
    prior: pull towards looking ahead; scale: pixels per residual unit; limit: radians bound on each angle.
    The eye turns about its joint under the head: iris = R0 (R_e o_e + J_e - J_0) + J_0 + t.
    Returns (6,) axis-angles (pitch, yaw, 0) per eye.
    """
    head = rotation_matrix(rotation)
    out = np.zeros(6)
    fx, fy = intrinsics[0], intrinsics[1]
    jac = np.zeros((2, 2))
    for k in range(2):
        joint = joints[3 + k]
        angles = np.array([eyes[3 * k], eyes[3 * k + 1], 0.0])
        for _ in range(iterations):
            eye = rotation_matrix(angles)
            turned = eye @ iris_offsets[k]
            world = head @ (turned + joint - joints[0]) + joints[0] + trans
            cam = view_r @ world + view_t
            inv_z = 1.0 / cam[2]
            res_u = (targets[k, 0] - (fx * cam[0] * inv_z + intrinsics[2])) / scale
            res_v = (targets[k, 1] - (fy * cam[1] * inv_z + intrinsics[3])) / scale
            cam_eye = view_r @ head @ eye
            for axis in range(2):  # right perturbation e_axis × o
                cross = np.zeros(3)
                o = iris_offsets[k]
                if axis == 0:
                    cross[1], cross[2] = -o[2], o[1]
                else:
                    cross[0], cross[2] = o[2], -o[0]
                d = cam_eye @ cross
                jac[0, axis] = (fx * inv_z * d[0] - fx * cam[0] * inv_z * inv_z * d[2]) / scale
                jac[1, axis] = (fy * inv_z * d[1] - fy * cam[1] * inv_z * inv_z * d[2]) / scale
            a00 = jac[0, 0] ** 2 + jac[1, 0] ** 2 + prior
            a01 = jac[0, 0] * jac[0, 1] + jac[1, 0] * jac[1, 1]
            a11 = jac[0, 1] ** 2 + jac[1, 1] ** 2 + prior
            g0 = jac[0, 0] * res_u + jac[1, 0] * res_v - prior * angles[0]
            g1 = jac[0, 1] * res_u + jac[1, 1] * res_v - prior * angles[1]
            det = a00 * a11 - a01 * a01
            step0 = (a11 * g0 - a01 * g1) / det
            step1 = (a00 * g1 - a01 * g0) / det
            angles = rotation_vector(eye @ rotation_matrix(np.array([step0, step1, 0.0])))
            angles[0] = min(max(angles[0], -limit), limit)
            angles[1] = min(max(angles[1], -limit), limit)
            angles[2] = 0.0
        out[3 * k], out[3 * k + 1] = angles[0], angles[1]
    return out
