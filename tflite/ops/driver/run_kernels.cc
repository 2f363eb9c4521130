// Direct kernel invocation (run_kernels.h).

#include "run_kernels.h"

#include <cmath>

#include "condcomp_kernels.h"
#include "reference.h"

namespace ccdrv {

namespace {

// An int8 layer's packed weights and activation scratch (exact-size heap
// blocks, for ASan), bound into a cc_gated_dense / cc_gated_conv2d.
struct Int8Inputs {
  const Layer& L;
  std::vector<int8_t> packed, xq;
  std::vector<float> xq_scale;
  explicit Int8Inputs(const Layer& layer) : L(layer) {
    if (!L.quant) return;
    const int nin = L.D / L.ibs(), padded = (L.ibs() + 3) / 4 * 4, rows = kernel_rows(L);
    const size_t positions = L.op == 0 ? 1 : static_cast<size_t>(L.H) * L.W;
    packed.resize(cc_q8_packed_size(L.K, rows, L.bs, L.ibs()));
    cc_q8_pack(L.kernel_q.data(), L.K, rows, L.bs, L.ibs(), packed.data());
    xq.resize(static_cast<size_t>(L.B) * positions * nin * padded);
    xq_scale.resize(static_cast<size_t>(L.B) * nin);
  }
  template <typename P>
  void bind(P* p) {
    if (!L.quant) return;
    p->kernel_bm = nullptr;
    p->kernel_q = packed.data();
    p->kernel_scale = L.kernel_scale.data();
    p->xq = xq.data();
    p->xq_scale = xq_scale.data();
    p->input_scale = L.input_scale.empty() ? nullptr : L.input_scale.data();
  }
};

// What a cc_gated_dense and a cc_gated_conv2d share: the gating attributes,
// the weights and the output (`y`, already sized), and the kernels' scratch
// (exact-size heap blocks, for ASan), bound into `p` and owned here.
struct LayerBuffers {
  std::vector<float> gate_scale;
  std::vector<uint8_t> in_active, out_mask;
  Int8Inputs q8;
  template <typename P>
  LayerBuffers(const Layer& L, std::vector<float>* y, P* p)
      : gate_scale(static_cast<size_t>(L.B) * L.K),
        in_active(static_cast<size_t>(L.B) * (L.D / L.ibs())),
        out_mask(static_cast<size_t>(L.B) * L.K),
        q8(L) {
    p->num_blocks = L.K;
    p->block_size = L.bs;
    p->in_block_size = L.ibs();
    p->activation = L.act;
    p->threshold = L.thr;
    p->top_k = L.top_k;
    p->gate_scale = L.scale_by_gate ? gate_scale.data() : nullptr;
    p->x = L.x.data();
    p->kernel_bm = L.kernel.data();
    p->bias = L.has_bias ? L.bias.data() : nullptr;
    p->policy_kernel = L.wp.data();
    p->policy_bias = L.bp.data();
    p->y = y->data();
    p->in_active = in_active.data();
    p->out_mask = out_mask.data();
    q8.bind(p);
  }
};

bool all_finite(const std::vector<float>& v) {
  for (float f : v)
    if (!std::isfinite(f)) return false;
  return true;
}

}  // namespace

void run_kernels(const Layer& L, std::vector<float>* y, uint64_t* macs_out) {
  const int K = L.K, U = L.units();
  uint64_t macs = 0;
  if (L.op == 0) {
    cc_gated_dense p = {};  // zero: float kernel (kernel_q NULL)
    p.batch = L.B;
    p.in_dim = L.D;
    y->assign(static_cast<size_t>(L.B) * U, std::nanf(""));
    LayerBuffers buffers(L, y, &p);
    std::vector<float> logits(static_cast<size_t>(CC_GATE_GROUP) * K);
    std::vector<int> ex(2 * static_cast<size_t>(L.B) + 0);
    std::vector<int> nonzero_at(static_cast<size_t>(L.D) + 1);
    p.kernel_finite = L.declare_finite && !L.quant && all_finite(L.kernel);
    p.policy_finite = L.declare_finite && all_finite(L.wp);
    if (L.B == 1 && (p.kernel_finite || p.policy_finite)) p.nonzero_at = nonzero_at.data();
    if (L.B > 0) {
      cc_gated_dense_gate(&p, 0, L.B, logits.data());
      for (int j = 0; j < K; ++j) macs += cc_gated_dense_block(&p, j, ex.data());
    }
  } else {
    int OH, OW, pt, pl;
    conv_geometry(L.H, L.KH, L.sh, L.dh, L.same, &OH, &pt);
    conv_geometry(L.W, L.KW, L.sw, L.dw, L.same, &OW, &pl);
    cc_gated_conv2d p = {};  // zero: float kernel (kernel_q NULL)
    p.batch = L.B;
    p.in_h = L.H;
    p.in_w = L.W;
    p.in_c = L.D;
    p.out_h = OH;
    p.out_w = OW;
    p.kernel_h = L.KH;
    p.kernel_w = L.KW;
    p.stride_h = L.sh;
    p.stride_w = L.sw;
    p.dilation_h = L.dh;
    p.dilation_w = L.dw;
    p.pad_top = pt;
    p.pad_left = pl;
    y->assign(static_cast<size_t>(L.B) * OH * OW * U, std::nanf(""));
    LayerBuffers buffers(L, y, &p);
    std::vector<double> scratch((cc_gated_conv2d_gate_scratch(&p) + 1) / 2);  // 8-byte aligned
    if (L.B > 0 && OH > 0 && OW > 0) {
      cc_gated_conv2d_gate(&p, 0, L.B, reinterpret_cast<float*>(scratch.data()));
      for (int j = 0; j < K; ++j) macs += cc_gated_conv2d_block(&p, j);
    }
  }
  if (macs_out) *macs_out = macs;
}

}  // namespace ccdrv
