// f16 GEMM / implicit-GEMM convolution on Hopper's warpgroup tensor cores (sm_90a, `wgmma`),
// f32 accumulators. A 128 × 256 output tile per block; two warpgroups multiply, 64 × 256 each,
// with their 128 accumulators per thread in registers. Operands are staged with cp.async (the
// same loader and zero-filling as the mma.sync kernel, K steps of 64 halves) in WG_STAGES
// shared-memory stages laid out in the hardware's 128-byte swizzle, which the wgmma
// descriptors name, so the tensor cores read them straight from shared memory. The epilogue
// goes through shared memory too (`wg_epilogue`).
//
// Two kernels: `*_wgmma` (the default), whose 256 threads all copy and multiply — K step s is
// multiplied while steps s+1 … s+WG_STAGES-2 are in flight, and one wgmma group stays in
// flight behind the next step's barrier, so a stage is refilled only after both warpgroups'
// MMAs that read it have retired — and `*_wgmma_ws` (EDGEPACK_WGMMA=ws3|ws4), warp-specialized
// with mbarriers (below). Measured on an H200 at 4096³: 0.28 ms and 0.31–0.32 ms.
//
// Same operand rules as mma.cu (the host picks these kernels on sm_90 for n > 128 when NVRTC
// can target sm_90a).

#ifndef WG_STAGES
#define WG_STAGES 4
#endif
#define WG_BN 256
typedef MmGeo<WG_BN, 64, WG_STAGES> WgTile;
static_assert(WG_STAGES >= 3, "the pipeline keeps two stages busy besides the ones in flight");

// One m64n256k16 warpgroup MMA: d (64 × 256 f32, 128 per thread) += A·Bᵀ, both operands
// K-major in shared memory (descriptors `da`, `db`).
__device__ __forceinline__ void wgmma_n256(float* d, unsigned long long da, unsigned long long db) {
    asm volatile(
        "{ .reg .pred p; setp.ne.b32 p, %130, 0; "
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
        "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
        "}, %128, %129, p, 1, 1, 0, 0; }"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
          "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
          "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
          "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
          "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
          "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
          "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(da), "l"(db), "r"(1));
}

// Shared-memory matrix descriptor of a K-major operand in the 128-byte swizzle: start address,
// leading-dimension offset unused for this layout (1), stride between 8-row groups 1024 bytes,
// swizzle mode 1 (128 B). The start moves by 32 bytes per k16 slice inside the 64-half rows.
__device__ __forceinline__ unsigned long long wg_desc(unsigned addr) {
    return (unsigned long long)((addr & 0x3FFFF) >> 4) | (1ull << 16) | (64ull << 32) | (1ull << 62);
}

// Orders the cp.async writes to a stage (generic proxy) before the tensor cores' reads of it
// (async proxy). (Leaving it out changed nothing measurable on an H200.)
__device__ __forceinline__ void wg_proxy_fence() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

// Rasterization: blocks walk down WG_GROUP row tiles before moving one column tile right, so
// the tiles resident at once share A rows and B columns in L2.
#define WG_GROUP 16

__device__ __forceinline__ void wg_tile(int& row0, int& col0) {
    const int gy = gridDim.y, gx = gridDim.x, id = blockIdx.y * gx + blockIdx.x;
    const int per = WG_GROUP * gx, first = (id / per) * WG_GROUP, rows = min(gy - first, WG_GROUP);
    row0 = (first + (id % per) % rows) * WgTile::BM;
    col0 = ((id % per) / rows) * WG_BN;
}

// The shared-memory tiles, 1 KiB-aligned (the swizzle is a function of address bits 7–9):
// [stage][A 128 × 64], then [stage][B 256 × 64].
__device__ __forceinline__ void wg_stages(const half_t* smem, unsigned& as0, unsigned& bs0) {
    as0 = (smem_addr(smem) + 1023u) & ~1023u;
    bs0 = as0 + 2 * WG_STAGES * WgTile::TILE_A;
}

// One K step for one warpgroup: its 64 rows of A stage `as` (byte address of the stage's A tile
// plus the warpgroup's rows) times the 256 columns of B stage `bs`, in four k16 slices; the
// MMAs are committed as one group and left in flight.
__device__ __forceinline__ void wg_step(float* acc, unsigned as, unsigned bs) {
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wgmma_n256(acc, wg_desc(as + 32 * kk), wg_desc(bs + 32 * kk));
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}

// The fused epilogue, through shared memory (the pipeline's stages are free by then): the
// accumulators are stored as a 128 × 256 f32 tile (accumulator i of a thread: row lane/4, +8
// for i/2 odd, of its warp's 16; column 8·(i/4) + 2·(lane%4) + i%2), then each thread finishes
// runs of 8 consecutive columns (bias, residual, activation) in a loop and stores each run as
// one 16-byte write where its 8 outputs are contiguous and aligned, element by element
// otherwise. (Finishing the 128 accumulators in registers, fully unrolled, made the kernel
// 0.58 ms instead of 0.28 at 4096³ on an H200: its code no longer fit the instruction cache.)
// `ctid` is the thread's index among the 256 that hold accumulators, `sync` a barrier over
// exactly those threads.
#define WG_EPI_PITCH (WG_BN + 8)  // floats per staged row (rows 4 apart share banks: 2 wavefronts)

template <bool CONV, class Sync>
__device__ __forceinline__ void wg_epilogue(const GemmArgs& p, const float* acc, float* tile, int ctid,
                                                 int row0, int col0, int group, Sync sync) {
    const int wg = ctid >> 7, warp = (ctid >> 5) & 3, lane = ctid & 31;
    sync();  // every warpgroup's MMAs (the readers of the stages) have retired
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        float* r = tile + (wg * 64 + warp * 16 + (lane >> 2) + hr * 8) * WG_EPI_PITCH + (lane & 3) * 2;
#pragma unroll
        for (int j = 0; j < WG_BN / 8; j++)
            *(float2*)(r + j * 8) = make_float2(acc[j * 4 + hr * 2], acc[j * 4 + hr * 2 + 1]);
    }
    sync();
    for (int c = ctid; c < WgTile::BM * WG_BN / 8; c += 256) {
        const int tr = c / (WG_BN / 8), tc = (c % (WG_BN / 8)) * 8, row = row0 + tr, col = col0 + tc;
        const RowPos q = row_pos<CONV>(p, row);
        if (!q.valid || col >= p.n) continue;
        const float* v = tile + tr * WG_EPI_PITCH + tc;
        const i64 idx = q.out + (i64)group * p.n + col;
        if (col + 8 > p.n || (idx & 7) != 0) {
            for (int e = 0; e < 8; e++) epilogue_store<half_t>(p, q, row, col + e, group, v[e]);
            continue;
        }
        float x[8];
        const float4 lo = *(const float4*)v, hi = *(const float4*)(v + 4);
        x[0] = lo.x; x[1] = lo.y; x[2] = lo.z; x[3] = lo.w; x[4] = hi.x; x[5] = hi.y; x[6] = hi.z; x[7] = hi.w;
        if (p.bias_mode == 1) {
            const float b = p.bias[row];
#pragma unroll
            for (int e = 0; e < 8; e++) x[e] += b;
        } else if (p.bias_mode == 2) {
#pragma unroll
            for (int e = 0; e < 8; e++) x[e] += p.bias[group * p.n + col + e];
        }
        if (p.residual) {
            const uint4 r = *(const uint4*)((const half_t*)p.residual + idx);
            const unsigned w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
            for (int e = 0; e < 8; e++) x[e] += h2f((half_t)(w[e / 2] >> (16 * (e % 2))));
        }
        unsigned out[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const unsigned l = f2h(activate(x[2 * e], p.act, p.p0, p.p1));
            const unsigned h = f2h(activate(x[2 * e + 1], p.act, p.p0, p.p1));
            out[e] = l | (h << 16);
        }
        *(uint4*)((half_t*)p.c + idx) = make_uint4(out[0], out[1], out[2], out[3]);
    }
}

