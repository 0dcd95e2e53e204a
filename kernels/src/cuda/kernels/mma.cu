// f16 tensor-core GEMM / implicit-GEMM convolution for sm_80 and newer: mma.sync m16n8k16 with
// f32 accumulators, operands staged through an MM_STAGES-deep cp.async pipeline in dynamic
// shared memory and read with ldmatrix from XOR-swizzled rows (conflict-free). A 128 × MM_BN
// output tile per block of 8 warps (2 × 4, each 64 × MM_BN/4); K in steps of MM_BK.
//
// The geometry is set by the host with -D (see `MmaConfig` in compile.rs); the defaults are
// the measured best on an H100 (docs/performance.md).
//
// A is f16 (dense m × k with lda % 8 == 0, or an NHWC image whose per-group channel count is a
// multiple of 8, so every 16-byte chunk of K lies inside one tap); B is the transposed weights
// Bt(j, k) = b[j·b_rs + k], f16, with k % 8 == 0. The host falls back to gemm_f16 otherwise.

#ifndef MM_BN
#define MM_BN 128
#endif
#ifndef MM_BK
#define MM_BK 64
#endif
#ifndef MM_STAGES
#define MM_STAGES 2
#endif

// A 128 × BN output tile's operand staging by LOADERS threads: each K step of BK halves is
// copied in 16-byte chunks, ROWS rows per pass of the loaders; STAGES steps are resident at once.
template <int BN_, int BK_, int STAGES_, int LOADERS = 256>
struct MmGeo {
    // (Enumerators, not constexpr members: NVRTC 11's default dialect predates them.)
    enum { BM = 128, BN = BN_, BK = BK_, STAGES = STAGES_ };
    enum { CH = BK / 8 };              // 16-byte chunks per tile row
    enum { ROWS = LOADERS / CH };      // rows one pass of the loaders copies
    enum { PASSES_A = BM / ROWS, PASSES_B = BN / ROWS };
    enum { TILE_A = BM * BK, TILE_B = BN * BK };  // halves per stage
};

// Half offset of 16-byte chunk `c` of row `r` in a [rows][BK] tile: the chunk index is XORed
// with bits of the row so that ldmatrix's eight rows of one logical chunk hit distinct banks.
// At BK = 64 (128-byte rows) this is exactly the hardware's 128-byte swizzle (byte address
// bits 4–6 XOR bits 7–9), which the wgmma kernel's descriptors name.
template <int BK>
__device__ __forceinline__ int swz(int r, int c) {
    return BK == 64 ? r * 64 + ((c ^ (r & 7)) << 3) : r * BK + ((c ^ ((r >> 1) & 3)) << 3);
}

