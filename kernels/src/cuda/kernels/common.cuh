// Shared by every edgepack CUDA kernel: f16 storage helpers, the fused epilogue, and the
// argument blocks the host fills (their layout is mirrored by `#[repr(C)]` structs in
// kernels/src/cuda/args.rs: change both together).
//
// No CUDA headers are included: NVRTC compiles this alone, on any toolkit from 11.4 up.

typedef unsigned short half_t;  // IEEE binary16 bits; arithmetic is always in f32
typedef long long i64;

__device__ __forceinline__ float h2f(half_t h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ half_t f2h(float f) {
    half_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
// The shared-memory address of a generic pointer into shared memory.
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    unsigned r;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
    return r;
}

__device__ __forceinline__ float ld(const float* p, i64 i) { return p[i]; }
__device__ __forceinline__ float ld(const half_t* p, i64 i) { return h2f(p[i]); }
// Four consecutive values from a 4-element-aligned address.
__device__ __forceinline__ void ld4(const float* p, float* r) {
    float4 v = *(const float4*)p;
    r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
}
__device__ __forceinline__ void ld4(const half_t* p, float* r) {
    uint2 v = *(const uint2*)p;
    r[0] = h2f((half_t)(v.x & 0xffff)); r[1] = h2f((half_t)(v.x >> 16));
    r[2] = h2f((half_t)(v.y & 0xffff)); r[3] = h2f((half_t)(v.y >> 16));
}
__device__ __forceinline__ void st(float* p, i64 i, float v) { p[i] = v; }
__device__ __forceinline__ void st(half_t* p, i64 i, float v) { p[i] = f2h(v); }

// Activation codes: 0 identity, 1 relu, 2 clip(p0, p1), 3 hard-sigmoid(alpha p0, beta p1),
// 4 hard-swish, 5 sigmoid.
__device__ __forceinline__ float activate(float x, int act, float p0, float p1) {
    switch (act) {
    case 1: return fmaxf(x, 0.f);
    case 2: return fminf(fmaxf(x, p0), p1);
    case 3: return fminf(fmaxf(fmaf(x, p0, p1), 0.f), 1.f);
    case 4: return x * fminf(fmaxf(fmaf(x, 1.f / 6.f, 0.5f), 0.f), 1.f);
    case 5: return 1.f / (1.f + expf(-x));
    default: return x;
    }
}

// One GEMM or implicit-GEMM convolution launch: C = act(A·B + bias + residual).
//
// Rows of the GEMM are output pixels (or matrix rows), columns output channels, and the
// reduction runs over (tap, input channel). blockIdx.z is the group.
struct GemmArgs {
    const void* a;         // dense: m × k, row stride lda; conv: NHWC input
    const void* b;         // packed weights (see the kernel for its layout)
    void* c;               // output
    const float* bias;     // per row (bias_mode 1) or per column (2), or null
    const void* residual;  // output-shaped, or null
    const int* offs;       // conv: per tap (dy, dx) input offsets
    i64 lda;               // dense A row stride
    i64 ldc;               // dense C row stride
    i64 b_ps;              // f32 B: stride between 128-column panels; f16 B: unused
    i64 b_rs;              // f32 B: stride between k rows; f16 B: stride between columns
    i64 b_gs;              // B stride between groups
    int m, n, k;           // per group
    int bias_mode;
    int act;
    float p0, p1;
    int conv;              // 0: dense A/C (gemm_* kernels); 1: convolution geometry below (conv_*)
    int in_h, in_w, in_c;  // input image (in_c counts every group's channels)
    int gh, gw;            // GEMM row grid per image: rows = images · gh · gw
    int is_h, is_w;        // input step per grid step
    int cg_in;             // input channels per group (k = taps · cg_in)
    int out_h, out_w;      // output image
    int oy0, ox0;          // output position of grid (0, 0)
    int os_h, os_w;        // output step per grid step
    int c_out;             // output channels (every group's)
    float* ws;             // split-K partial sums [split][group][m][n], or null
    int splits;            // K ranges per output tile (blockIdx.z = group · splits + split); 0 or 1: none
    int k_chunk;           // reduction length per K range (a multiple of the kernel's K step)
    int groups;            // groups (the split-K reduction's extent)
};

// The reduction range of this block: K range `split` of group `group`.
struct KRange {
    int split, group, kbeg, kend;
};

// The whole reduction of group blockIdx.z (a launch without split K).
__device__ __forceinline__ KRange whole_k(const GemmArgs& p) {
    KRange r;
    r.split = 0;
    r.group = blockIdx.z;
    r.kbeg = 0;
    r.kend = p.k;
    return r;
}

__device__ __forceinline__ KRange k_range(const GemmArgs& p) {
    KRange r;
    const int splits = p.splits > 1 ? p.splits : 1;
    r.split = blockIdx.z % splits;
    r.group = blockIdx.z / splits;
    r.kbeg = splits > 1 ? r.split * p.k_chunk : 0;
    r.kend = splits > 1 ? min(p.k, r.kbeg + p.k_chunk) : p.k;
    return r;
}

// Where row `r` of a convolution GEMM reads from and writes to.
struct RowPos {
    int img, iy0, ix0;     // input image and top-left before tap offsets
    i64 out;               // element offset of the row's first output channel
    bool valid;
};

template <bool CONV>
__device__ __forceinline__ RowPos row_pos(const GemmArgs& p, int r) {
    RowPos q;
    q.valid = r < p.m;
    if (!CONV) {
        q.img = 0; q.iy0 = 0; q.ix0 = 0;
        q.out = (i64)r * p.ldc;
        return q;
    }
    int per = p.gh * p.gw;
    int img = r / per, rem = r - img * per;
    int t = rem / p.gw, u = rem - t * p.gw;
    q.img = img;
    q.iy0 = t * p.is_h;
    q.ix0 = u * p.is_w;
    q.out = (((i64)img * p.out_h + p.oy0 + t * p.os_h) * p.out_w + p.ox0 + u * p.os_w) * p.c_out;
    return q;
}

// Element offset of A(row, k) for a convolution row, or -1 where it reads padding.
__device__ __forceinline__ i64 conv_a_offset(const GemmArgs& p, const RowPos& q, int kk, int group) {
    int tap = kk / p.cg_in, ci = kk - tap * p.cg_in;
    int iy = q.iy0 + p.offs[2 * tap], ix = q.ix0 + p.offs[2 * tap + 1];
    if ((unsigned)iy >= (unsigned)p.in_h || (unsigned)ix >= (unsigned)p.in_w) return -1;
    return (((i64)q.img * p.in_h + iy) * p.in_w + ix) * p.in_c + (i64)group * p.cg_in + ci;
}

// The fused epilogue for one output element; `col` is the column within the group.
template <typename T>
__device__ __forceinline__ void epilogue_store(const GemmArgs& p, const RowPos& q, int row, int col, int group,
                                               float acc) {
    if (!q.valid || col >= p.n) return;
    i64 idx = q.out + (i64)group * p.n + col;
    if (p.bias_mode == 1) acc += p.bias[row];
    else if (p.bias_mode == 2) acc += p.bias[group * p.n + col];
    if (p.residual) acc += ld((const T*)p.residual, idx);
    st((T*)p.c, idx, activate(acc, p.act, p.p0, p.p1));
}

// This block's split-K partial sums: the [m][n] plane of its K range and group.
__device__ __forceinline__ float* split_partials(const GemmArgs& p, const KRange& kr) {
    return p.ws + ((i64)kr.split * p.groups + kr.group) * p.m * p.n;
}

// One accumulator into this block's partial sums (`ws` from split_partials), inside the output.
__device__ __forceinline__ void split_store(const GemmArgs& p, float* ws, int row, int col, float acc) {
    if (row < p.m && col < p.n) ws[(i64)row * p.n + col] = acc;
}

// Sums the split-K partial sums of every output element in a fixed order (the result does
// not depend on scheduling) and applies the epilogue.
template <typename T>
__device__ __forceinline__ void splitk_reduce(const GemmArgs& p) {
    const i64 plane = (i64)p.m * p.n, total = plane * p.groups;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) {
        const int group = (int)(i / plane);
        const i64 rc = i - group * plane;
        const int row = (int)(rc / p.n), col = (int)(rc - (i64)row * p.n);
        float sum = 0.f;
        for (int s = 0; s < p.splits; s++) sum += p.ws[(i64)s * total + i];
        const RowPos q = p.conv ? row_pos<true>(p, row) : row_pos<false>(p, row);
        epilogue_store<T>(p, q, row, col, group, sum);
    }
}
