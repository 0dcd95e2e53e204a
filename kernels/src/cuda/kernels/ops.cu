// The plan's element-wise, data-movement, pooling, resize, softmax, layer-norm and batched
// matmul steps on the device, so
// that a whole model runs there between one upload and one download. Storage T (f32 or f16),
// arithmetic in f32; one thread per output element (grid-stride), consecutive threads on
// consecutive elements so loads and stores coalesce. Argument blocks mirror `args.rs`.

// Both storage forms of a kernel: `NAME_f32` and `NAME_f16` run `BODY<T>` on `ARGS`.
#define F32_AND_F16(NAME, ARGS, BODY) \
    extern "C" __global__ void NAME##_f32(ARGS p) { BODY<float>(p); } \
    extern "C" __global__ void NAME##_f16(ARGS p) { BODY<half_t>(p); }

#define MAP_MAX 8

// A chain of element-wise operations (`Step::Map`): per element, in order.
struct MapArgs {
    const void* x;
    void* y;
    i64 total;
    i64 c;       // channels of per-channel constants (1: scalar)
    i64 stride;  // element i has channel (i / stride) % c
    int nops;
    int pad_;
    int op[MAP_MAX];  // see map_fn; 30: multiply by k, 31: add k
    float p0[MAP_MAX];
    float p1[MAP_MAX];
    const float* k[MAP_MAX];  // the constant of op 30/31: 1 value or c
    int klen[MAP_MAX];
};

// Every activation of the CPU sets (0..11), then the transcendental functions (20..24).
__device__ __forceinline__ float map_fn(float x, int op, float p0, float p1) {
    switch (op) {
    case 6: return x >= 0.f ? x : p0 * x;                    // leaky relu
    case 7: case 22: return tanhf(x);                         // tanh
    case 8: return x / (1.f + expf(-x));                      // silu
    case 9: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));  // gelu
    case 10: {                                                // gelu, tanh form
        const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.f + tanhf(u));
    }
    case 11: {                                                // mish
        const float sp = x > 20.f ? x : log1pf(expf(x));
        return x * tanhf(sp);
    }
    case 20: return expf(x);
    case 21: return logf(x);
    case 23: return erff(x);
    case 24: return 1.f / (1.f + expf(-x));
    default: return activate(x, op, p0, p1);                  // 0..5
    }
}

template <typename T>
__device__ __forceinline__ void map_chain(const MapArgs& p) {
    const T* x = (const T*)p.x;
    T* y = (T*)p.y;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < p.total; i += (i64)gridDim.x * blockDim.x) {
        float v = ld(x, i);
        const i64 ch = p.c > 1 ? (i / p.stride) % p.c : 0;
        for (int j = 0; j < p.nops; j++) {
            const int op = p.op[j];
            if (op == 30 || op == 31) {
                const float k = p.k[j][p.klen[j] == 1 ? 0 : ch];
                v = op == 30 ? v * k : v + k;
            } else {
                v = map_fn(v, op, p.p0[j], p.p1[j]);
            }
        }
        st(y, i, v);
    }
}
F32_AND_F16(map, MapArgs, map_chain)

// A broadcasting binary operation over 4 physical axes (`Step::Binary`): operand strides are
// 0 along broadcast axes. op: 0 add, 1 sub, 2 mul, 3 div.
struct BinArgs {
    const void* a;
    const void* b;
    void* y;
    i64 total;
    i64 d[4];
    i64 sa[4];
    i64 sb[4];
    int op;
    int pad_;
};

template <typename T>
__device__ __forceinline__ void binary_op(const BinArgs& p) {
    const T* a = (const T*)p.a;
    const T* b = (const T*)p.b;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < p.total; i += (i64)gridDim.x * blockDim.x) {
        i64 rest = i, oa = 0, ob = 0;
        for (int k = 3; k >= 0; k--) {
            const i64 q = rest % p.d[k];
            rest /= p.d[k];
            oa += q * p.sa[k];
            ob += q * p.sb[k];
        }
        const float u = ld(a, oa), v = ld(b, ob);
        float r;
        switch (p.op) {
        case 1: r = u - v; break;
        case 2: r = u * v; break;
        case 3: r = u / v; break;
        default: r = u + v; break;
        }
        st((T*)p.y, i, r);
    }
}
F32_AND_F16(binary, BinArgs, binary_op)

// A strided copy of up to 6 axes: element (i0..i5) of the iteration space `d` goes from
// x[x0 + Σ i·sx] to y[y0 + Σ i·sy]. Relayouts, transposes, crops, concatenation parts,
// depth-to-space and plain copies are all this one loop.
#define COPY_RANK 6
struct CopyArgs {
    const void* x;
    void* y;
    i64 total;
    i64 x0;
    i64 y0;
    int rank;
    int pad_;
    i64 d[COPY_RANK];
    i64 sx[COPY_RANK];
    i64 sy[COPY_RANK];
};

