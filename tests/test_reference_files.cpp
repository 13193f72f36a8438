// The objects behind the reference's results.pt and time/time-R.pt, built from khsgd's own CSV
// rows, and when they are written (Python's torch.load of the files:
// tests/test_reference_files.py).
#include <cmath>
#include <fstream>

#include "helpers.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/data/byte_source.hpp"
#include "khsgd/data/files.hpp"
#include "khsgd/data/pt_stream.hpp"
#include "khsgd/data/reference_files.hpp"
#include "khsgd/data/zip_archive.hpp"
#include "khsgd/run/results.hpp"

using namespace khsgd;

namespace {

const SavedObject& at(const SavedObject& dict, const std::string& key) {
  for (size_t i = 0; i < dict.keys.size(); ++i)
    if (dict.keys[i] == key) return dict.items[i];
  throw std::out_of_range("no key " + key);
}

constexpr const char* kTimeCsv =
    "epoch,sorter,communication,dataset,forward_backward,sgd,train_seconds,estimated\n"
    "1,0.25,0.5,0.125,1.5,0.0625,2.5,1\n"
    "2,0.75,1.25,0.375,1.75,0.1875,4.5,1\n";

}  // namespace

TEST(ReferenceFiles, ResultsHoldLossTensorsAndExactAccuracyFractions) {
  // Two metrics.csv rows of the golden KH-SGD run's shape: 20 000 train rows, 4 999 test rows.
  const SavedObject r = reference_results(
      "1,0.398874938,0.81975,0.401385963,0.819963993,0.030000,0.010000\n"
      "2,0.396166444,0.8213,0.398266375,0.822564513,0.030000,0.010000\n",
      20000, 4999);
  EXPECT_EQ(r.keys, (std::vector<std::string>{"train", "test"}));
  for (const char* split : {"train", "test"}) {
    EXPECT_EQ(at(r, split).keys, (std::vector<std::string>{"loss", "acc"}));
    ASSERT_EQ(at(at(r, split), "loss").kind, SavedObject::Kind::List);
    ASSERT_EQ(at(at(r, split), "loss").items.size(), 2u);
    ASSERT_EQ(at(at(r, split), "acc").items.size(), 2u);
  }
  const SavedObject& loss = at(at(r, "train"), "loss").items[1];
  ASSERT_EQ(loss.kind, SavedObject::Kind::Tensor);  // 0-dim float32, as HMDA_eval returns it
  EXPECT_TRUE(loss.tensor.shape.empty());
  EXPECT_EQ(loss.tensor.values, std::vector<float>{0.396166444f});
  const SavedObject& train_acc = at(at(r, "train"), "acc").items[0];
  ASSERT_EQ(train_acc.kind, SavedObject::Kind::Float);  // a Python float: correct / rows
  EXPECT_EQ(train_acc.number, 16395.0 / 20000);
  // 0.819963993 is 4099 / 4999 printed to nine digits; the file holds the fraction itself.
  EXPECT_EQ(at(at(r, "test"), "acc").items[0].number, 4099.0 / 4999);
  EXPECT_EQ(at(at(r, "test"), "acc").items[1].number, 4112.0 / 4999);
}