struct WgSyncAll {
    __device__ void operator()() const { __syncthreads(); }
};
// Named barrier 1 over the 256 consumer threads of the warp-specialized kernel.
struct WgSyncConsumers {
    __device__ void operator()() const { asm volatile("bar.sync 1, 256;" ::: "memory"); }
};

// Every thread loads and multiplies (two warpgroups, 256 threads).
template <bool CONV>
__device__ __forceinline__ void wg_gemm(const GemmArgs& p) {
    extern __shared__ __align__(1024) half_t mm_smem[];
    const int tid = threadIdx.x, wg = tid >> 7;
    const KRange kr = k_range(p);  // launched without split K: the whole reduction
    const int group = kr.group;
    int row0, col0;
    wg_tile(row0, col0);
    const half_t* A = (const half_t*)p.a;
    const half_t* B = (const half_t*)p.b + (i64)group * p.b_gs;

    const int ld_r = tid / WgTile::CH, ld_c = tid % WgTile::CH;
    RowPos aq[WgTile::PASSES_A];
#pragma unroll
    for (int h = 0; h < WgTile::PASSES_A; h++) aq[h] = row_pos<CONV>(p, row0 + ld_r + h * WgTile::ROWS);

    float acc[WG_BN / 2];
#pragma unroll
    for (int i = 0; i < WG_BN / 2; i++) acc[i] = 0.f;

    const int steps = (p.k + 63) / 64;
    unsigned as0, bs0;
    wg_stages(mm_smem, as0, bs0);

#pragma unroll
    for (int s = 0; s < WG_STAGES - 2; s++) {
        if (s < steps) mm_load_stage<CONV, WgTile>(p, A, B, aq, row0, col0, ld_r, ld_c, kr, as0, bs0, s);
        asm volatile("cp.async.commit_group;");
    }

    for (int s = 0; s < steps; s++) {
        // Step s has landed (this thread's copies), is made visible to the tensor cores' async
        // proxy, and every thread's copies are in: after the barrier, both warpgroups have also
        // retired the MMAs of step s-2, whose stage the copies issued next overwrite.
        asm volatile("cp.async.wait_group %0;" ::"n"(WG_STAGES - 3));
        wg_proxy_fence();
        __syncthreads();
        if (s + WG_STAGES - 2 < steps)
            mm_load_stage<CONV, WgTile>(p, A, B, aq, row0, col0, ld_r, ld_c, kr, as0, bs0, s + WG_STAGES - 2);
        asm volatile("cp.async.commit_group;");
        const int stage = s % WG_STAGES;
        wg_step(acc, as0 + 2 * stage * WgTile::TILE_A + wg * 64 * 128, bs0 + 2 * stage * WgTile::TILE_B);
        asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    asm volatile("cp.async.wait_group 0;");
    wg_epilogue<CONV>(p, acc, (float*)mm_smem + 256, tid, row0, col0, group, WgSyncAll());
}

__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned bar) {
    asm volatile("{ .reg .b64 st; mbarrier.arrive.shared::cta.b64 st, [%0]; }" ::"r"(bar) : "memory");
}
// Waits until the phase of parity `parity` of the barrier has completed.
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
    unsigned done;
    do {
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}