template <typename T>
__device__ __forceinline__ void strided_copy(const CopyArgs& p) {
    const T* x = (const T*)p.x;
    T* y = (T*)p.y;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < p.total; i += (i64)gridDim.x * blockDim.x) {
        i64 rest = i, ox = p.x0, oy = p.y0;
        for (int k = p.rank - 1; k >= 0; k--) {
            const i64 q = rest % p.d[k];
            rest /= p.d[k];
            ox += q * p.sx[k];
            oy += q * p.sy[k];
        }
        y[oy] = x[ox];
    }
}
F32_AND_F16(copy, CopyArgs, strided_copy)

// Max or average pooling of an NHWC image (`Step::Pool`), the CPU sets' semantics: a window
// reads only its taps inside the input; the average divides by those taps, or with
// include_pad by the taps inside the padded input (not past the ceil-mode end).
struct PoolArgs {
    const void* x;
    void* y;
    i64 total;
    int h, w, c, oh, ow;
    int kh, kw, sh, sw, dh, dw;
    int pt, pl, pb, pr;
    int max;
    int include_pad;
    int pad_;
};

// Taps [first, last) of one window axis inside the input, and the taps inside the padded input.
__device__ __forceinline__ void pool_span(int o, int len, int k, int s, int d, int pb, int pe, int& first,
                                          int& last, int& padded) {
    const int start = o * s;
    first = min((max(pb - start, 0) + d - 1) / d, k);
    const int reach = len + pb - (start + 1);
    last = reach >= 0 ? min(reach / d + 1, k) : 0;
    last = max(last, first);
    padded = min((max(len + pb + pe - start, 0) + d - 1) / d, k);
}

template <typename T>
__device__ __forceinline__ void pool(const PoolArgs& p) {
    const T* x = (const T*)p.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < p.total; i += (i64)gridDim.x * blockDim.x) {
        const int ch = (int)(i % p.c);
        i64 rest = i / p.c;
        const int ox = (int)(rest % p.ow);
        rest /= p.ow;
        const int oy = (int)(rest % p.oh);
        const i64 img = rest / p.oh;
        int ky0, ky1, kyp, kx0, kx1, kxp;
        pool_span(oy, p.h, p.kh, p.sh, p.dh, p.pt, p.pb, ky0, ky1, kyp);
        pool_span(ox, p.w, p.kw, p.sw, p.dw, p.pl, p.pr, kx0, kx1, kxp);
        float acc = p.max ? __int_as_float(0xff800000) : 0.f;
        for (int ky = ky0; ky < ky1; ky++) {
            const int iy = oy * p.sh + ky * p.dh - p.pt;
            for (int kx = kx0; kx < kx1; kx++) {
                const int ix = ox * p.sw + kx * p.dw - p.pl;
                const float v = ld(x, ((img * p.h + iy) * p.w + ix) * p.c + ch);
                acc = p.max ? fmaxf(acc, v) : acc + v;
            }
        }
        if (!p.max) {
            const int taps = (ky1 - ky0) * (kx1 - kx0);
            const int divisor = p.include_pad ? kyp * kxp : max(taps, 1);
            acc *= 1.f / (float)divisor;
        }
        st((T*)p.y, i, acc);
    }
}
F32_AND_F16(pool, PoolArgs, pool)

// Mean over H×W of an NHWC image (`Step::GlobalAveragePool`), in two deterministic passes:
// `gap_part` sums segments of the pixels (grid: 32-channel groups × `splits` segments ×
// images; block 32 channels × 8 pixel lanes, reads coalesced across channels) into
// `part[img][segment][c]`; `gap_*` adds the segments of each (image, channel) and scales.
struct GapArgs {
    const void* x;
    void* y;
    float* part;
    i64 hw;
    int n, c;
    int splits;
    int pad_;
};

template <typename T>
__device__ __forceinline__ void gap_partial(const GapArgs& p) {
    __shared__ float red[8][33];
    const int ch = blockIdx.x * 32 + threadIdx.x;
    const i64 img = blockIdx.z;
    const i64 per = (p.hw + p.splits - 1) / p.splits;
    const i64 q0 = (i64)blockIdx.y * per;
    const i64 q1 = min(p.hw, q0 + per);
    float acc = 0.f;
    if (ch < p.c) {
        const T* x = (const T*)p.x + img * p.hw * p.c + ch;
        for (i64 q = q0 + threadIdx.y; q < q1; q += 8) acc += ld(x, q * p.c);
    }
    red[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && ch < p.c) {
        float t = 0.f;
        for (int k = 0; k < 8; k++) t += red[k][threadIdx.x];
        p.part[(img * p.splits + blockIdx.y) * p.c + ch] = t;
    }
}
F32_AND_F16(gap_part, GapArgs, gap_partial)

