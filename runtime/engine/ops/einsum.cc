// Einsum on float32 and float64 (summed in double): any number of operands, explicit or implicit
// output, repeated labels (diagonals), "..." broadcast dims. Plain loops over the labels (no GEMM
// lowering).
#include <map>

#include "common.h"

namespace axstream::engine {
namespace {

// One walk over every label: output labels outer, summed labels inner; each operand reads
// through a stride per label (the sum of its dims' strides for a repeated label, 0 for a label
// it lacks or a broadcast dim of 1).
struct EinsumPlan {
  Shape sizes;                         // per label, output labels first
  size_t out_labels = 0;               // how many of them the output has
  std::vector<Shape> operand_strides;  // per operand, per label
  int64_t out_count = 1, sum_count = 1;
};

struct Term {
  std::vector<int> labels;  // letter labels, and -1 where "..." stands
};

Term parse_term(OpContext &ctx, const std::string &text) {
  Term t;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '.') {
      if (text.compare(i, 3, "...") != 0) ctx.fail("'.' outside an ellipsis in '" + text + "'");
      for (int l : t.labels)
        if (l == -1) ctx.fail("two ellipses in '" + text + "'");
      t.labels.push_back(-1);
      i += 2;
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      t.labels.push_back(c);
    } else {
      ctx.fail(std::string("character '") + c + "' in equation term '" + text + "'");
    }
  }
  return t;
}

// A label's key: a letter's is its character; the e-th "..." dim's (counted across the
// operands, right-aligned) is kEllipsisKey - e.
constexpr int kEllipsisKey = -1000;
int ellipsis_key(size_t e) { return kEllipsisKey - static_cast<int>(e); }
bool is_ellipsis_key(int key) { return key <= kEllipsisKey; }

// The equation without its spaces.
std::string equation_of(OpContext &ctx) {
  std::string equation;
  for (char c : ctx.attr_s("equation", ""))
    if (c != ' ') equation += c;
  if (equation.empty()) ctx.fail("equation is empty");
  return equation;
}