// Warp-specialized (three warpgroups, 384 threads): warpgroup 0 only copies, through a ring of
// WG_STAGES stages with a "full" and an "empty" mbarrier each (the copies arrive on "full" as
// they land; each consumer thread arrives on "empty" once the MMAs that read the stage have
// retired); warpgroups 1 and 2 only multiply, 64 rows each, with no block-wide barrier in the
// loop. Registers move from the producer (72 per thread) to the consumers (208).
typedef MmGeo<WG_BN, 64, WG_STAGES, 128> WgLoadTile;

template <bool CONV>
__device__ __forceinline__ void wg_gemm_ws(const GemmArgs& p) {
    extern __shared__ __align__(1024) half_t mm_smem[];
    __shared__ __align__(8) unsigned long long bars[2 * WG_STAGES];  // full[stage], empty[stage]
    const int tid = threadIdx.x, role = tid >> 7;
    const KRange kr = k_range(p);  // launched without split K: the whole reduction
    const int group = kr.group;
    int row0, col0;
    wg_tile(row0, col0);
    unsigned as0, bs0;
    wg_stages(mm_smem, as0, bs0);
    const unsigned full0 = smem_addr(bars), empty0 = full0 + 8 * WG_STAGES;
    if (tid == 0) {
        for (int i = 0; i < WG_STAGES; i++) {
            mbar_init(full0 + 8 * i, 128);
            mbar_init(empty0 + 8 * i, 256);
        }
    }
    __syncthreads();
    const int steps = (p.k + 63) / 64;

    if (role == 0) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 72;");
        const half_t* A = (const half_t*)p.a;
        const half_t* B = (const half_t*)p.b + (i64)group * p.b_gs;
        const int ld_r = tid / WgLoadTile::CH, ld_c = tid % WgLoadTile::CH;
        RowPos aq[WgLoadTile::PASSES_A];
#pragma unroll
        for (int h = 0; h < WgLoadTile::PASSES_A; h++) aq[h] = row_pos<CONV>(p, row0 + ld_r + h * WgLoadTile::ROWS);
        for (int s = 0; s < steps; s++) {
            const int stage = s % WG_STAGES;
            if (s >= WG_STAGES) mbar_wait(empty0 + 8 * stage, ((s / WG_STAGES) - 1) & 1);
            mm_load_stage<CONV, WgLoadTile>(p, A, B, aq, row0, col0, ld_r, ld_c, kr, as0, bs0, s);
            asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(full0 + 8 * stage) : "memory");
        }
        asm volatile("cp.async.wait_all;" ::: "memory");
    } else {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 208;");
        const int wg = role - 1;
        float acc[WG_BN / 2];
#pragma unroll
        for (int i = 0; i < WG_BN / 2; i++) acc[i] = 0.f;
        for (int s = 0; s < steps; s++) {
            const int stage = s % WG_STAGES;
            mbar_wait(full0 + 8 * stage, (s / WG_STAGES) & 1);
            wg_proxy_fence();
            wg_step(acc, as0 + 2 * stage * WgTile::TILE_A + wg * 64 * 128, bs0 + 2 * stage * WgTile::TILE_B);
            asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
            if (s > 0) mbar_arrive(empty0 + 8 * ((s - 1) % WG_STAGES));
        }
        asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
        wg_epilogue<CONV>(p, acc, (float*)mm_smem + 256, tid - 128, row0, col0, group, WgSyncConsumers());
    }
}

extern "C" __global__ void __launch_bounds__(256, 1) gemm_f16_wgmma(GemmArgs p) { wg_gemm<false>(p); }
extern "C" __global__ void __launch_bounds__(256, 1) conv_f16_wgmma(GemmArgs p) { wg_gemm<true>(p); }
extern "C" __global__ void __launch_bounds__(384, 1) gemm_f16_wgmma_ws(GemmArgs p) { wg_gemm_ws<false>(p); }
extern "C" __global__ void __launch_bounds__(384, 1) conv_f16_wgmma_ws(GemmArgs p) { wg_gemm_ws<true>(p); }