template <typename T>
__device__ __forceinline__ void gap_finish(const GapArgs& p) {
    const i64 total = (i64)p.n * p.c;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) {
        const i64 img = i / p.c, ch = i % p.c;
        float acc = 0.f;
        for (int s = 0; s < p.splits; s++) acc += p.part[(img * p.splits + s) * p.c + ch];
        st((T*)p.y, i, acc * (1.f / (float)p.hw));
    }
}
F32_AND_F16(gap, GapArgs, gap_finish)

// Spatial resize of an NHWC image (`Step::Resize`) from per-axis taps computed on the host:
// for each output row and column (i0, i1) and the weight of i1 (nearest: i1 unused). Written
// NHWC, or NCHW planes when `planes`.
struct ResizeArgs {
    const void* x;
    void* y;
    const int* rows;   // 2 per output row
    const float* rt;   // per output row
    const int* cols;   // 2 per output column
    const float* ct;   // per output column
    int n, h, w, c, oh, ow;
    int linear;
    int planes;
};

template <typename T>
__device__ __forceinline__ void resize(const ResizeArgs& p) {
    const T* x = (const T*)p.x;
    const i64 total = (i64)p.n * p.oh * p.ow * p.c;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) {
        int ch, ox, oy;
        i64 img;
        if (p.planes) {
            ox = (int)(i % p.ow);
            i64 rest = i / p.ow;
            oy = (int)(rest % p.oh);
            rest /= p.oh;
            ch = (int)(rest % p.c);
            img = rest / p.c;
        } else {
            ch = (int)(i % p.c);
            i64 rest = i / p.c;
            ox = (int)(rest % p.ow);
            rest /= p.ow;
            oy = (int)(rest % p.oh);
            img = rest / p.oh;
        }
        const T* plane = x + img * p.h * p.w * p.c + ch;
        const int y0 = p.rows[2 * oy], x0 = p.cols[2 * ox];
        float v;
        if (!p.linear) {
            v = ld(plane, ((i64)y0 * p.w + x0) * p.c);
        } else {
            const int y1 = p.rows[2 * oy + 1], x1 = p.cols[2 * ox + 1];
            const float ty = p.rt[oy], tx = p.ct[ox];
            const float a = ld(plane, ((i64)y0 * p.w + x0) * p.c), b = ld(plane, ((i64)y0 * p.w + x1) * p.c);
            const float c = ld(plane, ((i64)y1 * p.w + x0) * p.c), d = ld(plane, ((i64)y1 * p.w + x1) * p.c);
            const float top = a + tx * (b - a), bot = c + tx * (d - c);
            v = top + ty * (bot - top);
        }
        st((T*)p.y, i, v);
    }
}
F32_AND_F16(resize, ResizeArgs, resize)

// Softmax along `len` values at stride `inner`, `outer × inner` times (`Step::Softmax`): one
// block of 256 threads per softmax, reductions through shared memory.
struct SoftmaxArgs {
    const void* x;
    void* y;
    i64 outer;
    i64 len;
    i64 inner;
};

// The sum of every thread's `v` over the block, through `red` (one entry per thread).
__device__ __forceinline__ float block_sum(float v, float* red) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
        __syncthreads();
    }
    const float total = red[0];
    __syncthreads();
    return total;
}

template <typename T>
__device__ __forceinline__ void softmax(const SoftmaxArgs& p) {
    __shared__ float red[256];
    const T* x = (const T*)p.x;
    T* y = (T*)p.y;
    for (i64 s = blockIdx.x; s < p.outer * p.inner; s += gridDim.x) {
        const i64 base = (s / p.inner) * p.len * p.inner + s % p.inner;
        float m = __int_as_float(0xff800000);
        for (i64 k = threadIdx.x; k < p.len; k += blockDim.x) m = fmaxf(m, ld(x, base + k * p.inner));
        red[threadIdx.x] = m;
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w /= 2) {
            if (threadIdx.x < w) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + w]);
            __syncthreads();
        }
        m = red[0];
        __syncthreads();
        float sum = 0.f;
        for (i64 k = threadIdx.x; k < p.len; k += blockDim.x) sum += expf(ld(x, base + k * p.inner) - m);
        const float inv = 1.f / block_sum(sum, red);
        for (i64 k = threadIdx.x; k < p.len; k += blockDim.x) {
            st(y, base + k * p.inner, expf(ld(x, base + k * p.inner) - m) * inv);
        }
    }
}
F32_AND_F16(softmax, SoftmaxArgs, softmax)

