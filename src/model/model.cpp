#include "khsgd/model/model.hpp"

#include <algorithm>
#include <vector>

#include "khsgd/base/run_parts.hpp"
#include "khsgd/engine/microbatch.hpp"
#include "khsgd/engine/step_math.hpp"
#include "khsgd/model/feature_blocks.hpp"
#include "khsgd/model/libm_lanes.hpp"

namespace khsgd {

// One-off calls: the step loop keeps its Microbatch, which does the arithmetic for both.
void per_example_gradients(const float* X, const float* y, const int64_t* rows, int64_t count,
                           int64_t d, const float* theta, float* G) {
  Microbatch batch(count, d);
  batch.gather(X, y, rows, count);
  batch.per_example_gradients(theta, G);
}

void mean_loss_gradient(const float* X, const float* y, const int64_t* rows, int64_t count,
                        int64_t d, const float* theta, float* grad) {
  Microbatch batch(count, d);
  batch.gather(X, y, rows, count);
  batch.mean_loss_gradient(theta, grad);
}

double microbatch_loss(const float* X, const float* y, const int64_t* rows, int64_t count,
                       int64_t d, const float* theta) {
  double loss = 0.0;
  for (int64_t i = 0; i < count; ++i)
    loss += bce_with_logits(logit(X + rows[i] * d, theta, d), y[rows[i]]);
  return count ? loss / count : 0.0;
}

// column_mean() of every column at once: row after row, so that the columns advance side by side
// (each still adds its rows in order from the first, then divides once).
KHSGD_VECTOR_CLONES void mean_of_rows(const float* G, int64_t rows, int64_t D, float* mean) {
  for (int64_t j = 0; j < D; ++j) mean[j] = G[j];
  for (int64_t i = 1; i < rows; ++i) {
    const float* row = G + i * D;
    for (int64_t j = 0; j < D; ++j) mean[j] += row[j];
  }
  const float count = static_cast<float>(rows);
  for (int64_t j = 0; j < D; ++j) mean[j] /= count;
}

MomentumSGD::MomentumSGD(int64_t D, double lr, double momentum)
    : neg_lr_(static_cast<float>(-lr)),
      momentum_(static_cast<float>(momentum)),
      velocity_(D, 0.0f) {}

// Parameter by parameter, each on its own: the compiler may take them in vector lanes.
void MomentumSGD::step(float* theta, const float* grad) {
  const int64_t D = static_cast<int64_t>(velocity_.size());
  const float momentum = momentum_, neg_lr = neg_lr_;
  float* __restrict velocity = velocity_.data();
  float* __restrict params = theta;
  const float* __restrict g = grad;
  for (int64_t j = 0; j < D; ++j) momentum_update(g[j], momentum, neg_lr, &velocity[j], &params[j]);
}

namespace {

// The loss terms and the number of correct predictions of rows [from, to) of X: chunk by chunk,
// first every logit of the chunk (feature_blocks.hpp: each row's dot product is logit()'s, the
// rows side by side in vector lanes), then the chunk's log1p(exp(-|z|)) in lanes (libm_lanes.hpp,
// libm's bits), then each row's bce_with_logits(), handed to add(i, term) in row order.
constexpr int64_t kEvaluationChunk = 16 * FeatureBlocks::kRows;

template <class Add>
int64_t row_losses(const FeatureBlocks& X, const float* y, const FeatureBlocks::Weights& theta,
                   int64_t from, int64_t to, Add&& add) {
  int64_t correct = 0;
  float z[kEvaluationChunk];
  double softplus[kEvaluationChunk];
  for (int64_t first = from; first < to; first += kEvaluationChunk) {
    const int64_t count = std::min(kEvaluationChunk, to - first);
    X.logits(theta, first, count, z);
    softplus_of_minus_abs(z, count, softplus);
    for (int64_t i = 0; i < count; ++i) {
      const float label = y[first + i];
      add(first + i, bce_with_logits(softplus[i], z[i], label));
      correct += ((z[i] > 0.0f) == (label == 1.0f)) ? 1 : 0;
    }
  }
  return correct;
}

}  // namespace

Evaluation evaluate(const FeatureBlocks& X, const float* y, const float* theta, int threads) {
  // The rows in `parts` runs of whole chunks, one a thread. This thread takes the first run and
  // adds its terms up as it goes; the others keep theirs, which are then added in row order: the
  // sum of one thread, bit for bit. (An evaluation reads the whole data set once, so it is bound
  // by the memory's speed more than by its arithmetic: each core that reads part of it adds to
  // that speed.)
  const int64_t rows = X.rows();
  const int64_t chunks = (rows + kEvaluationChunk - 1) / kEvaluationChunk;
  const int64_t parts = std::clamp<int64_t>(threads, 1, std::max<int64_t>(chunks, 1));
  auto start_of = [&](int64_t part) {
    return std::min(rows, part * chunks / parts * kEvaluationChunk);
  };
  const int64_t kept_from = start_of(1);
  std::vector<double> kept(static_cast<size_t>(rows - kept_from));
  std::vector<int64_t> correct(static_cast<size_t>(parts), 0);
  const FeatureBlocks::Weights weights(theta, X.features());
  double loss = 0.0;
  // Part 0 adds its terms up here; the others keep theirs.
  run_parts(parts, [&](int64_t part) {
    if (part == 0) {
      correct[0] =
          row_losses(X, y, weights, 0, kept_from, [&loss](int64_t, double term) { loss += term; });
    } else {
      correct[part] = row_losses(X, y, weights, start_of(part), start_of(part + 1),
                                 [&](int64_t i, double term) { kept[i - kept_from] = term; });
    }
  });
  for (const double term : kept) loss += term;
  Evaluation out;
  out.rows = rows;
  for (const int64_t c : correct) out.correct += c;
  out.loss = rows ? loss / rows : 0.0;
  out.accuracy = rows ? static_cast<double>(out.correct) / rows : 0.0;
  return out;
}

Evaluation evaluate(const float* X, const float* y, int64_t rows, int64_t d, const float* theta) {
  return evaluate(FeatureBlocks(X, rows, d), y, theta);
}

}  // namespace khsgd
