// The op fuzzer's invalid nodes (defects.h): apply_defect picks the piece
// that breaks what defect d names (an option, a tensor shape, the node's
// tensor types / counts / indices, a constant's values).

#include "defects.h"

#include <cmath>
#include <limits>
#include <string>

#include "flexbuf_writer.h"

namespace ccdrv {

const char* const kDefectNames[kNumDefects] = {"none",
                                               "bad activation",
                                               "threshold out of [0,1]",
                                               "threshold NaN",
                                               "input_block_size not dividing",
                                               "input_block_size negative",
                                               "missing option",
                                               "unknown option",
                                               "wrong option type",
                                               "bad padding",
                                               "bad stride/dilation",
                                               "x rank",
                                               "kernel rank",
                                               "kernel/x dim mismatch",
                                               "bias length",
                                               "policy kernel shape",
                                               "policy bias length",
                                               "non-float tensor",
                                               "input count",
                                               "output count",
                                               "bad tensor index",
                                               "zero features",
                                               "negative dim",
                                               "empty options",
                                               "huge x shape",
                                               "input_scale zero/negative/NaN/Inf or wrong length",
                                               "top_k negative or above num_blocks",
                                               "scale_by_gate not 0 or 1"};

namespace {

// An option defect: one bad, missing or unknown entry in the layer's
// options map, which replaces S's options. False if it does not apply.
bool break_option(int d, const Layer& L, NodeSetup* S, Rng& r) {
  std::vector<ccfx::Entry> o = layer_options(L);
  auto set = [&](const char* key, ccfx::Value v) {
    for (auto& e : o)
      if (e.key == key) e.value = v;
  };
  // An optional option: replaced if the layer has it, else added.
  auto set_or_add = [&](const char* key, ccfx::Value v) {
    for (auto& e : o)
      if (e.key == key) {
        e.value = v;
        return;
      }
    o.push_back({key, v});
  };
  switch (d) {
    case kBadActivation: {
      static const std::vector<std::string> bad = {"",
                                                   "Relu",
                                                   "relu ",
                                                   "softmax",
                                                   "linearx",
                                                   "gelu_approx",
                                                   std::string("relu\0x", 6),
                                                   "leaky_relu(0.1)"};
      set("activation", ccfx::Str(r.pick(bad)));
      break;
    }
    case kThresholdRange:
      set("threshold",
          ccfx::Float(r.chance(0.5) ? -0.01 - r.uniform() * 10 : 1.0001 + r.uniform() * 1e6));
      break;
    case kThresholdNaN:
      set("threshold",
          ccfx::Float(r.chance(0.5) ? std::nan("") : std::numeric_limits<double>::infinity()));
      break;
    case kIbsNotDividing: {
      int v = 0;
      for (int t = 0; t < 20 && v == 0; ++t) {
        int c = r.range(2, L.D + 5);
        if (L.D % c != 0) v = c;
      }
      if (v == 0) return false;
      set("input_block_size", ccfx::Int(v));
      break;
    }
    case kIbsNegative:
      set("input_block_size", ccfx::Int(r.chance(0.5) ? -1 : -(int64_t{1} << 40)));
      break;
    case kTopKRange:
      set_or_add("top_k", ccfx::Int(r.chance(0.5) ? L.K + r.range(1, 5) : -r.range(1, 3)));
      break;
    case kScaleByGateRange:
      set_or_add("scale_by_gate", ccfx::Int(r.chance(0.5) ? r.range(2, 9) : -r.range(1, 3)));
      break;
    case kMissingKey: {
      const size_t k = r.next() % o.size();
      // input_block_size could be optional in the future; top_k is (absent: threshold rule)
      if (o[k].key == "input_block_size" || o[k].key == "top_k" || o[k].key == "scale_by_gate")
        return false;
      o.erase(o.begin() + static_cast<long>(k));
      break;
    }
    case kUnknownKey:
      o.push_back({r.chance(0.5) ? "groups" : "use_bias", ccfx::Int(1)});
      break;
    case kWrongValueType: {
      const size_t k = r.next() % o.size();
      if (o[k].value.kind == ccfx::Value::kS)
        o[k].value = ccfx::Int(3);
      else
        o[k].value = ccfx::Str("3");
      break;
    }
    case kBadPadding:
      if (L.op != 1) return false;
      set("padding", ccfx::Str(r.chance(0.5) ? "SAME" : "full"));
      break;
    case kBadStride: {
      if (L.op != 1) return false;
      static const char* keys[] = {"stride_h", "stride_w", "dilation_h", "dilation_w"};
      set(keys[r.next() % 4],
          ccfx::Int(r.chance(0.5) ? 0 : (r.chance(0.5) ? -3 : (int64_t{1} << 33))));
      break;
    }
    default:
      return false;
  }
  S->options = ccfx::BuildMap(o);
  return true;
}

// A tensor shape defect: x, kernel, bias or policy shapes that do not fit
// together (rank, dims, lengths, zero / negative / huge dims).
bool break_shape(int d, const Layer& L, NodeSetup* S, Rng& r) {
  switch (d) {
    case kRankX: {
      std::vector<int> s = S->shapes[0];
      if (r.chance(0.5))
        s.push_back(1);
      else
        s.pop_back();
      S->shapes[0] = s;
      break;
    }
    case kRankKernel: {
      std::vector<int> s = S->shapes[1];
      if (r.chance(0.5))
        s.insert(s.begin(), 1);
      else
        s.erase(s.begin());
      S->shapes[1] = s;
      break;
    }
    case kDimMismatch:
      S->shapes[1][L.op == 0 ? 1 : 3] += r.range(1, 3);
      break;
    case kBiasLength:
      if (S->inputs[2] < 0) return false;
      S->shapes[2] =
          r.chance(0.5) ? std::vector<int>{L.units() + 1} : std::vector<int>{1, L.units()};
      break;
    case kPolicyShape:
      S->shapes[3] = r.chance(0.5) ? std::vector<int>{L.K, L.D} : std::vector<int>{L.D, L.K + 1};
      if (L.K == L.D && S->shapes[3][0] == L.K && S->shapes[3][1] == L.D)
        S->shapes[3] = {L.D + 1, L.K};
      break;
    case kPolicyBiasLength:
      S->shapes[4] = {L.K + r.range(1, 3)};
      break;
    case kZeroFeatures:
      if (L.op == 0)
        S->shapes[0][1] = 0;
      else
        S->shapes[0][3] = 0;
      break;
    case kNegativeDim:  // x is not allocated before Prepare, so any shape can reach it
      S->shapes[0][r.range(0, static_cast<int>(S->shapes[0].size()) - 1)] = -r.range(1, 5);
      break;
    case kHugeX: {
      // x's element count stays under 2^40 (a shape TFLite accepts and the op
      // sees in Prepare before any arena allocation), but the output would
      // have more than INT_MAX elements: Prepare must refuse it.
      std::vector<int>& s = S->shapes[0];
      if (L.op == 0) {
        if (L.units() < 4 || L.D > 1024) return false;
        s[0] = 1 << 30;
      } else {
        if (L.units() < 16) return false;
        s[0] = 1 << 12;
        s[1] = 1 << 12;
        s[2] = 1 << 9;
      }
      break;
    }
    default:
      return false;
  }
  return true;
}

// A node defect: a non-float tensor, a wrong input / output count, a tensor
// index out of range.
bool break_node(int d, const Layer& L, NodeSetup* S, Rng& r) {
  switch (d) {
    case kNonFloat: {
      static const std::vector<TfLiteType> types = {kTfLiteInt8,    kTfLiteUInt8,   kTfLiteInt32,
                                                    kTfLiteFloat16, kTfLiteFloat64, kTfLiteInt64,
                                                    kTfLiteBool};
      int k = r.range(0, 4);
      if (k == 2 && S->inputs[2] < 0) k = 0;
      S->types[k] = r.pick(types);
      if (S->types[k] == kTfLiteInt8 && k == 1 && L.quant) S->types[k] = kTfLiteFloat32;
      break;
    }
    case kInputCount:
      // 7 -> 6 inputs is a valid op (per-example scales): add one instead.
      if (r.chance(0.5) && L.input_scale.empty())
        S->inputs.pop_back();
      else
        S->inputs.push_back(0);
      break;
    case kOutputCount:
      if (r.chance(0.5))
        S->outputs.clear();
      else
        S->outputs.push_back(0);
      break;
    case kBadIndex: {
      int k = r.range(0, 4);
      if (k == 2) k = 1;  // -1 is a valid "no bias"
      S->inputs[k] = r.chance(0.5) ? 6 + r.range(0, 1000) : -2 - r.range(0, 5);
      break;
    }
    default:
      return false;
  }
  return true;
}

// A constant's values: static activation scales of the wrong length, or
// zero / negative / NaN / Inf (layers with static scales only).
bool break_input_scale(const Layer& L, NodeSetup* S, Rng& r) {
  if (L.input_scale.empty()) return false;
  if (r.chance(0.25)) {
    S->shapes[7] = {static_cast<int>(L.input_scale.size()) + (r.chance(0.5) ? 1 : -1)};
    if (S->shapes[7][0] == 0 || r.chance(0.3))
      S->shapes[7] = {1, static_cast<int>(L.input_scale.size())};
    return true;
  }
  static const std::vector<float> bad = {0.0f,
                                         -0.0f,
                                         -1.0f,
                                         std::nanf(""),
                                         std::numeric_limits<float>::infinity(),
                                         -std::numeric_limits<float>::denorm_min()};
  S->input_scale[r.next() % S->input_scale.size()] = r.pick(bad);
  return true;
}

}  // namespace

bool apply_defect(int d, const Layer& L, NodeSetup* S, Rng& r) {
  switch (d) {
    case kBadActivation:
    case kThresholdRange:
    case kThresholdNaN:
    case kIbsNotDividing:
    case kIbsNegative:
    case kTopKRange:
    case kScaleByGateRange:
    case kMissingKey:
    case kUnknownKey:
    case kWrongValueType:
    case kBadPadding:
    case kBadStride:
      return break_option(d, L, S, r);
    case kRankX:
    case kRankKernel:
    case kDimMismatch:
    case kBiasLength:
    case kPolicyShape:
    case kPolicyBiasLength:
    case kZeroFeatures:
    case kNegativeDim:
    case kHugeX:
      return break_shape(d, L, S, r);
    case kNonFloat:
    case kInputCount:
    case kOutputCount:
    case kBadIndex:
      return break_node(d, L, S, r);
    case kBadInputScale:
      return break_input_scale(L, S, r);
    case kEmptyOptions:
      S->options.clear();
      return true;
    default:
      return false;
  }
}

// Random byte-level damage to a valid options buffer.
void mutate(std::vector<uint8_t>* b, Rng& r) {
  const int kind = r.range(0, 4);
  switch (kind) {
    case 0:  // random bytes
    {
      const size_t n = r.range(0, 64);
      b->resize(n);
      for (auto& c : *b) c = static_cast<uint8_t>(r.next());
      break;
    }
    case 1:  // truncate
      if (!b->empty()) b->resize(r.next() % b->size());
      break;
    case 2:  // flip bytes
    {
      const int n = r.range(1, 4);
      for (int t = 0; t < n && !b->empty(); ++t)
        (*b)[r.next() % b->size()] ^= static_cast<uint8_t>(1 + r.next() % 255);
      break;
    }
    case 3:  // damage the tail (root offset / type / width)
      for (size_t t = 0; t < 3 && t < b->size(); ++t)
        if (r.chance(0.6)) (*b)[b->size() - 1 - t] = static_cast<uint8_t>(r.next());
      break;
    default:  // prepend / append garbage
      if (r.chance(0.5))
        b->insert(b->begin(), static_cast<size_t>(r.range(1, 9)), static_cast<uint8_t>(r.next()));
      else
        b->push_back(static_cast<uint8_t>(r.next()));
      break;
  }
}

}  // namespace ccdrv