__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void ldmatrix_x4(unsigned* r, unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void mma16816(float* c, const unsigned* a, const unsigned* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Issues this thread's copies of K step `s` into stage `s % G::STAGES`: chunk ld_c of rows
// ld_r + h·G::ROWS of each operand, zero-filled outside the matrices and in padding.
template <bool CONV, class G>
__device__ __forceinline__ void mm_load_stage(const GemmArgs& p, const half_t* A, const half_t* B, const RowPos* aq,
                                              int row0, int col0, int ld_r, int ld_c, const KRange& kr,
                                              unsigned as0, unsigned bs0, int s) {
    const int stage = s % G::STAGES, k = kr.kbeg + s * G::BK + ld_c * 8, group = kr.group;
#pragma unroll
    for (int h = 0; h < G::PASSES_A; h++) {
        const int r = ld_r + h * G::ROWS;
        const half_t* src = A;
        bool ok = aq[h].valid && k < p.k;  // (a split-K range ends on a K step or at K)
        if (ok) {
            if (!CONV) {
                src = A + (i64)(row0 + r) * p.lda + k;
            } else {
                i64 off = conv_a_offset(p, aq[h], k, group);
                ok = off >= 0;
                if (ok) src = A + off;
            }
        }
        cp_async16(as0 + 2 * (stage * G::TILE_A + swz<G::BK>(r, ld_c)), src, ok);
    }
#pragma unroll
    for (int h = 0; h < G::PASSES_B; h++) {
        const int r = ld_r + h * G::ROWS, j = col0 + r;
        const bool ok = j < p.n && k < p.k;
        cp_async16(bs0 + 2 * (stage * G::TILE_B + swz<G::BK>(r, ld_c)), ok ? B + (i64)j * p.b_rs + k : B, ok);
    }
}

// A 128 × BN tile (BN = 64, 128 or 256; MM_BN by default, 64 for outputs of few channels).
// SPLIT: the block reduces K range `blockIdx.z % splits` into the partial sums (entry points of
// their own: the 128-column kernel would spill at 2 blocks/SM).
template <bool CONV, int BN, bool SPLIT>
__device__ __forceinline__ void mma_gemm(const GemmArgs& p) {
    typedef MmGeo<BN, MM_BK, MM_STAGES> MmTile;
    enum { MM_WN = BN / 4 };  // warp tile columns
    extern __shared__ __align__(128) half_t mm_smem[];  // [stage][A tile], then [stage][B tile]
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const KRange kr = k_range(p);
    const int group = kr.group;
    const int warp_m = warp & 1, warp_n = warp >> 1;
    const int row0 = blockIdx.y * MmTile::BM, col0 = blockIdx.x * BN;
    const half_t* A = (const half_t*)p.a;
    const half_t* B = (const half_t*)p.b + (i64)group * p.b_gs;

    const int ld_r = tid / MmTile::CH, ld_c = tid % MmTile::CH;
    RowPos aq[MmTile::PASSES_A];
#pragma unroll
    for (int h = 0; h < MmTile::PASSES_A; h++) aq[h] = row_pos<CONV>(p, row0 + ld_r + h * MmTile::ROWS);

    float acc[4][MM_WN / 8][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < MM_WN / 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

    const int steps = (kr.kend - kr.kbeg + MM_BK - 1) / MM_BK;
    const unsigned as0 = smem_addr(mm_smem), bs0 = as0 + 2 * MM_STAGES * MmTile::TILE_A;

#pragma unroll
    for (int s = 0; s < MM_STAGES - 1; s++) {
        if (s < steps) mm_load_stage<CONV, MmTile>(p, A, B, aq, row0, col0, ld_r, ld_c, kr, as0, bs0, s);
        asm volatile("cp.async.commit_group;");
    }

    for (int s = 0; s < steps; s++) {
        asm volatile("cp.async.wait_group %0;" ::"n"(MM_STAGES - 2));
        __syncthreads();
        if (s + MM_STAGES - 1 < steps) mm_load_stage<CONV, MmTile>(p, A, B, aq, row0, col0, ld_r, ld_c, kr, as0, bs0, s + MM_STAGES - 1);
        asm volatile("cp.async.commit_group;");

        const int stage = s % MM_STAGES;
        const unsigned as = as0 + 2 * stage * MmTile::TILE_A, bs = bs0 + 2 * stage * MmTile::TILE_B;
#pragma unroll
        for (int ks = 0; ks < MM_BK / 16; ks++) {
            unsigned af[4][4], bf[MM_WN / 8][2];
#pragma unroll
            for (int mi = 0; mi < 4; mi++) {
                const int r = warp_m * 64 + mi * 16 + (lane & 15);
                ldmatrix_x4(af[mi], as + 2 * swz<MM_BK>(r, ks * 2 + (lane >> 4)));
            }
#pragma unroll
            for (int nj = 0; nj < MM_WN / 16; nj++) {
                unsigned t[4];
                const int r = warp_n * MM_WN + nj * 16 + (lane & 7) + ((lane >> 4) << 3);
                ldmatrix_x4(t, bs + 2 * swz<MM_BK>(r, ks * 2 + ((lane >> 3) & 1)));
                bf[nj * 2][0] = t[0];
                bf[nj * 2][1] = t[1];
                bf[nj * 2 + 1][0] = t[2];
                bf[nj * 2 + 1][1] = t[3];
            }
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < MM_WN / 8; ni++) mma16816(acc[mi][ni], af[mi], bf[ni]);
        }
    }
    asm volatile("cp.async.wait_group 0;");

    float* ws = SPLIT && p.splits > 1 ? split_partials(p, kr) : (float*)0;
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int row = row0 + warp_m * 64 + mi * 16 + (lane >> 2) + hr * 8;
            const RowPos q = row_pos<CONV>(p, row);
#pragma unroll
            for (int ni = 0; ni < MM_WN / 8; ni++) {
                const int col = col0 + warp_n * MM_WN + ni * 8 + (lane & 3) * 2;
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float v = acc[mi][ni][hr * 2 + e];
                    if (!ws) epilogue_store<half_t>(p, q, row, col + e, group, v);
                    else split_store(p, ws, row, col + e, v);
                }
            }
        }
    }
}

// Blocks per SM the launch bounds ask for.
#define MM_MINB(BN) ((BN) == 256 ? 1 : 2)
#define MMA_ENTRIES(SUFFIX, BN, SPLIT, MINB)                                                            \
    extern "C" __global__ void __launch_bounds__(256, MINB) gemm_f16_##SUFFIX(GemmArgs p) {             \
        mma_gemm<false, BN, SPLIT>(p);                                                                  \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(256, MINB) conv_f16_##SUFFIX(GemmArgs p) {             \
        mma_gemm<true, BN, SPLIT>(p);                                                                   \
    }
MMA_ENTRIES(mma, MM_BN, false, MM_MINB(MM_BN))
// Split K (launches of few tiles: one block per SM is enough).
MMA_ENTRIES(mma_sk, MM_BN, true, 1)
// Outputs of up to 64 columns: half the tile a 128-column one would leave idle; split K or not.
MMA_ENTRIES(mma_n64, 64, true, 2)