// The operand terms (before "->"), one per input.
std::vector<Term> parse_operand_terms(OpContext &ctx, const std::string &equation) {
  std::string lhs = equation.substr(0, equation.find("->"));
  std::vector<Term> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(parse_term(ctx, lhs.substr(start, comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != ctx.input_count())
    ctx.fail("equation '" + equation + "' has " + std::to_string(terms.size()) +
             " operand(s), the node " + std::to_string(ctx.input_count()));
  return terms;
}

size_t letter_count(const Term &term) {
  size_t letters = 0;
  for (int l : term.labels) letters += l != -1;
  return letters;
}

// How many dims "..." stands for: the most any operand gives it. Each operand's rank must match
// its term's letters (at least them, with an ellipsis).
size_t resolve_ellipsis(OpContext &ctx, const std::vector<Term> &terms) {
  size_t ellipsis = 0;
  for (size_t k = 0; k < terms.size(); ++k) {
    size_t letters = letter_count(terms[k]);
    bool has_ellipsis =
        std::find(terms[k].labels.begin(), terms[k].labels.end(), -1) != terms[k].labels.end();
    size_t rank = ctx.in_shape(k).size();
    if (has_ellipsis ? rank < letters : rank != letters)
      ctx.fail("operand " + std::to_string(k) + " " + shape_str(ctx.in_shape(k)) +
               " does not match its term's " + std::to_string(letters) + " label(s)");
    if (has_ellipsis) ellipsis = std::max(ellipsis, rank - letters);
  }
  return ellipsis;
}

// Every label's size, checked to agree across the operands ("..." dims broadcast), and each
// operand's dims as (label key, size).
struct EinsumLabels {
  std::map<int, int64_t> letter_size;
  std::map<int, int> letter_uses;  // how many operand dims carry the letter
  Shape ellipsis_size;
  std::vector<std::vector<std::pair<int, int64_t>>> dims;  // per operand: (label key, dim)
};

EinsumLabels assign_labels(OpContext &ctx, const std::vector<Term> &terms, size_t ellipsis) {
  EinsumLabels labels;
  labels.ellipsis_size.assign(ellipsis, 1);
  labels.dims.resize(terms.size());
  for (size_t k = 0; k < terms.size(); ++k) {
    const Shape &s = ctx.in_shape(k);
    size_t own_ellipsis = s.size() - letter_count(terms[k]), d = 0;
    for (int l : terms[k].labels) {
      if (l == -1) {
        for (size_t e = 0; e < own_ellipsis; ++e, ++d) {
          size_t at = ellipsis - own_ellipsis + e;
          int64_t &size = labels.ellipsis_size[at];
          if (s[d] != 1 && size != 1 && size != s[d])
            ctx.fail("'...' dims of the operands do not broadcast: " + shape_str(s));
          if (s[d] != 1) size = s[d];
          labels.dims[k].push_back({ellipsis_key(at), s[d]});
        }
        continue;
      }
      auto [it, fresh] = labels.letter_size.emplace(l, s[d]);
      if (!fresh && it->second != s[d])
        ctx.fail(std::string("label '") + static_cast<char>(l) + "' is " +
                 std::to_string(it->second) + " and " + std::to_string(s[d]));
      ++labels.letter_uses[l];
      labels.dims[k].push_back({l, s[d++]});
    }
  }
  return labels;
}

// The output's label keys: as written after "->", or "..." then the letters used once,
// alphabetically.
std::vector<int> output_keys(OpContext &ctx, const std::string &equation,
                             const EinsumLabels &labels) {
  size_t ellipsis = labels.ellipsis_size.size(), arrow = equation.find("->");
  std::vector<int> out_keys;
  if (arrow == std::string::npos) {
    for (size_t e = 0; e < ellipsis; ++e) out_keys.push_back(ellipsis_key(e));
    for (auto [l, uses] : labels.letter_uses)
      if (uses == 1) out_keys.push_back(l);
    return out_keys;
  }
  Term out = parse_term(ctx, equation.substr(arrow + 2));
  for (int l : out.labels) {
    if (l == -1) {
      for (size_t e = 0; e < ellipsis; ++e) out_keys.push_back(ellipsis_key(e));
      continue;
    }
    if (!labels.letter_size.count(l))
      ctx.fail(std::string("output label '") + static_cast<char>(l) + "' is in no operand");
    if (std::find(out_keys.begin(), out_keys.end(), l) != out_keys.end())
      ctx.fail(std::string("output label '") + static_cast<char>(l) + "' repeats");
    out_keys.push_back(l);
  }
  return out_keys;
}

// The walk over the output's keys, then the summed ones ("..." dims, then letters): each
// label's size and each operand's stride per label.
EinsumPlan build_plan(OpContext &ctx, const std::vector<int> &out_keys,
                      const EinsumLabels &labels) {
  std::vector<int> keys = out_keys;
  for (size_t e = 0; e < labels.ellipsis_size.size(); ++e)
    if (std::find(keys.begin(), keys.end(), ellipsis_key(e)) == keys.end())
      keys.push_back(ellipsis_key(e));
  for (auto [l, size] : labels.letter_size)
    if (std::find(keys.begin(), keys.end(), l) == keys.end()) keys.push_back(l);
  EinsumPlan p;
  p.out_labels = out_keys.size();
  for (size_t i = 0; i < keys.size(); ++i) {
    int key = keys[i];
    int64_t size = is_ellipsis_key(key) ? labels.ellipsis_size[kEllipsisKey - key]
                                        : labels.letter_size.at(key);
    p.sizes.push_back(size);
    int64_t &count = i < p.out_labels ? p.out_count : p.sum_count;
    if (__builtin_mul_overflow(count, size, &count))
      ctx.fail("the label sizes multiply past int64");
  }
  for (size_t k = 0; k < labels.dims.size(); ++k) {
    const auto &dims = labels.dims[k];
    Shape strides = strides_of(ctx.in_shape(k)), per_label(keys.size(), 0);
    for (size_t d = 0; d < dims.size(); ++d) {
      if (dims[d].second == 1 && is_ellipsis_key(dims[d].first)) continue;  // broadcast
      size_t label = std::find(keys.begin(), keys.end(), dims[d].first) - keys.begin();
      per_label[label] += strides[d];
    }
    p.operand_strides.push_back(per_label);
  }
  return p;
}

EinsumPlan plan_einsum(OpContext &ctx, Shape &out_shape) {
  std::string equation = equation_of(ctx);
  std::vector<Term> terms = parse_operand_terms(ctx, equation);
  EinsumLabels labels = assign_labels(ctx, terms, resolve_ellipsis(ctx, terms));
  EinsumPlan p = build_plan(ctx, output_keys(ctx, equation, labels), labels);
  out_shape.assign(p.sizes.begin(), p.sizes.begin() + static_cast<std::ptrdiff_t>(p.out_labels));
  return p;
}

std::unique_ptr<Kernel> compile_einsum(OpContext &ctx) {
  if (ctx.input_count() == 0) ctx.fail("no operands");
  Shape out_shape;
  EinsumPlan p = plan_einsum(ctx, out_shape);
  // float32, or float64 computed in double (the sum is a double either way).
  const DType dt = ctx.in_dtype(0) == DType::f64 ? DType::f64 : DType::f32;
  ctx.set_output(0, dt, out_shape);
  if (ctx.infer_only()) return nullptr;
  for (size_t k = 0; k < ctx.input_count(); ++k)
    if (ctx.in_dtype(k) != dt)
      ctx.unsupported("operand " + std::to_string(k) + " of type " + dtype_name(ctx.in_dtype(k)) +
                      " (all float32 or all float64)");
  auto run = [p](auto zero, const void *const *in, void *const *o) {
    using T = decltype(zero);
    T *y = static_cast<T *>(o[0]);
    size_t labels = p.sizes.size(), operands = p.operand_strides.size();
    std::vector<int64_t> index(labels, 0), offset(operands, 0);
    // Odometer over every label (the last fastest), each operand's offset kept up to date.
    for (int64_t out = 0; out < p.out_count; ++out) {
      double sum = 0;
      for (int64_t s = 0; s < p.sum_count; ++s) {
        double term = 1;
        for (size_t k = 0; k < operands; ++k) term *= static_cast<const T *>(in[k])[offset[k]];
        sum += term;
        for (size_t l = labels; l-- > 0;) {
          for (size_t k = 0; k < operands; ++k) offset[k] += p.operand_strides[k][l];
          if (++index[l] < p.sizes[l]) break;
          for (size_t k = 0; k < operands; ++k) offset[k] -= p.operand_strides[k][l] * p.sizes[l];
          index[l] = 0;
        }
      }
      y[out] = static_cast<T>(sum);
    }
  };
  auto k = make_kernel([run, dt](ExecContext &, const void *const *in, void *const *o) {
    if (dt == DType::f64)
      run(double{}, in, o);
    else
      run(float{}, in, o);
  });
  // (Saturated: the walk's length is out_count * sum_count, which may pass 2^64.)
  k->macs = static_cast<uint64_t>(
      std::min(1.8e19, static_cast<double>(p.out_count) * static_cast<double>(p.sum_count)));
  return k;
}

}  // namespace

AXSTREAM_ENGINE_FLOAT64_OP(Einsum, "Einsum", 12, 17, compile_einsum)

}  // namespace axstream::engine
