// The command line: the reference's flags and spellings, the checks that name a flag, folder
// naming from the flags, and the checkpoint schedule the flags set.
#include <gtest/gtest.h>

#include "command_line_helpers.hpp"
#include "khsgd/app/config.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/data/utf8.hpp"
#include "khsgd/run/checkpoint.hpp"
#include "khsgd/run/results.hpp"
#include "khsgd/sorting/sorter_registry.hpp"

using namespace khsgd;
using khsgd_test::error_of;
using khsgd_test::parse;

TEST(CommandLine, DefaultsAreTheReferences) {
  const Config c = parse({});
  EXPECT_EQ(c.sorter, "CD-GraB");
  EXPECT_EQ(c.seed, 0);
  EXPECT_DOUBLE_EQ(c.lr, 1e-2);
  EXPECT_EQ(c.B, 16);
  EXPECT_DOUBLE_EQ(c.momentum, 0.9);
  EXPECT_EQ(c.epochs, 50);
  EXPECT_EQ(c.exp, "LR-HMDA");
  EXPECT_EQ(c.node_cnt, 0);
  EXPECT_EQ(c.data_dir, "data/HMDA");
  EXPECT_EQ(c.results_dir, "results");
  EXPECT_EQ(c.dataset, "hmda");
  EXPECT_EQ(c.device, "auto");
  EXPECT_FALSE(c.save_orders);
}

TEST(CommandLine, ReferenceSpellingsAreAccepted) {
  const Config c = parse({"--sorter", "KH-SGD", "--seed", "3", "--lr", "5e-3", "--B", "32",
                          "--node_cnt", "1", "--local_rank=0", "--epochs=7", "--save_orders"});
  EXPECT_EQ(c.sorter, "KH-SGD");
  EXPECT_EQ(c.seed, 3);
  EXPECT_DOUBLE_EQ(c.lr, 5e-3);
  EXPECT_EQ(c.B, 32);
  EXPECT_EQ(c.node_cnt, 1);
  EXPECT_EQ(c.epochs, 7);
  EXPECT_TRUE(c.save_orders);
  EXPECT_EQ(parse({"--B=8"}).B, 8);
  EXPECT_EQ(parse({"--local-rank", "2"}).local_rank, "2");
}

TEST(CommandLine, BadValuesNameTheFlag) {
  // The choices are the registry's names, in its order.
  std::string names;
  for (const std::string& name : sorter_names()) names += (names.empty() ? "" : ", ") + name;
  EXPECT_EQ(names.rfind("D-RR, CD-GraB, SBW, KH-SGD", 0), 0u) << names;
  EXPECT_NE(error_of({"--sorter", "KHSGD"}).find("--sorter 'KHSGD' is not one of: " + names),
            std::string::npos);
  EXPECT_NE(error_of({"--lr", "0"}).find("--lr '0' must be a finite number > 0"),
            std::string::npos);
  EXPECT_NE(error_of({"--lr", "-1"}).find("--lr"), std::string::npos);
  EXPECT_NE(error_of({"--lr", "nan"}).find("--lr"), std::string::npos);
  EXPECT_NE(error_of({"--lr", "inf"}).find("--lr"), std::string::npos);
  EXPECT_NE(error_of({"--lr", "fast"}).find("--lr"), std::string::npos);
  EXPECT_NE(error_of({"--epochs", "0"}).find("--epochs '0' must be an integer"), std::string::npos);
  EXPECT_NE(error_of({"--epochs", "-3"}).find("--epochs"), std::string::npos);
  EXPECT_NE(error_of({"--B", "1.5"}).find("--B '1.5'"), std::string::npos);
  EXPECT_NE(error_of({"--seed", "-1"}).find("--seed"), std::string::npos);
  EXPECT_NE(error_of({"--momentum", "2"}).find("--momentum"), std::string::npos);
  EXPECT_NE(error_of({"--backend", "mpich"})
                .find("--backend 'mpich' is not one of: auto, gloo, nccl, mpi"),
            std::string::npos);
  EXPECT_NE(error_of({"--device", "tpu"}).find("--device 'tpu'"), std::string::npos);
  EXPECT_NE(error_of({"--dataset", "mnist"}).find("--dataset 'mnist'"), std::string::npos);
  EXPECT_NE(error_of({"--exp", "a/b"}).find("--exp"), std::string::npos);
  EXPECT_NE(error_of({"--bogus", "1"}).find("bogus"), std::string::npos);
  EXPECT_NE(error_of({"--lr"}).find("lr"), std::string::npos);
  EXPECT_NE(error_of({"stray"}).find("unexpected argument 'stray'"), std::string::npos);
}

