// Tiled GEMM / implicit-GEMM convolution on the CUDA cores, f32 accumulation, storage T
// (float, or half_t for f16 storage). One 128 × BN output tile per block of 256 threads: at
// BN = 128 each thread holds an 8×8 register tile (two 4×4 quadrants 64 apart, so shared-memory
// reads are conflict-free float4s); at BN = 32 (outputs of few channels, which would leave most
// of a 128-column tile idle) an 8×2 one. K in steps of 8, double-buffered in shared memory with
// the next step's global loads in flight while the current one is multiplied. With split K
// (few tiles for the SMs) each block reduces one K range into the partial sums; a range ends
// on a K step or at K, so the loads' bound stays K.
//
// B (weights) is read as B(k, j) = b[(j / 128)·b_ps + k·b_rs + j % 128]: 128-column panels
// packed once on the host (b_ps = 128·K, b_rs = 128), or a plain row-major matrix
// (b_ps = 128, b_rs = ldb).

#define SG_BM 128
#define SG_BK 8

template <typename T, bool CONV>
__device__ __forceinline__ void sg_load_a(const GemmArgs& p, const T* A, const T* arow, const RowPos& q, int k0,
                                          int group, bool vec, float* r) {
    if (!CONV && vec && q.valid && k0 + 3 < p.k) {
        ld4(arow + k0, r);
        return;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int kk = k0 + i;
        float v = 0.f;
        if (q.valid && kk < p.k) {
            if (!CONV) {
                v = ld(arow, kk);
            } else {
                i64 off = conv_a_offset(p, q, kk, group);
                if (off >= 0) v = ld(A, off);
            }
        }
        r[i] = v;
    }
}

// CB consecutive columns of B row kk from column j (CB = 4: one vector load where aligned).
template <typename T, int CB>
__device__ __forceinline__ void sg_load_b(const GemmArgs& p, const T* Bk, int kk, int j, bool vec, float* r) {
    if (CB == 4 && kk < p.k && vec && j + 3 < p.n) {
        ld4(Bk, r);
        return;
    }
#pragma unroll
    for (int i = 0; i < CB; i++) r[i] = (kk < p.k && j + i < p.n) ? ld(Bk, i) : 0.f;
}

template <int CB>
__device__ __forceinline__ void sg_store_b(float* dst, const float* rb) {
    if (CB == 4) {
        *(float4*)dst = make_float4(rb[0], rb[1], rb[2], rb[3]);
    } else {
#pragma unroll
        for (int i = 0; i < CB; i++) dst[i] = rb[i];
    }
}

// Column of register `j` of thread column `tx` in a BN-wide tile (TN registers per thread).
template <int BN>
__device__ __forceinline__ int sg_col(int tx, int j) {
    return BN == 128 ? (j < 4 ? tx * 4 + j : 64 + tx * 4 + j - 4) : tx * (BN / 16) + j;
}

