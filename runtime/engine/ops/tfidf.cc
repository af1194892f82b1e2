// TfIdfVectorizer on int32/int64 token ids (1-D, or 2-D: one row per batch item): counts of the
// pooled n-grams (with skips), as TF, IDF or TF-IDF.
#include <map>

#include "common.h"

namespace axstream::engine {
namespace {

enum class TfIdfMode { tf, idf, tfidf };

struct TfIdfPlan {
  TfIdfMode mode = TfIdfMode::tf;
  int64_t min_n = 1, max_n = 1, max_skip = 0;
  int64_t rows = 1, row_length = 0, outputs = 0, longest = 0;  // longest pooled n-gram
  std::map<std::vector<int64_t>, int64_t> grams;               // pooled n-gram -> output coordinate
  std::vector<float> weights;  // per output coordinate, 1 without weights
};

// Reads the pool: ngram_counts[i] is where the (i+1)-grams start in pool_int64s, ngram_indexes
// gives each pooled n-gram (in pool order) its output coordinate.
void read_pool(OpContext &ctx, TfIdfPlan &p) {
  std::vector<int64_t> pool = ctx.attr_ints("pool_int64s"), starts = ctx.attr_ints("ngram_counts"),
                       indexes = ctx.attr_ints("ngram_indexes");
  if (ctx.has_attr("pool_strings")) ctx.unsupported("pool_strings (string tensors)");
  if (indexes.empty()) ctx.fail("ngram_indexes is empty");
  p.outputs = *std::max_element(indexes.begin(), indexes.end()) + 1;
  size_t gram = 0;
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t n = static_cast<int64_t>(i) + 1;
    int64_t begin = starts[i];
    int64_t end = i + 1 < starts.size() ? starts[i + 1] : static_cast<int64_t>(pool.size());
    if (begin < 0 || end < begin || end > static_cast<int64_t>(pool.size()) || (end - begin) % n)
      ctx.fail("ngram_counts[" + std::to_string(i) + "] = " + std::to_string(begin) +
               " does not start a run of " + std::to_string(n) + "-grams in a pool of " +
               std::to_string(pool.size()));
    for (int64_t at = begin; at < end; at += n, ++gram) {
      if (gram >= indexes.size())
        ctx.fail("the pool holds more n-grams than ngram_indexes' " +
                 std::to_string(indexes.size()));
      if (indexes[gram] < 0) ctx.fail("ngram_indexes[" + std::to_string(gram) + "] is negative");
      p.grams[std::vector<int64_t>(pool.begin() + at, pool.begin() + at + n)] = indexes[gram];
      p.longest = n;
    }
  }
  if (gram != indexes.size())
    ctx.fail("ngram_indexes has " + std::to_string(indexes.size()) + " entries, the pool " +
             std::to_string(gram) + " n-grams");
  std::vector<float> weights = ctx.attr_floats("weights");
  p.weights.assign(static_cast<size_t>(p.outputs), 1.f);
  if (!weights.empty()) {
    if (weights.size() != indexes.size())
      ctx.fail("weights has " + std::to_string(weights.size()) + " entries, ngram_indexes " +
               std::to_string(indexes.size()));
    for (size_t g = 0; g < indexes.size(); ++g) p.weights[indexes[g]] = weights[g];
  }
}

template <typename Id>
void count_row(const TfIdfPlan &p, const Id *ids, float *counts) {
  std::vector<int64_t> gram;
  // Only n-grams that fit the row and the pool can count (the attributes may claim more).
  for (int64_t n = p.min_n; n <= std::min(p.max_n, std::min(p.row_length, p.longest)); ++n)
    // A unigram has no gaps to skip: it is counted once, not once per skip count.
    for (int64_t skip = 0; skip <= (n == 1 ? 0 : p.max_skip); ++skip) {
      if (n > 1 && skip >= p.row_length / (n - 1)) break;  // its span leaves the row
      int64_t span = (n - 1) * (skip + 1);
      for (int64_t start = 0; start + span < p.row_length; ++start) {
        gram.clear();
        for (int64_t k = 0; k < n; ++k)
          gram.push_back(static_cast<int64_t>(ids[start + k * (skip + 1)]));
        auto found = p.grams.find(gram);
        if (found != p.grams.end()) counts[found->second] += 1.f;
      }
    }
  for (int64_t c = 0; c < p.outputs; ++c) {
    if (p.mode == TfIdfMode::idf)
      counts[c] = counts[c] > 0.f ? p.weights[c] : 0.f;
    else if (p.mode == TfIdfMode::tfidf)
      counts[c] *= p.weights[c];
  }
}

std::unique_ptr<Kernel> compile_tfidf(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape &in = ctx.in_shape(0);
  if (in.empty() || in.size() > 2)
    ctx.fail("input must be 1-D or 2-D token ids, got " + shape_str(in));
  DType dtype = ctx.in_dtype(0);
  if (dtype != DType::i32 && dtype != DType::i64)
    ctx.unsupported(std::string("input of type ") + dtype_name(dtype) + " (int32 or int64 ids)");
  TfIdfPlan p;
  std::string mode = ctx.attr_s("mode", "");
  if (mode == "TF")
    p.mode = TfIdfMode::tf;
  else if (mode == "IDF")
    p.mode = TfIdfMode::idf;
  else if (mode == "TFIDF")
    p.mode = TfIdfMode::tfidf;
  else
    ctx.fail("mode '" + mode + "' is not one of TF, IDF, TFIDF");
  p.min_n = ctx.attr_i("min_gram_length", 0);
  p.max_n = ctx.attr_i("max_gram_length", 0);
  p.max_skip = ctx.attr_i("max_skip_count", 0);
  if (p.min_n < 1 || p.max_n < p.min_n || p.max_skip < 0)
    ctx.fail("min_gram_length " + std::to_string(p.min_n) + ", max_gram_length " +
             std::to_string(p.max_n) + " and max_skip_count " + std::to_string(p.max_skip) +
             " are not 1 <= min <= max and skip >= 0");
  read_pool(ctx, p);
  p.rows = in.size() == 2 ? in[0] : 1;
  p.row_length = in.back();
  ctx.set_output(0, DType::f32, in.size() == 2 ? Shape{p.rows, p.outputs} : Shape{p.outputs});
  if (ctx.infer_only()) return nullptr;
  auto k = make_kernel([p, dtype](ExecContext &, const void *const *i, void *const *o) {
    float *y = static_cast<float *>(o[0]);
    std::fill(y, y + p.rows * p.outputs, 0.f);
    for (int64_t r = 0; r < p.rows; ++r) {
      if (dtype == DType::i32)
        count_row(p, static_cast<const int32_t *>(i[0]) + r * p.row_length, y + r * p.outputs);
      else
        count_row(p, static_cast<const int64_t *>(i[0]) + r * p.row_length, y + r * p.outputs);
    }
  });
  // (In double: the attributes may claim lengths and skips whose product overflows.)
  k->macs = static_cast<uint64_t>(
      std::min(1e18, static_cast<double>(p.rows) * static_cast<double>(p.row_length) *
                         static_cast<double>(std::min(p.max_n, p.longest)) *
                         static_cast<double>(std::min(p.max_skip, p.row_length) + 1)));
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(TfIdfVectorizer, "TfIdfVectorizer", 9, 17, compile_tfidf)

}  // namespace axstream::engine
