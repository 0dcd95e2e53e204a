// f16 tensor-core GEMM / implicit-GEMM convolution for sm_70 … sm_75 (Volta, Jetson Xavier,
// Turing), which have tensor cores but neither cp.async nor mma.m16n8k16: the warp-level
// `wmma.mma.sync.m16n16k16` (f16 in, f32 accumulators) on fragments read from shared memory.
// A 128 × 128 output tile per block of 8 warps (2 × 4, each 64 × 32 = 4 × 2 fragments); K in
// steps of 32 halves, double-buffered: the next step's 16-byte chunks are loaded into registers
// while the current one is multiplied, then stored to the other buffer. Rows are padded to 40
// halves (80 bytes), so a fragment's 16 rows start in different banks.
//
// Same operand rules as mma.cu (the host picks this kernel below sm_80, or anywhere with
// EDGEPACK_MMA=wmma). The epilogue goes through a per-warp 16 × 16 f32 scratch tile.

#define WM_BK 32
#define WM_PITCH (WM_BK + 8)

__device__ __forceinline__ void wm_load_a(unsigned* a, unsigned addr) {
    asm volatile("wmma.load.a.sync.aligned.row.m16n16k16.shared.f16 {%0, %1, %2, %3, %4, %5, %6, %7}, [%8], %9;"
                 : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3]), "=r"(a[4]), "=r"(a[5]), "=r"(a[6]), "=r"(a[7])
                 : "r"(addr), "r"(WM_PITCH));
}

// B as a column-major K × 16 block: its column j is row j of the transposed weights.
__device__ __forceinline__ void wm_load_b(unsigned* b, unsigned addr) {
    asm volatile("wmma.load.b.sync.aligned.col.m16n16k16.shared.f16 {%0, %1, %2, %3, %4, %5, %6, %7}, [%8], %9;"
                 : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3]), "=r"(b[4]), "=r"(b[5]), "=r"(b[6]), "=r"(b[7])
                 : "r"(addr), "r"(WM_PITCH));
}

__device__ __forceinline__ void wm_mma(float* d, const unsigned* a, const unsigned* b) {
    asm volatile(
        "wmma.mma.sync.aligned.row.col.m16n16k16.f32.f32 {%0, %1, %2, %3, %4, %5, %6, %7}, "
        "{%8, %9, %10, %11, %12, %13, %14, %15}, {%16, %17, %18, %19, %20, %21, %22, %23}, "
        "{%0, %1, %2, %3, %4, %5, %6, %7};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(a[4]), "r"(a[5]), "r"(a[6]), "r"(a[7]), "r"(b[0]),
          "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(b[4]), "r"(b[5]), "r"(b[6]), "r"(b[7]));
}

// Stores a fragment as a row-major 16 × 16 f32 tile.
__device__ __forceinline__ void wm_store(unsigned addr, const float* d) {
    asm volatile("wmma.store.d.sync.aligned.row.m16n16k16.shared.f32 [%0], {%1, %2, %3, %4, %5, %6, %7, %8}, 16;"
                 ::"r"(addr), "f"(d[0]), "f"(d[1]), "f"(d[2]), "f"(d[3]), "f"(d[4]), "f"(d[5]), "f"(d[6]), "f"(d[7])
                 : "memory");
}

// This thread's two 16-byte chunks of A and of B for K step `s` (chunk ld_c of rows ld_r and
// ld_r + 64), zero outside the matrices and in padding.
template <bool CONV>
__device__ __forceinline__ void wm_fetch(const GemmArgs& p, const half_t* A, const half_t* B, const RowPos* aq,
                                         int row0, int col0, int ld_r, int ld_c, int group, int s, uint4* ra,
                                         uint4* rb) {
    const int k = s * WM_BK + ld_c * 8;
    const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int r = ld_r + h * 64, j = col0 + r;
        ra[h] = zero;
        if (aq[h].valid && k < p.k) {
            if (!CONV) {
                ra[h] = *(const uint4*)(A + (i64)(row0 + r) * p.lda + k);
            } else {
                const i64 off = conv_a_offset(p, aq[h], k, group);
                if (off >= 0) ra[h] = *(const uint4*)(A + off);
            }
        }
        rb[h] = (j < p.n && k < p.k) ? *(const uint4*)(B + (i64)j * p.b_rs + k) : zero;
    }
}