TEST(CommandLine, HelpIsNotAnError) {
  const char* argv[] = {"khsgd_train", "--help"};
  Config config;
  std::string help;
  EXPECT_FALSE(parse_command_line(2, argv, &config, &help));
  EXPECT_NE(help.find("--sorter"), std::string::npos);
  EXPECT_NE(help.find("--save_orders"), std::string::npos);
}

TEST(CommandLine, WorldChecks) {
  Config c = parse({});
  check_against_world(&c, 4);
  EXPECT_EQ(c.node_cnt, 4);  // defaults to the world size

  Config mismatch = parse({"--node_cnt", "2"});
  EXPECT_THROW(check_against_world(&mismatch, 1), UserError);

  Config indivisible = parse({"--B", "10"});
  try {
    check_against_world(&indivisible, 4);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("not divisible"), std::string::npos);
  }
  // B 12 over 4 ranks = 3 per rank: odd, fine for D-RR, not for a pair sorter.
  Config drr = parse({"--sorter", "D-RR", "--B", "12"});
  EXPECT_NO_THROW(check_against_world(&drr, 4));
  Config pairs = parse({"--sorter", "SBW", "--B", "12"});
  try {
    check_against_world(&pairs, 4);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("must be even"), std::string::npos);
  }
}

TEST(CommandLine, EpochLists) {
  EXPECT_EQ(parse_epoch_list("1,5,10-12", 50), (std::vector<int64_t>{1, 5, 10, 11, 12}));
  EXPECT_EQ(parse_epoch_list("3,1,3", 5), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(parse_epoch_list("all", 3), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_THROW(parse_epoch_list("0", 3), UserError);
  EXPECT_THROW(parse_epoch_list("1-9", 3), UserError);
  EXPECT_THROW(parse_epoch_list("a", 3), UserError);
  EXPECT_THROW(parse_epoch_list("", 3), UserError);
  EXPECT_EQ(parse({"--dataset", "synthetic", "--synthetic_rows", "2000"}).synthetic_rows, 2000);
  EXPECT_NE(error_of({"--synthetic_rows", "2000"}).find("--dataset synthetic only"),
            std::string::npos);
}

TEST(FolderNames, LearningRateIsWrittenLikePythonRepr) {
  EXPECT_EQ(python_float_repr(0.01), "0.01");
  EXPECT_EQ(python_float_repr(5e-3), "0.005");
  EXPECT_EQ(python_float_repr(1e-4), "0.0001");
  EXPECT_EQ(python_float_repr(1e-5), "1e-05");
  EXPECT_EQ(python_float_repr(2.5e-7), "2.5e-07");
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(3.0), "3.0");
  EXPECT_EQ(python_float_repr(0.3), "0.3");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(123.25), "123.25");
}

TEST(FolderNames, RunFolderFollowsTheReferenceLayoutWithNodeCount) {
  Config c = parse({"--sorter", "KH-SGD", "--seed", "2", "--lr", "5e-3", "--epochs", "50"});
  c.node_cnt = 1;
  EXPECT_EQ(run_directory(c), "results/LR-HMDA-50/LR-hmda-KH-SGD-node-1-lr-0.005-B-16-seed-2");
  c.dataset = "synthetic";
  EXPECT_EQ(run_name(c), "LR-synthetic-KH-SGD-node-1-lr-0.005-B-16-seed-2");
}

