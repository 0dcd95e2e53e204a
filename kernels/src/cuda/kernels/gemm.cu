// Tiled GEMM / implicit-GEMM convolution on the CUDA cores, f32 accumulation, storage T
// (float, or half_t for f16 storage). One 128×128 output tile per block of 256 threads, each
// thread an 8×8 register tile (two 4×4 quadrants 64 apart, so shared-memory reads are
// conflict-free float4s); K in steps of 8, double-buffered in shared memory with the next
// step's global loads in flight while the current one is multiplied.
//
// B (weights) is read as B(k, j) = b[(j / 128)·b_ps + k·b_rs + j % 128]: 128-column panels
// packed once on the host (b_ps = 128·K, b_rs = 128), or a plain row-major matrix
// (b_ps = 128, b_rs = ldb).

#define SG_BM 128
#define SG_BN 128
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

template <typename T>
__device__ __forceinline__ void sg_load_b(const GemmArgs& p, const T* Bk, int kk, int j, bool vec, float* r) {
    if (kk < p.k && vec && j + 3 < p.n) {
        ld4(Bk, r);
        return;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) r[i] = (kk < p.k && j + i < p.n) ? ld(Bk, i) : 0.f;
}

template <typename T, bool CONV>
__device__ __forceinline__ void simt_gemm(const GemmArgs& p) {
    __shared__ __align__(16) float As[2][SG_BK][SG_BM];
    __shared__ __align__(16) float Bs[2][SG_BK][SG_BN];
    const int tid = threadIdx.x, group = blockIdx.z;
    const int row0 = blockIdx.y * SG_BM, col0 = blockIdx.x * SG_BN;
    const T* A = (const T*)p.a;
    const T* B = (const T*)p.b + (i64)group * p.b_gs;
    const unsigned long long align = 4 * sizeof(T) - 1;  // four elements
    const bool vec_a = !CONV && (p.lda & 3) == 0 && (((unsigned long long)A) & align) == 0;
    const bool vec_b = (p.b_rs & 3) == 0 && (p.b_ps & 3) == 0 && (((unsigned long long)B) & align) == 0;

    // This thread's share of each K step: A(a_row, a_k..a_k+3) and B(b_k, b_col..b_col+3).
    const int a_r = tid >> 1, a_k = (tid & 1) * 4;
    const RowPos aq = row_pos<CONV>(p, row0 + a_r);
    const T* arow = A + (CONV ? 0 : (i64)(row0 + a_r) * p.lda);
    const int b_k = tid >> 5, b_c = (tid & 31) * 4, bj = col0 + b_c;
    // B row b_k of this thread's columns; advanced by SG_BK rows per step.
    const T* Bk = B + (i64)(bj >> 7) * p.b_ps + (bj & 127) + (i64)b_k * p.b_rs;
    const i64 b_step = (i64)SG_BK * p.b_rs;

    const int tx = tid & 15, ty = tid >> 4;
    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[i][j] = 0.f;

    float ra[4], rb[4];
    const int steps = (p.k + SG_BK - 1) / SG_BK;
    sg_load_a<T, CONV>(p, A, arow, aq, a_k, group, vec_a, ra);
    sg_load_b<T>(p, Bk, b_k, bj, vec_b, rb);
#pragma unroll
    for (int i = 0; i < 4; i++) As[0][a_k + i][a_r] = ra[i];
    *(float4*)&Bs[0][b_k][b_c] = make_float4(rb[0], rb[1], rb[2], rb[3]);
    __syncthreads();

    for (int s = 0; s < steps; s++) {
        const int buf = s & 1;
        const bool more = s + 1 < steps;
        if (more) {
            const int k0 = (s + 1) * SG_BK;
            Bk += b_step;
            sg_load_a<T, CONV>(p, A, arow, aq, k0 + a_k, group, vec_a, ra);
            sg_load_b<T>(p, Bk, k0 + b_k, bj, vec_b, rb);
        }
#pragma unroll
        for (int kk = 0; kk < SG_BK; kk++) {
            float a[8], b[8];
            *(float4*)&a[0] = *(const float4*)&As[buf][kk][ty * 4];
            *(float4*)&a[4] = *(const float4*)&As[buf][kk][ty * 4 + 64];
            *(float4*)&b[0] = *(const float4*)&Bs[buf][kk][tx * 4];
            *(float4*)&b[4] = *(const float4*)&Bs[buf][kk][tx * 4 + 64];
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 8; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) {
#pragma unroll
            for (int i = 0; i < 4; i++) As[buf ^ 1][a_k + i][a_r] = ra[i];
            *(float4*)&Bs[buf ^ 1][b_k][b_c] = make_float4(rb[0], rb[1], rb[2], rb[3]);
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int row = row0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
        const RowPos q = row_pos<CONV>(p, row);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int col = col0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + j - 4);
            epilogue_store<T>(p, q, row, col, group, acc[i][j]);
        }
    }
}

extern "C" __global__ void __launch_bounds__(256, 2) gemm_f32(GemmArgs p) { simt_gemm<float, false>(p); }
extern "C" __global__ void __launch_bounds__(256, 2) gemm_f16(GemmArgs p) { simt_gemm<half_t, false>(p); }
extern "C" __global__ void __launch_bounds__(256, 2) conv_f32(GemmArgs p) { simt_gemm<float, true>(p); }
extern "C" __global__ void __launch_bounds__(256, 2) conv_f16(GemmArgs p) { simt_gemm<half_t, true>(p); }
