// Rig stage of the GPU deformation (CuPy RawModule, float32):
//   v = LBS(T' + D · c, J, W, theta) + translation
// with T' the avatar's template with its identity baked in (static offset + shape blend),
// D the blend directions [expression | pose correctives | shape] and c their coefficients.
// The NumPy ground truth is realtime/rig/lbs.py:forward; host packing is realtime/deform/cupy_backend.py.
//
// Buffer layouts (row-major, float32 unless said):
//   params      (18 + E + S,)   the one per-frame upload: pose (5 joints x 3, axis-angle) | translation (3)
//                               | expression (E) | shape minus the baked shape (S)
//   j_template  (5, 3)          joints regressed from T'
//   j_dirs      (15, E + S)     joint blend directions (row joint * 3 + axis) for [expression | shape]
//   parents     (5,) int32      kinematic tree, parents[0] = -1, parents before children
//   coeffs      (E + P + S,)    written by rig_frame: [expression | (R_j - I) of joints 1..4 | shape delta]
//   transforms  (5, 12)         written by rig_frame: 3x4 skinning transform per joint, translation included
//   templ       (3, V)          T', one row per axis (coalesced per-vertex reads)
//   dirs        (K, 3, V)       blend directions, coefficient-major (coalesced per-vertex reads)
//   weights     (5, V)          skinning weights, joint-major
//   vertices    (V, 3)          written by skin_vertices: the posed mesh

#define N_JOINTS 5
#define PARAM_HEADER 18
#define RIG_FRAME_THREADS 256
#define REG_LANES 16
#define SKIN_LANES 32
#define SKIN_SLICES 8