TEST(ReferenceFiles, TimesFollowTheReferenceTimersLabels) {
  const SavedObject pair = reference_times(kTimeCsv, "KH-SGD");
  EXPECT_EQ(pair.keys, (std::vector<std::string>{"time", "cuda-max", "cuda-current", "ram"}));
  const std::vector<std::string> pair_labels = {
      "SGD", "sorter", "epoch-1", "communication", "dataset", "forward-backward", "epoch-2"};
  EXPECT_EQ(at(pair, "time").keys, pair_labels);
  EXPECT_EQ(at(reference_times(kTimeCsv, "D-RR"), "time").keys,
            (std::vector<std::string>{"SGD", "sorter", "epoch-1", "dataset", "forward-backward",
                                      "communication", "epoch-2"}));
  const SavedObject& time = at(pair, "time");
  // One entry per epoch and category; "epoch-E" is the epoch's train seconds.
  EXPECT_EQ(at(time, "sorter").tensor.values, (std::vector<float>{0.25f, 0.75f}));
  EXPECT_EQ(at(time, "sorter").tensor.shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(at(time, "communication").tensor.values, (std::vector<float>{0.5f, 1.25f}));
  EXPECT_EQ(at(time, "dataset").tensor.values, (std::vector<float>{0.125f, 0.375f}));
  EXPECT_EQ(at(time, "forward-backward").tensor.values, (std::vector<float>{1.5f, 1.75f}));
  EXPECT_EQ(at(time, "SGD").tensor.values, (std::vector<float>{0.0625f, 0.1875f}));
  EXPECT_EQ(at(time, "epoch-1").tensor.values, std::vector<float>{2.5f});
  EXPECT_EQ(at(time, "epoch-2").tensor.values, std::vector<float>{4.5f});
  EXPECT_EQ(at(time, "epoch-2").tensor.shape, (std::vector<int64_t>{1}));  // 1-D: readers sum it
  for (const char* memory : {"cuda-max", "cuda-current", "ram"}) {
    EXPECT_EQ(at(pair, memory).keys, pair_labels);
    for (const std::string& label : pair_labels) {
      const HostTensor& t = at(at(pair, memory), label).tensor;
      EXPECT_EQ(t.values.size(), at(time, label).tensor.values.size()) << memory << " " << label;
      for (float v : t.values) EXPECT_TRUE(std::isnan(v)) << "not measured: " << memory;
    }
  }
}

TEST(ReferenceFiles, ADamagedTimeLogIsNamed) {
  try {
    reference_times("epoch,sorter\n1,0.5\n", "CD-GraB", "DIR/time-rank0.csv");
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "DIR/time-rank0.csv: no column 'train_seconds'");
  }
  EXPECT_THROW(reference_times(std::string(kTimeCsv) + "3,x,1,1,1,1,1,1\n", "D-RR"), UserError);
  EXPECT_THROW(reference_times(std::string(kTimeCsv) + "3,1,1\n", "D-RR"), UserError);
  EXPECT_THROW(
      reference_times("epoch,sorter,communication,dataset,forward_backward,sgd,train_seconds\n",
                      "D-RR"),
      UserError);
  EXPECT_THROW(reference_results("1,0.4,0.8\n", 10, 10), UserError);
}

TEST(ReferenceFiles, TheFirstAndTheLastEpochAreAlwaysWritten) {
  khsgd_test::TempDir tmp;
  const std::string dir = tmp / "run";
  ReferenceFiles files(dir, 0, "SBW", 20000, 4999);
  make_directories(dir);
  files.prepare();
  const std::string header =
      "epoch,sorter,communication,dataset,forward_backward,sgd,train_seconds,estimated\n";
  std::ofstream(time_log_path(dir, 0)) << header << "1,0.25,0.5,0.125,1.5,0.0625,2.5,1\n";
  const std::string one = "1,0.398874938,0.81975,0.401385963,0.819963993,0.030000,0.010000\n";
  files.update(false, &one);  // nothing written yet: written whatever the clock says
  const std::string results = khsgd_test::read_file(dir + "/results.pt");
  const std::string times = khsgd_test::read_file(dir + "/time/time-0.pt");
  EXPECT_EQ(results.substr(0, 2), "PK");  // a zip, as torch.save writes
  EXPECT_EQ(times.substr(0, 2), "PK");
  std::ofstream(time_log_path(dir, 0), std::ios::app) << "2,0.75,1.25,0.375,1.75,0.1875,4.5,1\n";
  const std::string two = one + "2,0.396166444,0.8213,0.398266375,0.822564513,0.030000,0.010000\n";
  files.update(true, &two);  // the last epoch, however recent the previous rewrite
  EXPECT_GT(khsgd_test::read_file(dir + "/results.pt").size(), results.size());
  EXPECT_GT(khsgd_test::read_file(dir + "/time/time-0.pt").size(), times.size());
}

namespace {

// `epochs` epochs of metrics rows and time lines with varied values (some NaN, some needing the
// exact-fraction accuracies).
std::pair<std::string, std::string> rows_and_times(int epochs) {
  std::string rows, times = std::string(kTimeHeader) + "\n";
  char line[256];
  for (int e = 1; e <= epochs; ++e) {
    const double x = 1.0 / (e + 2.0);
    std::snprintf(line, sizeof line, "%d,%.9g,%.9g,%.9g,%.9g,0.030000,0.010000\n", e, x, 1 - x / 3,
                  e % 97 == 0 ? NAN : 2 * x, 0.75 + x / 8);
    rows += line;
    std::snprintf(line, sizeof line, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,1\n", e, x, 2 * x, 3 * x,
                  4 * x, 5 * x, 6 * x);
    times += line;
  }
  return {rows, times};
}

}  // namespace