// Layer normalisation of each `len`-value row (`Step::LayerNorm`): one block of 256 threads
// per row, the mean and then the mean squared deviation reduced through shared memory (two
// passes over a row that stays in L1/L2, as the CPU kernel's two passes).
struct LayerNormArgs {
    const void* x;
    void* y;
    const float* scale;  // len values
    const float* bias;   // len values, or null
    i64 rows;
    i64 len;
    float eps;
    int pad_;
};

template <typename T>
__device__ __forceinline__ void layernorm(const LayerNormArgs& p) {
    __shared__ float red[256];
    const T* x = (const T*)p.x;
    T* y = (T*)p.y;
    for (i64 r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const i64 base = r * p.len;
        float s = 0.f;
        for (i64 k = threadIdx.x; k < p.len; k += blockDim.x) s += ld(x, base + k);
        const float mean = block_sum(s, red) / (float)p.len;
        float q = 0.f;
        for (i64 k = threadIdx.x; k < p.len; k += blockDim.x) {
            const float d = ld(x, base + k) - mean;
            q += d * d;
        }
        const float rstd = rsqrtf(block_sum(q, red) / (float)p.len + p.eps);
        for (i64 k = threadIdx.x; k < p.len; k += blockDim.x) {
            const float v = (ld(x, base + k) - mean) * rstd * p.scale[k];
            st(y, base + k, p.bias ? v + p.bias[k] : v);
        }
    }
}
F32_AND_F16(layernorm, LayerNormArgs, layernorm)

// A batched product of two run-time tensors (`Step::MatMul`: attention's Q·Kᵀ and P·V): per
// batch index (grid z), `m × k` by `k × n` into a dense `[batch…, m, n]` output, 16×16 output
// tiles through shared memory, f32 accumulation. Each operand's batch offset comes from the
// batch index at its own strides (0 where it broadcasts).
#define MM_TILE 16
#define MM_RANK 4
struct MatMulArgs {
    const void* a;
    const void* b;
    void* y;
    i64 m;
    i64 k;
    i64 n;
    i64 batch[MM_RANK];  // the output's batch axes, outermost first (1 where unused)
    i64 sa[MM_RANK];     // A's offset per batch axis
    i64 sb[MM_RANK];     // B's offset per batch axis
};

template <typename T>
__device__ __forceinline__ void matmul(const MatMulArgs& p) {
    __shared__ float ta[MM_TILE][MM_TILE + 1];
    __shared__ float tb[MM_TILE][MM_TILE + 1];
    const T* a = (const T*)p.a;
    const T* b = (const T*)p.b;
    T* y = (T*)p.y;
    i64 rest = blockIdx.z, ao = 0, bo = 0;
    for (int d = MM_RANK - 1; d >= 0; d--) {
        const i64 q = rest % p.batch[d];
        rest /= p.batch[d];
        ao += q * p.sa[d];
        bo += q * p.sb[d];
    }
    const i64 row = (i64)blockIdx.y * MM_TILE + threadIdx.y;
    const i64 col = (i64)blockIdx.x * MM_TILE + threadIdx.x;
    float acc = 0.f;
    for (i64 k0 = 0; k0 < p.k; k0 += MM_TILE) {
        const i64 ka = k0 + threadIdx.x, kb = k0 + threadIdx.y;
        ta[threadIdx.y][threadIdx.x] = (row < p.m && ka < p.k) ? ld(a, ao + row * p.k + ka) : 0.f;
        tb[threadIdx.y][threadIdx.x] = (kb < p.k && col < p.n) ? ld(b, bo + kb * p.n + col) : 0.f;
        __syncthreads();
        for (int j = 0; j < MM_TILE; j++) acc = fmaf(ta[threadIdx.y][j], tb[j][threadIdx.x], acc);
        __syncthreads();
    }
    if (row < p.m && col < p.n) st(y, (i64)blockIdx.z * p.m * p.n + row * p.n + col, acc);
}
F32_AND_F16(matmul, MatMulArgs, matmul)

// f32 ↔ f16 storage (`Gpu::convert`): an f16 session's input and output cross the bus in f32
// and change precision on the device.
struct ConvertArgs {
    const void* x;
    void* y;
    i64 total;
};

extern "C" __global__ void convert_f32(ConvertArgs p) {  // f16 → f32
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < p.total; i += (i64)gridDim.x * blockDim.x) {
        ((float*)p.y)[i] = h2f(((const half_t*)p.x)[i]);
    }
}
extern "C" __global__ void convert_f16(ConvertArgs p) {  // f32 → f16
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < p.total; i += (i64)gridDim.x * blockDim.x) {
        ((half_t*)p.y)[i] = f2h(((const float*)p.x)[i]);
    }
}
