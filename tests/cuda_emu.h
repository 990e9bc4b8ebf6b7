// Runs CUDA kernels on the CPU, for tests on machines without a GPU.
//
// Each CUDA thread of a block is a std::thread; blocks run one after another; __syncthreads is a
// std::barrier, and a thread that returns drops out of it (as exited threads do on the GPU). __shared__
// variables become function statics: one copy, shared by the threads of the block that is running.
// Enough for kernels that use shared memory and __syncthreads (no warp intrinsics, no atomics).
// A kernel is called as cuLaunchKernel calls it: grid, block, and an array of pointers to its arguments.
#pragma once

#include <barrier>
#include <cmath>
#include <cstddef>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

struct uint3 {
    unsigned x, y, z;
};
struct float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

inline thread_local uint3 threadIdx;
inline uint3 blockIdx, blockDim, gridDim;
inline std::barrier<>* emu_block_barrier = nullptr;

inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

template <typename... A, std::size_t... I>
void emu_call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<A>*>(args[I])...);
}

template <typename... A>
void emu_launch(void (*kernel)(A...), const unsigned* grid, const unsigned* block, void** args) {
    gridDim = uint3{grid[0], grid[1], grid[2]};
    blockDim = uint3{block[0], block[1], block[2]};
    const unsigned n_threads = block[0] * block[1] * block[2];
    for (unsigned bz = 0; bz < grid[2]; ++bz)
        for (unsigned by = 0; by < grid[1]; ++by)
            for (unsigned bx = 0; bx < grid[0]; ++bx) {
                blockIdx = uint3{bx, by, bz};
                std::barrier<> barrier(n_threads);
                emu_block_barrier = &barrier;
                std::vector<std::thread> threads;
                threads.reserve(n_threads);
                for (unsigned t = 0; t < n_threads; ++t)
                    threads.emplace_back([=, &barrier] {
                        threadIdx = uint3{t % block[0], (t / block[0]) % block[1], t / (block[0] * block[1])};
                        emu_call(kernel, args, std::index_sequence_for<A...>{});
                        barrier.arrive_and_drop();
                    });
                for (auto& thread : threads) thread.join();
            }
}
