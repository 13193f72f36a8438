// The loader (pt_reader.cpp, zip_archive.cpp) on the CUDA-saved fixture, on files LibTorch's own
// pickler writes, and on each kind of bad file.
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>

#include "helpers.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/data/data.hpp"
#include "khsgd/data/pt_file.hpp"

using namespace khsgd;
using namespace khsgd_test;

namespace {

HostTensor tensor(std::vector<int64_t> shape, float fill = 0.0f) {
  HostTensor t;
  t.shape = shape;
  const int64_t count =
      std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
  t.values.assign(count, fill);
  return t;
}

// A valid pair of files (6 train, 3 test rows, d = 2) that each test then spoils in one way.
struct Files {
  std::vector<HostTensor> features = {tensor({6, 2}, 0.5f), tensor({3, 2}, -0.5f)};
  std::vector<HostTensor> targets = {tensor({6}, 1.0f), tensor({3}, 0.0f)};
  void write(const TempDir& dir) const {
    write_tensor_tuple(dir / kFeaturesFile, features);
    write_tensor_tuple(dir / kTargetsFile, targets);
  }
};

std::string load_error(const TempDir& dir) {
  try {
    load_hmda(dir.path());
  } catch (const UserError& e) { return e.what(); }
  return "";
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace

TEST(Loader, ReadsTheCudaSavedFixtureOnTheCpu) {
  const Dataset data = load_hmda(test_data("hmda-small-cuda"));
  EXPECT_EQ(data.d, 20);
  EXPECT_EQ(data.n_train, 2000);
  EXPECT_EQ(data.n_test, 500);
  ASSERT_EQ(data.train_x.size(), 2000u * 20);
  ASSERT_EQ(data.test_y.size(), 500u);
  // The fixture's README: positive rate 0.781 over all 2500 rows (1555 train, 398 test).
  const double train_pos = std::accumulate(data.train_y.begin(), data.train_y.end(), 0.0);
  const double test_pos = std::accumulate(data.test_y.begin(), data.test_y.end(), 0.0);
  EXPECT_EQ(train_pos, 1555);
  EXPECT_EQ(test_pos, 398);
  EXPECT_NEAR((train_pos + test_pos) / 2500, 0.781, 0.0005);
  // The test rows are a view into the same storage as the train rows; they must not be mixed up.
  EXPECT_NE(data.train_x[0], data.test_x[0]);
}

TEST(Loader, ReadsTheGoldenData) {
  const Dataset data = load_hmda(test_data("golden/data"));
  EXPECT_EQ(data.n_train, 20011);
  EXPECT_EQ(data.n_test, 4999);
  EXPECT_EQ(data.d, 20);
}

TEST(Loader, WrittenFilesRoundTripAndFloat64IsConverted) {
  TempDir dir;
  Files files;
  files.features[0].values[3] = 1.25f;
  files.features[0].dtype = "float64";
  files.write(dir);
  const Dataset data = load_hmda(dir.path());
  EXPECT_EQ(data.n_train, 6);
  EXPECT_EQ(data.n_test, 3);
  EXPECT_EQ(data.d, 2);
  EXPECT_EQ(data.train_x[3], 1.25f);
  EXPECT_EQ(data.test_x[0], -0.5f);
}

TEST(Loader, MissingFolderOrFile) {
  TempDir dir;
  EXPECT_NE(load_error(dir).find(dir / "features-processed-NY-2017.pt: file not found"),
            std::string::npos);
  Files().write(dir);
  std::remove((dir / kTargetsFile).c_str());
  EXPECT_NE(load_error(dir).find("targets-processed-NY-2017.pt: file not found"),
            std::string::npos);
}

TEST(Loader, NotAZipAndLegacyFormat) {
  TempDir dir;
  Files().write(dir);
  write_bytes(dir / kFeaturesFile, "train_X,test_X\n1,2\n");
  EXPECT_NE(load_error(dir).find("not a torch.save file"), std::string::npos);
  // Pre-1.6 torch.save: a pickle stream starting with protocol 2 and the magic number.
  write_bytes(dir / kFeaturesFile,
              std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15));
  EXPECT_NE(load_error(dir).find("pre-1.6 torch.save file"), std::string::npos);
  write_bytes(dir / kFeaturesFile, "");
  EXPECT_NE(load_error(dir).find("not a torch.save file"), std::string::npos);
  // A zip that is cut short.
  Files().write(dir);
  const std::string whole = read_file(dir / kFeaturesFile);
  write_bytes(dir / kFeaturesFile, whole.substr(0, whole.size() / 2));
  EXPECT_NE(load_error(dir).find("cannot be read as a torch.save file"), std::string::npos);
}

TEST(Loader, WrongTupleLengthRankAndLengths) {
  {
    TempDir dir;
    Files f;
    f.features.push_back(tensor({1, 2}));
    f.write(dir);
    EXPECT_NE(load_error(dir).find("holds a tuple of 3 tensors, expected 2"), std::string::npos);
  }
  {
    TempDir dir;
    Files f;
    f.features[0] = tensor({6, 2, 1});
    f.write(dir);
    EXPECT_NE(load_error(dir).find("train_X has shape [6, 2, 1], expected 2 dimensions"),
              std::string::npos);
  }
  {
    TempDir dir;
    Files f;
    f.targets[1] = tensor({3, 1});
    f.write(dir);
    EXPECT_NE(load_error(dir).find("test_y has shape [3, 1], expected 1 dimension"),
              std::string::npos);
  }
  {
    TempDir dir;
    Files f;
    f.targets[0] = tensor({5}, 1.0f);
    f.write(dir);
    EXPECT_NE(load_error(dir).find("train_y has 5 labels but"), std::string::npos);
  }
  {
    TempDir dir;
    Files f;
    f.features[1] = tensor({3, 3});
    f.write(dir);
    EXPECT_NE(load_error(dir).find("test_X has 3 features but train_X has 2"), std::string::npos);
  }
}

TEST(Loader, NonFiniteFeaturesAndBadLabels) {
  {
    TempDir dir;
    Files f;
    f.features[0].values[7] = std::numeric_limits<float>::quiet_NaN();
    f.write(dir);
    EXPECT_NE(load_error(dir).find("train_X holds a non-finite value (nan) at row 3"),
              std::string::npos);
  }
  {
    TempDir dir;
    Files f;
    f.features[1].values[0] = std::numeric_limits<float>::infinity();
    f.write(dir);
    EXPECT_NE(load_error(dir).find("test_X holds a non-finite value (inf) at row 0"),
              std::string::npos);
  }
  {
    TempDir dir;
    Files f;
    f.targets[0].values[4] = 2.0f;
    f.write(dir);
    EXPECT_NE(load_error(dir).find("train_y[4] = 2, expected labels in {0, 1}"), std::string::npos);
  }
}