template <bool CONV>
__device__ __forceinline__ void wm_gemm(const GemmArgs& p) {
    __shared__ __align__(256) half_t sa[2][128 * WM_PITCH];
    __shared__ __align__(256) half_t sb[2][128 * WM_PITCH];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, group = blockIdx.z;
    const int warp_m = warp & 1, warp_n = warp >> 1;
    const int row0 = blockIdx.y * 128, col0 = blockIdx.x * 128;
    const half_t* A = (const half_t*)p.a;
    const half_t* B = (const half_t*)p.b + (i64)group * p.b_gs;
    const int ld_r = tid >> 2, ld_c = tid & 3;
    RowPos aq[2];
    aq[0] = row_pos<CONV>(p, row0 + ld_r);
    aq[1] = row_pos<CONV>(p, row0 + ld_r + 64);

    float acc[4][2][8];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int e = 0; e < 8; e++) acc[i][j][e] = 0.f;

    uint4 ra[2], rb[2];
    const int steps = (p.k + WM_BK - 1) / WM_BK;
    wm_fetch<CONV>(p, A, B, aq, row0, col0, ld_r, ld_c, group, 0, ra, rb);
    for (int s = 0; s < steps; s++) {
        const int buf = s & 1;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            *(uint4*)&sa[buf][(ld_r + h * 64) * WM_PITCH + ld_c * 8] = ra[h];
            *(uint4*)&sb[buf][(ld_r + h * 64) * WM_PITCH + ld_c * 8] = rb[h];
        }
        __syncthreads();
        if (s + 1 < steps) wm_fetch<CONV>(p, A, B, aq, row0, col0, ld_r, ld_c, group, s + 1, ra, rb);
        const unsigned as = smem_addr(&sa[buf][0]), bs = smem_addr(&sb[buf][0]);
#pragma unroll
        for (int kk = 0; kk < WM_BK / 16; kk++) {
            // Both B fragments, then one A fragment at a time (register budget: 128 a thread).
            unsigned af[8], bf[2][8];
#pragma unroll
            for (int j = 0; j < 2; j++) wm_load_b(bf[j], bs + 2 * ((warp_n * 32 + j * 16) * WM_PITCH + kk * 16));
#pragma unroll
            for (int i = 0; i < 4; i++) {
                wm_load_a(af, as + 2 * ((warp_m * 64 + i * 16) * WM_PITCH + kk * 16));
#pragma unroll
                for (int j = 0; j < 2; j++) wm_mma(acc[i][j], af, bf[j]);
            }
        }
        // The buffer written next iteration was read one iteration ago: every warp is past it.
        __syncthreads();
    }

    // Each warp stages one fragment at a time in its own 16 × 16 f32 scratch (inside sa, free
    // now) and finishes its 256 elements, 8 per lane, in a loop.
    float* scratch = (float*)&sa[0][0] + warp * 256;
    const unsigned scratch_addr = smem_addr(scratch);
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int j = 0; j < 2; j++) {
            wm_store(scratch_addr, acc[i][j]);
            __syncwarp();
            const int tr = lane >> 1, row = row0 + warp_m * 64 + i * 16 + tr;
            const RowPos q = row_pos<CONV>(p, row);
            const int c0 = (lane & 1) * 8, col = col0 + warp_n * 32 + j * 16 + c0;
            for (int e = 0; e < 8; e++) epilogue_store<half_t>(p, q, row, col + e, group, scratch[tr * 16 + c0 + e]);
            __syncwarp();
        }
    }
}

extern "C" __global__ void __launch_bounds__(256, 2) gemm_f16_wmma(GemmArgs p) { wm_gemm<false>(p); }
extern "C" __global__ void __launch_bounds__(256, 2) conv_f16_wmma(GemmArgs p) { wm_gemm<true>(p); }
