// Running a node on the mock runtime (op_runner.h).

#include "op_runner.h"

#include <cstdlib>
#include <cstring>
#include <memory>

#include "mock_runtime.h"
#include "reference.h"

namespace ccdrv {

namespace {

TfLiteIntArray* int_array(const std::vector<int>& v) {
  TfLiteIntArray* a = static_cast<TfLiteIntArray*>(
      std::malloc(sizeof(TfLiteIntArray) + sizeof(int) * (v.empty() ? 1 : v.size())));
  a->size = static_cast<int>(v.size());
  for (size_t i = 0; i < v.size(); ++i) a->data[i] = v[i];
  return a;
}

}  // namespace

std::vector<ccfx::Entry> layer_options(const Layer& L) {
  std::vector<ccfx::Entry> o;
  o.push_back({"activation", ccfx::Str(kActNames[L.act])});
  o.push_back({"threshold", ccfx::Float(L.thr)});
  o.push_back({"input_block_size", ccfx::Int(L.ibs_opt)});
  if (L.top_k > 0) o.push_back({"top_k", ccfx::Int(L.top_k)});
  if (L.scale_by_gate) o.push_back({"scale_by_gate", ccfx::Int(1)});
  if (L.head > 0) o.push_back({"head_units", ccfx::Int(L.head)});
  if (L.op == 1) {
    o.push_back({"padding", ccfx::Str(L.same ? "same" : "valid")});
    o.push_back({"stride_h", ccfx::Int(L.sh)});
    o.push_back({"stride_w", ccfx::Int(L.sw)});
    o.push_back({"dilation_h", ccfx::Int(L.dh)});
    o.push_back({"dilation_w", ccfx::Int(L.dw)});
  }
  return o;
}

OpRun run_op(const Layer& L, const NodeSetup& S, const Layer* L2) {
  OpRun out;
  const TfLiteRegistration* reg =
      L.op == 0 ? CondCompGatedDenseRegistration() : CondCompGatedConv2DRegistration();
  // Tensors 0-4 the inputs, 5 the output, 6 kernel_scale (int8 kernel only),
  // 7 input_scale (static activation scales only), then head_kernel and
  // head_bias (S.head_tensor).
  const int n_tensors = static_cast<int>(S.shapes.size());
  MockRuntime rt(n_tensors);
  if (S.explicit_resize) rt.ctx.ResizeTensorExplicit = &MockRuntime::ResizeTensorExplicit;
  rt.ctx.recommended_num_threads = S.threads;
  setenv("CONDCOMP_PARALLEL_MIN_BYTES", S.parallel_min_bytes, 1);  // read in Prepare
  for (int i = 0; i < n_tensors; ++i) rt.SetShape(i, S.shapes[i], S.types[i]);
  // Constants have data before Prepare; x and the output get theirs after.
  const std::vector<float>* consts[8] = {nullptr, &L.kernel, &L.bias,         &L.wp,
                                         &L.bp,   nullptr,   &L.kernel_scale, &S.input_scale};
  for (int i = 1; i < n_tensors; ++i) {
    if (i == 5) continue;
    if (!rt.Allocate(i, S.null_empty)) return out;
    rt.tensors[i].allocation_type = kTfLiteMmapRo;
    if (i == 1 && S.types[1] == kTfLiteInt8) {
      rt.Fill(i, L.kernel_q);
    } else if (S.head_tensor >= 0 && (i == S.head_tensor || i == S.head_tensor + 1)) {
      rt.Fill(i, i == S.head_tensor ? L.wh : L.bh);
    } else {
      rt.Fill(i, *consts[i]);
    }
  }
  TfLiteNode node;
  std::memset(&node, 0, sizeof node);
  node.inputs = int_array(S.inputs);
  node.outputs = int_array(S.outputs);
  node.temporaries = int_array({});
  node.intermediates = int_array({});
  // The options live in their own exact-size block.
  std::unique_ptr<uint8_t[]> opt(new uint8_t[S.options.size() ? S.options.size() : 1]);
  if (!S.options.empty()) std::memcpy(opt.get(), S.options.data(), S.options.size());
  node.custom_initial_data = S.options.empty() ? nullptr : opt.get();
  node.custom_initial_data_size = static_cast<int>(S.options.size());
  void* user =
      reg->init(&rt.ctx, reinterpret_cast<const char*>(node.custom_initial_data), S.options.size());
  node.user_data = user;

  for (int pass = 0; pass < (L2 ? 2 : 1); ++pass) {
    const Layer& cur = pass == 0 ? L : *L2;
    if (pass == 1) {
      rt.SetShape(0, S.reshape_x);
      out.y.clear();
    }
    rt.error.clear();
    out.prepare_status = reg->prepare(&rt.ctx, &node);
    out.prepared = out.prepare_status == kTfLiteOk;
    out.error = rt.error;
    if (!out.prepared) break;
    // Arena allocation of x and the output.
    const TfLiteTensor& o = rt.tensors[5];
    out.out_shape.clear();
    if (o.dims)
      for (int k = 0; k < o.dims->size; ++k) out.out_shape.push_back(o.dims->data[k]);
    if (!rt.Allocate(0, S.null_empty) || !rt.Allocate(5, S.null_empty)) {
      out.invoked = false;
      break;
    }
    rt.Fill(0, cur.x);
    rt.error.clear();
    out.invoke_status = reg->invoke(&rt.ctx, &node);
    out.invoked = true;
    out.error = rt.error;
    if (out.invoke_status != kTfLiteOk) break;
    const int64_t n = MockRuntime::elements(o);
    if (n > 0 && o.data) out.y.assign(static_cast<float*>(o.data), static_cast<float*>(o.data) + n);
  }
  reg->free(&rt.ctx, user);
  std::free(node.inputs);
  std::free(node.outputs);
  std::free(node.temporaries);
  std::free(node.intermediates);
  return out;
}

NodeSetup valid_setup(const Layer& L, Rng& r) {
  NodeSetup S;
  S.shapes = {x_shape(L), kernel_shape(L), {L.units()}, {L.D, L.K}, {L.K}, {}};
  if (!L.has_bias) S.inputs[2] = -1;
  if (L.quant) {  // int8 kernel plus a 6th input, kernel_scale (tensor 6)
    S.types[1] = kTfLiteInt8;
    S.shapes.push_back({L.units()});
    S.types.push_back(kTfLiteFloat32);
    S.inputs.push_back(6);
  }
  if (!L.input_scale.empty()) {  // static activation scales: a 7th input (tensor 7)
    S.shapes.push_back({L.D / L.ibs()});
    S.types.push_back(kTfLiteFloat32);
    S.inputs.push_back(7);
    S.input_scale = L.input_scale;
  }
  if (L.head > 0) {                // the folded output layer: head_kernel, head_bias
    while (S.shapes.size() < 8) {  // tensor indices of absent kernel_scale / input_scale
      S.shapes.push_back({1});
      S.types.push_back(kTfLiteFloat32);
    }
    S.head_tensor = static_cast<int>(S.shapes.size());
    S.shapes.push_back({L.units(), L.head});
    S.shapes.push_back({L.head});
    S.types.push_back(kTfLiteFloat32);
    S.types.push_back(kTfLiteFloat32);
    S.inputs.push_back(S.head_tensor);
    S.inputs.push_back(L.has_head_bias ? S.head_tensor + 1 : -1);
  }
  std::vector<ccfx::Entry> o = layer_options(L);
  // Indirect scalars and narrower maps are valid encodings too.
  for (auto& e : o)
    if (e.value.kind != ccfx::Value::kS && r.chance(0.2)) e.value.indirect = true;
  static const std::vector<size_t> kWidths = {1, 2, 4, 8, 8, 8};
  if (!ccfx::BuildMap(o, r.pick(kWidths), true, &S.options)) S.options = ccfx::BuildMap(o);
  S.threads = r.chance(0.5) ? 1 : r.range(-1, 4);
  S.parallel_min_bytes = r.chance(0.5) ? "0" : "";
  S.explicit_resize = r.chance(0.5);
  S.null_empty = r.chance(0.5);
  return S;
}

}  // namespace ccdrv