// SPLIT: the block reduces K range `blockIdx.z % splits` into the partial sums (an entry point
// of its own, as the extra registers would make the 128-column kernel spill at 2 blocks/SM).
template <typename T, bool CONV, int BN, bool SPLIT>
__device__ __forceinline__ void simt_gemm(const GemmArgs& p) {
    enum { TN = BN / 16, CB = BN / 32 };  // registers per thread row; B loads per thread
    __shared__ __align__(16) float As[2][SG_BK][SG_BM];
    __shared__ __align__(16) float Bs[2][SG_BK][BN];
    const int tid = threadIdx.x;
    const KRange kr = SPLIT ? k_range(p) : whole_k(p);
    const int group = kr.group;
    const int row0 = blockIdx.y * SG_BM, col0 = blockIdx.x * BN;
    const T* A = (const T*)p.a;
    const T* B = (const T*)p.b + (i64)group * p.b_gs;
    const unsigned long long align = 4 * sizeof(T) - 1;  // four elements
    const bool vec_a = !CONV && (p.lda & 3) == 0 && (((unsigned long long)A) & align) == 0;
    const bool vec_b = (p.b_rs & 3) == 0 && (p.b_ps & 3) == 0 && (((unsigned long long)B) & align) == 0;

    // This thread's share of each K step: A(a_row, a_k..a_k+3) and B(b_k, b_col..b_col+CB-1).
    const int a_r = tid >> 1, a_k = (tid & 1) * 4;
    const RowPos aq = row_pos<CONV>(p, row0 + a_r);
    const T* arow = A + (CONV ? 0 : (i64)(row0 + a_r) * p.lda);
    const int b_k = tid >> 5, b_c = (tid & 31) * CB, bj = col0 + b_c;
    // B row kbeg + b_k of this thread's columns; advanced by SG_BK rows per step.
    const T* Bk = B + (i64)(bj >> 7) * p.b_ps + (bj & 127) + (i64)(kr.kbeg + b_k) * p.b_rs;
    const i64 b_step = (i64)SG_BK * p.b_rs;

    const int tx = tid & 15, ty = tid >> 4;
    float acc[8][TN];
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.f;

    float ra[4], rb[CB];
    const int steps = (kr.kend - kr.kbeg + SG_BK - 1) / SG_BK;
    sg_load_a<T, CONV>(p, A, arow, aq, kr.kbeg + a_k, group, vec_a, ra);
    sg_load_b<T, CB>(p, Bk, kr.kbeg + b_k, bj, vec_b, rb);
#pragma unroll
    for (int i = 0; i < 4; i++) As[0][a_k + i][a_r] = ra[i];
    sg_store_b<CB>(&Bs[0][b_k][b_c], rb);
    __syncthreads();

    for (int s = 0; s < steps; s++) {
        const int buf = s & 1;
        const bool more = s + 1 < steps;
        if (more) {
            const int k0 = kr.kbeg + (s + 1) * SG_BK;
            Bk += b_step;
            sg_load_a<T, CONV>(p, A, arow, aq, k0 + a_k, group, vec_a, ra);
            sg_load_b<T, CB>(p, Bk, k0 + b_k, bj, vec_b, rb);
        }
#pragma unroll
        for (int kk = 0; kk < SG_BK; kk++) {
            float a[8], b[TN];
            *(float4*)&a[0] = *(const float4*)&As[buf][kk][ty * 4];
            *(float4*)&a[4] = *(const float4*)&As[buf][kk][ty * 4 + 64];
            if (BN == 128) {
                *(float4*)&b[0] = *(const float4*)&Bs[buf][kk][tx * 4];
                *(float4*)&b[4] = *(const float4*)&Bs[buf][kk][tx * 4 + 64];
            } else {
#pragma unroll
                for (int j = 0; j < TN; j++) b[j] = Bs[buf][kk][tx * TN + j];
            }
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) {
#pragma unroll
            for (int i = 0; i < 4; i++) As[buf ^ 1][a_k + i][a_r] = ra[i];
            sg_store_b<CB>(&Bs[buf ^ 1][b_k][b_c], rb);
        }
        __syncthreads();
    }

    if (SPLIT && p.splits > 1) {
        float* ws = split_partials(p, kr);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int row = row0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
#pragma unroll
            for (int j = 0; j < TN; j++) split_store(p, ws, row, col0 + sg_col<BN>(tx, j), acc[i][j]);
        }
        return;
    }
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int row = row0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
        const RowPos q = row_pos<CONV>(p, row);
#pragma unroll
        for (int j = 0; j < TN; j++) epilogue_store<T>(p, q, row, col0 + sg_col<BN>(tx, j), group, acc[i][j]);
    }
}

// The dense and convolution entry points of one tile: gemm_SUFFIX, conv_SUFFIX; MINB blocks per
// SM.
#define SIMT_ENTRIES(SUFFIX, T, BN, SPLIT, MINB)                                                      \
    extern "C" __global__ void __launch_bounds__(256, MINB) gemm_##SUFFIX(GemmArgs p) {               \
        simt_gemm<T, false, BN, SPLIT>(p);                                                            \
    }                                                                                                 \
    extern "C" __global__ void __launch_bounds__(256, MINB) conv_##SUFFIX(GemmArgs p) {               \
        simt_gemm<T, true, BN, SPLIT>(p);                                                             \
    }
SIMT_ENTRIES(f32, float, 128, false, 2)
SIMT_ENTRIES(f16, half_t, 128, false, 2)
// Split K (launches of few tiles: one block per SM is enough).
SIMT_ENTRIES(f32_sk, float, 128, true, 1)
SIMT_ENTRIES(f16_sk, half_t, 128, true, 1)
// 32-column tiles (16 accumulators a thread), with or without split K.
SIMT_ENTRIES(f32_n32, float, 32, true, 2)
SIMT_ENTRIES(f16_n32, half_t, 32, true, 2)

extern "C" __global__ void splitk_reduce_f32(GemmArgs p) { splitk_reduce<float>(p); }
extern "C" __global__ void splitk_reduce_f16(GemmArgs p) { splitk_reduce<half_t>(p); }