TEST(CheckpointSchedule, EveryKEpochsOrEverySSeconds) {
  // --checkpoint_every 3 --checkpoint_seconds 10, training from t = 100 s.
  CheckpointSchedule both(3, 10, 100);
  EXPECT_FALSE(both.due(1, 101));
  EXPECT_FALSE(both.due(2, 109.9));
  EXPECT_TRUE(both.due(2, 110));  // 10 s since training began
  EXPECT_TRUE(both.due(3, 101));  // the 3rd epoch
  both.written(110);
  EXPECT_FALSE(both.due(4, 119));
  EXPECT_TRUE(both.due(4, 120));
  // The defaults: not by count, every 60 s.
  const Config defaults;
  CheckpointSchedule by_time(defaults.checkpoint_every, defaults.checkpoint_seconds, 0);
  EXPECT_FALSE(by_time.due(1, 59));
  EXPECT_TRUE(by_time.due(1, 60));
  // 0 and 0: never (a clean stop still writes one; the trainer sees to that).
  CheckpointSchedule never(0, 0, 0);
  EXPECT_FALSE(never.due(1, 1e9));
  EXPECT_FALSE(never.due(100, 1e9));
}

TEST(CheckpointGenerations, TheLatestEpochEveryRankHolds) {
  // Each rank's latest and previous checkpoint epochs (-1: none).
  EXPECT_EQ(common_checkpoint_epoch({4, 4}, {2, 2}), 4);    // all wrote epoch 4
  EXPECT_EQ(common_checkpoint_epoch({4, 2}, {2, 1}), 2);    // rank 1 stopped before writing 4
  EXPECT_EQ(common_checkpoint_epoch({4, -1}, {2, 2}), 2);   // rank 1 stopped between its renames
  EXPECT_EQ(common_checkpoint_epoch({2, 4}, {-1, 2}), 2);   // one rank alone, the other behind
  EXPECT_EQ(common_checkpoint_epoch({6, 2}, {4, -1}), -1);  // nothing in common
  EXPECT_EQ(common_checkpoint_epoch({3}, {-1}), 3);         // one rank
  EXPECT_EQ(common_checkpoint_epoch({-1}, {-1}), -1);
}

TEST(CheckpointSchedule, TheFlags) {
  EXPECT_EQ(parse({}).checkpoint_seconds, 60.0);
  EXPECT_EQ(parse({}).checkpoint_every, 0);
  EXPECT_EQ(parse({"--checkpoint_seconds", "0.5"}).checkpoint_seconds, 0.5);
  EXPECT_EQ(parse({"--checkpoint_seconds", "0"}).checkpoint_seconds, 0.0);
  EXPECT_NE(error_of({"--checkpoint_seconds", "-1"})
                .find("--checkpoint_seconds '-1' must be a finite number of seconds >= 0"),
            std::string::npos);
}

// config.json records --exp, --data_dir and --results_dir, and JSON holds Unicode text only.
TEST(CommandLine, TextThatConfigJsonRecordsMustBeUtf8) {
  EXPECT_EQ(error_of({"--exp", "run-\xff"}),
            "--exp is not valid UTF-8; use a name in UTF-8 (config.json records it)");
  EXPECT_NE(error_of({"--data_dir", "d\xc3("}).find("--data_dir is not valid UTF-8"),
            std::string::npos);
  EXPECT_NE(error_of({"--results_dir", "\xed\xa0\x80"}).find("--results_dir is not valid UTF-8"),
            std::string::npos);
  EXPECT_EQ(parse({"--exp", "L\xc3\xa4uft-\xe2\x82\xac-\xf0\x9f\x98\x80"}).exp,
            "L\xc3\xa4uft-\xe2\x82\xac-\xf0\x9f\x98\x80");
}

TEST(Utf8, WellFormedSequencesOnly) {
  EXPECT_TRUE(is_utf8(""));
  EXPECT_TRUE(is_utf8("plain ASCII"));
  EXPECT_TRUE(is_utf8(
      "\xc3\xa4 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"));  // a, EUR, emoji, U+10FFFF
  EXPECT_FALSE(is_utf8("\xff"));                                    // never a UTF-8 byte
  EXPECT_FALSE(is_utf8("\x80"));                                    // a continuation byte alone
  EXPECT_FALSE(is_utf8("\xc3"));                                    // cut short
  EXPECT_FALSE(is_utf8("\xc0\xaf"));                                // overlong '/'
  EXPECT_FALSE(is_utf8("\xe0\x80\xaf"));                            // overlong, 3 bytes
  EXPECT_FALSE(is_utf8("\xed\xa0\x80"));                            // a UTF-16 surrogate
  EXPECT_FALSE(is_utf8("\xf4\x90\x80\x80"));                        // above U+10FFFF
  EXPECT_EQ(utf8_sequence("a\xe2\x82\xac", 1), 3u);
}
