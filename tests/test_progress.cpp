// The progress display's text: the bar on a terminal, the plain line in a log, after a resume.
#include <gtest/gtest.h>

#include <cstdio>

#include "khsgd/run/progress.hpp"

using namespace khsgd;

TEST(ProgressDisplay, BarAndLineTexts) {
  // Half of 2 epochs of 1000 examples after 2 s: 500 ex/s, 2 s to go.
  EXPECT_EQ(Progress::render(1000, 2000, 0, 2.0, 0.41234, 1, 2, true),
            "[############............]  50% epoch 1/2, 1.0k/2.0k examples, 500 ex/s, ETA 0:00:02, "
            "loss 0.4123");
  EXPECT_EQ(Progress::render(2000000, 4000000, 0, 1.0, -1, 3, 6, false),
            "progress:  50% epoch 3/6, 2.00M/4.00M examples, 2.00M ex/s, ETA 0:00:01");
  EXPECT_EQ(Progress::render(0, 100, 0, 0.0, -1, 1, 1, false),
            "progress:   0% epoch 1/1, 0/100 examples, 0 ex/s, ETA ?");
}

TEST(ProgressDisplay, AResumedRunCountsOnlyItsOwnEpochsAgainstItsTime) {
  // A 50-epoch run of 1000 examples (10 steps) per epoch, resumed after epoch 30: this process
  // has trained epochs 31 and 32 (2000 examples) in 4 s, so 500 ex/s and 18 000 examples to go
  // in 36 s -- not 32 000 / 4 s = 8.0k ex/s and an ETA of 2 s.
  std::FILE* sink = std::tmpfile();
  ASSERT_NE(sink, nullptr);
  Progress progress(true, sink, 1000, 10, 50);
  ASSERT_EQ(progress.mode(), Progress::Mode::Lines);
  progress.start_epoch(31);
  progress.on_steps(10, 0.5);
  progress.start_epoch(32);
  progress.on_steps(10, 0.5);
  EXPECT_EQ(progress.text(4.0),
            "progress:  64% epoch 32/50, 32.0k/50.0k examples, 500 ex/s, ETA 0:00:36, loss 0.5000");
  // A run from the start: every example is this process's.
  Progress fresh(true, sink, 1000, 10, 50);
  fresh.start_epoch(1);
  fresh.on_steps(5, 0.5);
  EXPECT_EQ(fresh.text(1.0),
            "progress:   1% epoch 1/50, 500/50.0k examples, 500 ex/s, ETA 0:01:39, loss 0.5000");
  std::fclose(sink);
}