// Rodrigues: R = I + sin(a) K + (1 - cos(a)) K^2, K the cross-product matrix of the unit axis.
__device__ __forceinline__ void axis_angle_to_matrix(const float* r, float* m) {
    float angle = sqrtf(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
    float inv = 1.0f / fmaxf(angle, 1.17549435e-38f);
    float x = r[0] * inv, y = r[1] * inv, z = r[2] * inv;
    float s = sinf(angle);
    float h = sinf(0.5f * angle);
    float c = 2.0f * h * h;  // 1 - cos(angle) without cancellation
    m[0] = 1.0f - c * (y * y + z * z); m[1] = -s * z + c * x * y;         m[2] = s * y + c * x * z;
    m[3] = s * z + c * x * y;          m[4] = 1.0f - c * (x * x + z * z); m[5] = -s * x + c * y * z;
    m[6] = -s * y + c * x * z;         m[7] = s * x + c * y * z;          m[8] = 1.0f - c * (x * x + y * y);
}

// One block of RIG_FRAME_THREADS threads: joints, joint rotations, pose feature and skinning transforms.
extern "C" __global__ void __launch_bounds__(RIG_FRAME_THREADS)
rig_frame(const float* __restrict__ params, const float* __restrict__ j_template, const float* __restrict__ j_dirs,
          const int* __restrict__ parents, int n_expr, int n_shape, int n_shape_active, int n_pose,
          float* __restrict__ coeffs, float* __restrict__ transforms) {
    __shared__ float partial[RIG_FRAME_THREADS];
    __shared__ float rot[N_JOINTS][9];
    __shared__ float joints[N_JOINTS * 3];
    const int t = threadIdx.x;
    const float* blend = params + PARAM_HEADER;  // [expression | shape delta]
    const int n_blend = n_expr + n_shape_active;

    // Joints = J' + j_dirs . [expression | shape delta]: REG_LANES threads per output, tree-reduced.
    const int out = t / REG_LANES, lane = t % REG_LANES;
    float sum = 0.0f;
    if (out < N_JOINTS * 3) {
        const float* row = j_dirs + out * (n_expr + n_shape);
        for (int k = lane; k < n_blend; k += REG_LANES) sum += row[k] * blend[k];
    }
    partial[t] = sum;
    for (int k = t; k < n_expr; k += RIG_FRAME_THREADS) coeffs[k] = blend[k];
    for (int k = t; k < n_shape_active; k += RIG_FRAME_THREADS) coeffs[n_expr + n_pose + k] = blend[n_expr + k];
    if (t < N_JOINTS) axis_angle_to_matrix(params + 3 * t, rot[t]);
    __syncthreads();
    for (int width = REG_LANES / 2; width > 0; width /= 2) {
        if (lane < width) partial[t] += partial[t + width];
        __syncthreads();
    }
    if (t < N_JOINTS * 3) joints[t] = j_template[t] + partial[t * REG_LANES];
    // Pose feature: (R_j - I) of every non-root joint, row-major, as FLAME's pose correctives expect.
    if (t < n_pose) {
        const int e = t % 9;
        coeffs[n_expr + t] = rot[1 + t / 9][e] - (e % 4 == 0 ? 1.0f : 0.0f);
    }
    __syncthreads();

    if (t != 0) return;
    // Chain the local transforms [R_j | J_j - J_parent] down the tree; skinning transform = world - R_world J_j.
    float world[N_JOINTS][12];
    const float* translation = params + 15;
    for (int j = 0; j < N_JOINTS; ++j) {
        const float* r = rot[j];
        const float* jj = joints + 3 * j;
        const int p = parents[j];
        for (int a = 0; a < 3; ++a) {
            if (p < 0) {
                for (int b = 0; b < 3; ++b) world[j][4 * a + b] = r[3 * a + b];
                world[j][4 * a + 3] = jj[a];
            } else {
                const float* w = world[p];
                const float* jp = joints + 3 * p;
                for (int b = 0; b < 3; ++b)
                    world[j][4 * a + b] = w[4 * a] * r[b] + w[4 * a + 1] * r[3 + b] + w[4 * a + 2] * r[6 + b];
                world[j][4 * a + 3] = w[4 * a] * (jj[0] - jp[0]) + w[4 * a + 1] * (jj[1] - jp[1])
                                      + w[4 * a + 2] * (jj[2] - jp[2]) + w[4 * a + 3];
            }
        }
        float* tr = transforms + 12 * j;
        for (int a = 0; a < 3; ++a) {
            const float* w = world[j] + 4 * a;
            tr[4 * a] = w[0]; tr[4 * a + 1] = w[1]; tr[4 * a + 2] = w[2];
            tr[4 * a + 3] = w[3] - (w[0] * jj[0] + w[1] * jj[1] + w[2] * jj[2]) + translation[a];
        }
    }
}

// Blend shapes + linear blend skinning. Block (SKIN_LANES, SKIN_SLICES): lane = vertex, slice = a strided share
// of the n_coeffs blend directions, so one block reads coalesced rows of 32 vertices for 8 coefficients at once.
extern "C" __global__ void __launch_bounds__(SKIN_LANES * SKIN_SLICES)
skin_vertices(const float* __restrict__ templ, const float* __restrict__ dirs, const float* __restrict__ coeffs,
              int n_coeffs, const float* __restrict__ weights, const float* __restrict__ transforms, int n_vertices,
              float* __restrict__ vertices) {
    __shared__ float partial[SKIN_SLICES][3][SKIN_LANES];
    const int lane = threadIdx.x, slice = threadIdx.y;
    const int v = blockIdx.x * SKIN_LANES + lane;
    float ax = 0.0f, ay = 0.0f, az = 0.0f;
    if (v < n_vertices) {
        const long long stride = 3LL * n_vertices;
        const float* d = dirs + v + slice * stride;
#pragma unroll 4
        for (int k = slice; k < n_coeffs; k += SKIN_SLICES, d += SKIN_SLICES * stride) {
            const float c = coeffs[k];
            ax += d[0] * c;
            ay += d[n_vertices] * c;
            az += d[2 * n_vertices] * c;
        }
    }
    partial[slice][0][lane] = ax;
    partial[slice][1][lane] = ay;
    partial[slice][2][lane] = az;
    __syncthreads();
    if (slice != 0 || v >= n_vertices) return;

    float x = templ[v], y = templ[n_vertices + v], z = templ[2 * n_vertices + v];
    for (int s = 0; s < SKIN_SLICES; ++s) {
        x += partial[s][0][lane];
        y += partial[s][1][lane];
        z += partial[s][2][lane];
    }
    float m[12];
    for (int e = 0; e < 12; ++e) m[e] = 0.0f;
    for (int j = 0; j < N_JOINTS; ++j) {
        const float w = weights[j * n_vertices + v];
        for (int e = 0; e < 12; ++e) m[e] += w * transforms[12 * j + e];
    }
    vertices[3 * v] = m[0] * x + m[1] * y + m[2] * z + m[3];
    vertices[3 * v + 1] = m[4] * x + m[5] * y + m[6] * z + m[7];
    vertices[3 * v + 2] = m[8] * x + m[9] * y + m[10] * z + m[11];
}