// The files are streamed (pt_stream.hpp) so that their memory does not grow with the epochs; the
// bytes must stay those LibTorch's pickler and zip writer give for the same objects: with few
// epochs, with over 256 memo entries (4-byte memo numbers) and with over 65535 records (zip64
// end records), for every sorter's label order.
namespace {

// Whether the streamed file `ours` holds what LibTorch's pickler wrote to `libtorchs`. Under the
// LibTorch the streamed writer follows (1.13: its zip layout, record names and alignment), the
// same bytes. A newer LibTorch (2.x) adds bookkeeping records of its own (byteorder, and
// .data/serialization_id, which differs from file to file, so no two of its files are the same
// bytes) and lays records out on other boundaries: then every record of ours must hold the same
// bytes as LibTorch's record of that name, and LibTorch's file may hold only those extra ones more.
// torch.load of both versions reads our files (tests/test_reference_files.py, in both CI builds).
::testing::AssertionResult same_records(const std::string& ours, const std::string& libtorchs) {
  if (khsgd_test::read_file(ours) == khsgd_test::read_file(libtorchs))
    return ::testing::AssertionSuccess();
  const khsgd::FileSource our_file(ours), their_file(libtorchs);
  const khsgd::ZipArchive our_zip(ours, our_file), their_zip(libtorchs, their_file);
  for (const auto& [name, entry] : our_zip.entries()) {
    if (their_zip.entries().count(name) == 0)
      return ::testing::AssertionFailure() << "LibTorch's file has no record " << name;
    if (our_zip.read(name) != their_zip.read(name))
      return ::testing::AssertionFailure() << "record " << name << " differs";
  }
  for (const auto& [name, entry] : their_zip.entries()) {
    const bool bookkeeping = name.size() >= 9 && (name.rfind("/byteorder") == name.size() - 10 ||
                                                  name.find("/.data/") != std::string::npos);
    if (our_zip.entries().count(name) == 0 && !bookkeeping)
      return ::testing::AssertionFailure() << "ours lacks LibTorch's record " << name;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

TEST(ReferenceFiles, StreamedFilesAreByteForByteLibTorchs) {
  for (const int epochs : {1, 3, 200, 16500}) {
    SCOPED_TRACE(epochs);
    khsgd_test::TempDir tmp;
    const std::string dir = tmp / "run";
    make_directories(dir);
    const auto [rows, times] = rows_and_times(epochs);
    std::ofstream(time_log_path(dir, 0)) << times;
    for (const std::string sorter : {"D-RR", "CD-GraB"}) {
      ReferenceFiles files(dir, 0, sorter, 20000, 4999);
      files.prepare();
      files.update(true, &rows);
      write_saved_object(tmp / "results.pt", reference_results(rows, 20000, 4999));
      write_saved_object(tmp / "time.pt", reference_times(times, sorter));
      EXPECT_TRUE(same_records(dir + "/results.pt", tmp / "results.pt"));
      EXPECT_TRUE(same_records(dir + "/time/time-0.pt", tmp / "time.pt")) << sorter;
      if (epochs > 3) break;  // the label order is checked on the small files
    }
  }
}

TEST(ReferenceFiles, StreamedEmptyContainersAreLibTorchs) {
  khsgd_test::TempDir tmp;
  const SavedSource source = [](SavedEmitter& out) {
    out.begin_dict();
    out.key("empty list");
    out.begin_list();
    out.end_list();
    out.key("empty dict");
    out.begin_dict();
    out.end_dict();
    out.key("0");
    out.real(-0.5);
    const float big[3] = {1e30f, -2.0f, 0.0f};
    out.key("1");
    out.tensor({3}, big, 3);
    out.key("2d");
    out.tensor({1, 3}, big, 3);
    out.end_dict();
  };
  write_saved_stream(tmp / "streamed.pt", source);
  write_saved_object(tmp / "whole.pt", saved_object_of(source));
  EXPECT_TRUE(same_records(tmp / "streamed.pt", tmp / "whole.pt"));
}

// --save_grads' grads-epochE.pt: one tensor streamed as the file's whole object (the trainer's
// buffer, no copy), as LibTorch's torch.save(tensor) writes it.
TEST(ReferenceFiles, StreamedGradientTensorIsLibTorchs) {
  khsgd_test::TempDir tmp;
  const int64_t rows = 37, D = 21;
  std::vector<float> values(static_cast<size_t>(rows * D));
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = static_cast<float>(i % 13) * 0.25f - 1.5f + 1e-7f * static_cast<float>(i);
  write_saved_stream(tmp / "streamed.pt", [&](SavedEmitter& out) {
    out.tensor({rows, D}, values.data(), values.size());
  });
  write_tensor(tmp / "libtorch.pt", HostTensor{{rows, D}, values, "float32"});
  EXPECT_TRUE(same_records(tmp / "streamed.pt", tmp / "libtorch.pt"));
}
