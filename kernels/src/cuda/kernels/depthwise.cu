// Depthwise convolution (groups == input channels, any channel multiplier) on NHWC: one
// thread per output element, consecutive threads on consecutive channels so every load and
// store is coalesced; weights are [tap][c_out]. f32 accumulation, storage T.

struct DwArgs {
    const void* x;
    const void* w;
    const float* bias;     // per output channel, or null
    const void* residual;  // output-shaped, or null
    void* y;
    i64 total;             // output elements
    int h, w_, c;          // input image
    int oh, ow, c_out;
    int kh, kw, sh, sw, dh, dw, pt, pl;
    int mult;              // c_out / c
    int act;
    float p0, p1;
};

template <typename T>
__device__ __forceinline__ void depthwise(const DwArgs& p) {
    const T* x = (const T*)p.x;
    const T* w = (const T*)p.w;
    for (i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x; idx < p.total; idx += (i64)gridDim.x * blockDim.x) {
        const int oc = (int)(idx % p.c_out);
        i64 rest = idx / p.c_out;
        const int ox = (int)(rest % p.ow);
        rest /= p.ow;
        const int oy = (int)(rest % p.oh);
        const i64 img = rest / p.oh;
        const int ic = oc / p.mult;
        float acc = 0.f;
        for (int ky = 0; ky < p.kh; ky++) {
            const int iy = oy * p.sh - p.pt + ky * p.dh;
            if ((unsigned)iy >= (unsigned)p.h) continue;
            for (int kx = 0; kx < p.kw; kx++) {
                const int ix = ox * p.sw - p.pl + kx * p.dw;
                if ((unsigned)ix >= (unsigned)p.w_) continue;
                acc = fmaf(ld(x, ((img * p.h + iy) * p.w_ + ix) * p.c + ic), ld(w, (i64)(ky * p.kw + kx) * p.c_out + oc), acc);
            }
        }
        if (p.bias) acc += p.bias[oc];
        if (p.residual) acc += ld((const T*)p.residual, idx);
        st((T*)p.y, idx, activate(acc, p.act, p.p0, p.p1));
    }
}

extern "C" __global__ void depthwise_f32(DwArgs p) { depthwise<float>(p); }
extern "C" __global__ void depthwise_f16(DwArgs p) { depthwise<half_t>(p); }
