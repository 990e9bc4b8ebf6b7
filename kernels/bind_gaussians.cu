// Binding stage of the GPU deformation (CuPy RawModule, float32): one thread per Gaussian builds its parent
// triangle's frame from the 3 posed vertices (GaussianAvatars' binding) and carries the Gaussian with it:
//   a0 = normalize(v1 - v0), a1 = normalize(cross(a0, v2 - v0)), a2 = -normalize(cross(a1, a0)), R = [a0 a1 a2]
//   k = (|v1 - v0| + |dot(a2, v2 - v0)|) / 2, c = (v0 + v1 + v2) / 3
//   mean = k R local_mean + c, quat = normalize(quat(R) (x) local_quat), scale = local_scale k
// The NumPy ground truth is realtime/avatar/binding.py (triangle_frames, bind).
//
// Buffer layouts (row-major, float32 unless said):
//   vertices     (V, 3)      posed mesh
//   faces        (F, 3) int32
//   binding      (N,) int32  parent face per Gaussian
//   local_means  (N, 3)
//   local_quats  (N, 4)      unit (w, x, y, z), normalised once on upload
//   local_scales (N, 3)      exp(log_scale), taken once on upload
//   means, quats, scales     (N, 3), (N, 4), (N, 3) outputs, as gsplat takes them

#define BIND_THREADS 256

struct Vec3 {
    float x, y, z;
};

__device__ __forceinline__ Vec3 load3(const float* p, int i) { return Vec3{p[3 * i], p[3 * i + 1], p[3 * i + 2]}; }
__device__ __forceinline__ Vec3 sub(Vec3 a, Vec3 b) { return Vec3{a.x - b.x, a.y - b.y, a.z - b.z}; }
__device__ __forceinline__ float dot(Vec3 a, Vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
__device__ __forceinline__ float norm(Vec3 a) { return sqrtf(dot(a, a)); }
__device__ __forceinline__ Vec3 scaled(Vec3 a, float s) { return Vec3{a.x * s, a.y * s, a.z * s}; }
__device__ __forceinline__ Vec3 cross(Vec3 a, Vec3 b) {
    return Vec3{a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}
__device__ __forceinline__ Vec3 normalized(Vec3 a) { return scaled(a, 1.0f / norm(a)); }

// Unit quaternion (w, x, y, z), w >= 0, of the rotation with columns a0, a1, a2: the candidate built on the
// largest of (trace, m00, m11, m22), as realtime/geometry.py:matrix_to_quaternion (first largest on ties).
__device__ __forceinline__ float4 frame_to_quaternion(Vec3 a0, Vec3 a1, Vec3 a2) {
    const float m00 = a0.x, m01 = a1.x, m02 = a2.x;
    const float m10 = a0.y, m11 = a1.y, m12 = a2.y;
    const float m20 = a0.z, m21 = a1.z, m22 = a2.z;
    const float trace = m00 + m11 + m22;
    float4 q;
    if (trace >= m00 && trace >= m11 && trace >= m22) {
        q = make_float4(1.0f + trace, m21 - m12, m02 - m20, m10 - m01);
    } else if (m00 >= m11 && m00 >= m22) {
        q = make_float4(m21 - m12, 1.0f + m00 - m11 - m22, m01 + m10, m02 + m20);
    } else if (m11 >= m22) {
        q = make_float4(m02 - m20, m01 + m10, 1.0f - m00 + m11 - m22, m12 + m21);
    } else {
        q = make_float4(m10 - m01, m02 + m20, m12 + m21, 1.0f - m00 - m11 + m22);
    }
    const float inv = (q.x < 0.0f ? -1.0f : 1.0f) / sqrtf(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w);
    return make_float4(q.x * inv, q.y * inv, q.z * inv, q.w * inv);
}

extern "C" __global__ void __launch_bounds__(BIND_THREADS)
bind_gaussians(const float* __restrict__ vertices, const int* __restrict__ faces, const int* __restrict__ binding,
               const float* __restrict__ local_means, const float4* __restrict__ local_quats,
               const float* __restrict__ local_scales, int n_gaussians, float* __restrict__ means,
               float4* __restrict__ quats, float* __restrict__ scales) {
    const int i = blockIdx.x * BIND_THREADS + threadIdx.x;
    if (i >= n_gaussians) return;
    const int f = binding[i];
    const Vec3 v0 = load3(vertices, faces[3 * f]);
    const Vec3 v1 = load3(vertices, faces[3 * f + 1]);
    const Vec3 v2 = load3(vertices, faces[3 * f + 2]);
    const Vec3 e1 = sub(v1, v0), e2 = sub(v2, v0);
    const float len1 = norm(e1);
    const Vec3 a0 = scaled(e1, 1.0f / len1);
    const Vec3 a1 = normalized(cross(a0, e2));
    const Vec3 a2 = scaled(normalized(cross(a1, a0)), -1.0f);
    const float k = 0.5f * (len1 + fabsf(dot(a2, e2)));

    const Vec3 l = load3(local_means, i);
    means[3 * i] = k * (a0.x * l.x + a1.x * l.y + a2.x * l.z) + (v0.x + v1.x + v2.x) / 3.0f;
    means[3 * i + 1] = k * (a0.y * l.x + a1.y * l.y + a2.y * l.z) + (v0.y + v1.y + v2.y) / 3.0f;
    means[3 * i + 2] = k * (a0.z * l.x + a1.z * l.y + a2.z * l.z) + (v0.z + v1.z + v2.z) / 3.0f;

    const float4 a = frame_to_quaternion(a0, a1, a2);
    const float4 b = local_quats[i];
    float4 q = make_float4(a.x * b.x - a.y * b.y - a.z * b.z - a.w * b.w,
                           a.x * b.y + a.y * b.x + a.z * b.w - a.w * b.z,
                           a.x * b.z - a.y * b.w + a.z * b.x + a.w * b.y,
                           a.x * b.w + a.y * b.z - a.z * b.y + a.w * b.x);
    const float inv = 1.0f / sqrtf(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w);
    quats[i] = make_float4(q.x * inv, q.y * inv, q.z * inv, q.w * inv);

    const Vec3 s = load3(local_scales, i);
    scales[3 * i] = s.x * k;
    scales[3 * i + 1] = s.y * k;
    scales[3 * i + 2] = s.z * k;
}
