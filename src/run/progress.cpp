#include "khsgd/run/progress.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cmath>

namespace khsgd {

namespace {

std::string human(double count) {
  char text[32];
  if (count >= 1e9)
    std::snprintf(text, sizeof text, "%.2fG", count / 1e9);
  else if (count >= 1e6)
    std::snprintf(text, sizeof text, "%.2fM", count / 1e6);
  else if (count >= 1e3)
    std::snprintf(text, sizeof text, "%.1fk", count / 1e3);
  else
    std::snprintf(text, sizeof text, "%.0f", count);
  return text;
}

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = std::llround(seconds);
  char text[32];
  std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  return text;
}

}  // namespace

Progress::Progress(bool enabled, std::FILE* stream, int64_t examples_per_epoch,
                   int64_t steps_per_epoch, int64_t epochs)
    : mode_(!enabled ? Mode::Off : (isatty(fileno(stream)) ? Mode::Bar : Mode::Lines)),
      stream_(stream),
      examples_per_epoch_(examples_per_epoch),
      steps_per_epoch_(steps_per_epoch),
      epochs_(epochs),
      start_(Clock::now()),
      last_draw_(Clock::now()) {}

std::string Progress::render(int64_t done, int64_t total, int64_t done_before, double seconds,
                             double loss, int64_t epoch, int64_t epochs, bool bar) {
  const double fraction = total > 0 ? static_cast<double>(done) / total : 0.0;
  // Only what this process did counts against its time (a resumed run's earlier epochs do not).
  const double rate = seconds > 0 ? (done - done_before) / seconds : 0.0;
  const double eta = rate > 0 ? (total - done) / rate : NAN;
  std::string text;
  if (bar) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(fraction * kWidth);
    text = "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] ";
  } else {
    text = "progress: ";
  }
  char line[256];
  std::snprintf(line, sizeof line, "%3.0f%% epoch %lld/%lld, %s/%s examples, %s ex/s, ETA %s",
                100 * fraction, static_cast<long long>(epoch), static_cast<long long>(epochs),
                human(done).c_str(), human(total).c_str(), human(rate).c_str(),
                clock_text(eta).c_str());
  text += line;
  if (loss >= 0) {
    std::snprintf(line, sizeof line, ", loss %.4f", loss);
    text += line;
  }
  return text;
}

void Progress::start_epoch(int64_t epoch) {
  if (first_epoch_ == 0) first_epoch_ = epoch;
  epoch_ = epoch;
}

std::string Progress::text(double seconds) const {
  const int64_t done_before = first_epoch_ > 0 ? (first_epoch_ - 1) * examples_per_epoch_ : 0;
  return render(examples_done_, examples_per_epoch_ * epochs_, done_before, seconds, loss_, epoch_,
                epochs_, mode_ == Mode::Bar);
}

void Progress::on_steps(int64_t steps_done, double sampled_loss) {
  if (mode_ == Mode::Off) return;
  examples_done_ = (epoch_ - 1) * examples_per_epoch_ +
                   (steps_per_epoch_ ? examples_per_epoch_ * steps_done / steps_per_epoch_ : 0);
  if (std::isfinite(sampled_loss)) {
    // An exponential average of the sampled steps' losses: the running loss.
    loss_ = loss_ < 0 ? sampled_loss : 0.9 * loss_ + 0.1 * sampled_loss;
  }
  draw(false);
}

void Progress::end_epoch(double train_loss) {
  if (mode_ == Mode::Off) return;
  if (loss_ < 0 || !std::isfinite(loss_)) loss_ = train_loss;
}

void Progress::draw(bool force) {
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && since < (mode_ == Mode::Bar ? 0.1 : 10.0)) return;
  last_draw_ = now;
  const std::string shown = text(std::chrono::duration<double>(now - start_).count());
  if (mode_ == Mode::Bar) {
    std::fprintf(stream_, "\r\033[K%s", shown.c_str());
    drawn_ = true;
  } else {
    std::fprintf(stream_, "%s\n", shown.c_str());
  }
  std::fflush(stream_);
}

void Progress::print_line(const std::string& line) {
  if (mode_ == Mode::Bar && drawn_) std::fprintf(stream_, "\r\033[K");
  std::fflush(stream_);
  spdlog::info("{}", line);
  if (mode_ == Mode::Bar) draw(true);
}

void Progress::print_notice(const std::string& text) {
  if (mode_ == Mode::Bar && drawn_) std::fprintf(stream_, "\r\033[K");
  std::fputs(text.c_str(), stream_);
  std::fflush(stream_);
  if (mode_ == Mode::Bar) draw(true);
}

void Progress::finish() {
  if (mode_ == Mode::Bar && drawn_) {
    std::fprintf(stream_, "\r\033[K");
    std::fflush(stream_);
  }
}

}  // namespace khsgd
