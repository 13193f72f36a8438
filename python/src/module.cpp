// khsgd._khsgd: the sorters library (khsgd_sorters.hpp) for Python, through pybind11 alone.
//
// No LibTorch here: tensors are read through their Python attributes (shape, dtype, device,
// data_ptr), and the random draws come from a Python object (khsgd.TorchDraws: torch's own
// generators), so one build serves any PyTorch. The GIL is released while a sorter works; the
// draws take it back for their calls into Python.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "khsgd/khsgd_sorters.hpp"

namespace py = pybind11;

namespace {

// A CPU tensor's `count` elements of torch dtype `dtype`, copied (the caller holds the GIL).
template <typename T>
std::vector<T> tensor_values(const py::object& tensor, const char* what, const char* dtype,
                             int64_t expected_count) {
  const std::string where = std::string("khsgd: draws.") + what;
  if (!py::hasattr(tensor, "data_ptr") || !py::hasattr(tensor, "device") ||
      !py::hasattr(tensor, "dtype")) {
    throw py::type_error(where + " must return a torch.Tensor, got " +
                         std::string(py::str(py::type::of(tensor))));
  }
  const std::string device = py::str(tensor.attr("device").attr("type"));
  if (device != "cpu") {
    throw py::value_error(where + " returned a tensor on device " + device + ", expected cpu");
  }
  const std::string got_dtype = py::str(tensor.attr("dtype"));
  if (got_dtype != dtype) {
    throw py::type_error(where + " returned " + got_dtype + ", expected " + dtype);
  }
  const py::object t = tensor.attr("contiguous")();
  const auto count = t.attr("numel")().cast<int64_t>();
  if (count != expected_count) {
    throw py::value_error(where + " returned " + std::to_string(count) + " values, expected " +
                          std::to_string(expected_count));
  }
  const auto size = t.attr("element_size")().cast<int64_t>();
  if (size != static_cast<int64_t>(sizeof(T))) {
    throw py::type_error(where + " returned elements of " + std::to_string(size) +
                         " bytes, expected " + std::to_string(sizeof(T)));
  }
  std::vector<T> values(static_cast<size_t>(count));
  if (count > 0) {
    const auto address = t.attr("data_ptr")().cast<uintptr_t>();
    // torch gives a tensor's address as an integer (data_ptr())
    const void* data = reinterpret_cast<const void*>(address);  // NOLINT(performance-no-int-to-ptr)
    std::memcpy(values.data(), data, values.size() * sizeof(T));
  }
  return values;
}

// DeviceOps calling a Python object with randperm(m), uniform(count, a, b) and
// log_of_multiples(c, count), each returning a CPU tensor (int64, float32, float32).
class PythonDraws final : public khsgd::DeviceOps {
 public:
  explicit PythonDraws(py::object draws) : draws_(std::move(draws)) {}
  ~PythonDraws() override {
    try {
      py::gil_scoped_acquire gil;
      draws_ = py::object();
    } catch (...) {  // the interpreter is going away: nothing to release into
    }
  }
  PythonDraws(const PythonDraws&) = delete;
  PythonDraws& operator=(const PythonDraws&) = delete;

  std::vector<int64_t> randperm(int64_t m) override {
    py::gil_scoped_acquire gil;
    return tensor_values<int64_t>(draws_.attr("randperm")(m), "randperm", "torch.int64", m);
  }
  std::vector<float> uniform(int64_t count, double from, double to) override {
    py::gil_scoped_acquire gil;
    return tensor_values<float>(draws_.attr("uniform")(count, from, to), "uniform", "torch.float32",
                                count);
  }
  std::vector<float> log_of_multiples(double constant, int64_t count) override {
    py::gil_scoped_acquire gil;
    return tensor_values<float>(draws_.attr("log_of_multiples")(constant, count),
                                "log_of_multiples", "torch.float32", count);
  }

 private:
  py::object draws_;
};

const char* need_name(khsgd::GradientNeed need) {
  switch (need) {
    case khsgd::GradientNeed::None: return "none";
    case khsgd::GradientNeed::OwnRank: return "own_rank";
    case khsgd::GradientNeed::AllRanks: return "all_ranks";
  }
  return "none";
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) { text += (i ? ", " : "") + std::to_string(shape[i]); }
  return text + "]";
}

constexpr int64_t kMaxElements = int64_t{1} << 40;

// Marks a sorter in use for one call (set and cleared while holding the GIL): the GIL is
// released while a sorter works, and a second thread on the same sorter would race it.
class BusyGuard {
 public:
  explicit BusyGuard(bool& busy) : busy_(busy) {
    if (busy_) {
      throw std::runtime_error(
          "khsgd.Sorter: used from two threads at once (one sorter is not thread-safe)");
    }
    busy_ = true;
  }
  ~BusyGuard() { busy_ = false; }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;

 private:
  bool& busy_;
};

class PySorter {
 public:
  PySorter(const std::string& name, int64_t ranks, int64_t rank, int64_t examples,
           int64_t microbatch, int64_t D, int64_t epochs, py::object draws)
      : name_(name), draws_(std::move(draws)) {
    auto positive = [](int64_t value, const char* what) {
      if (value < 1) {
        throw py::value_error(std::string("khsgd.Sorter: ") + what + " must be at least 1, got " +
                              std::to_string(value));
      }
    };
    positive(ranks, "ranks");
    positive(examples, "examples (per rank)");
    positive(microbatch, "microbatch");
    positive(D, "D");
    positive(epochs, "epochs");
    if (rank < 0 || rank >= ranks) {
      throw py::value_error("khsgd.Sorter: rank must be in 0 .. ranks - 1 = " +
                            std::to_string(ranks - 1) + ", got " + std::to_string(rank));
    }
    // The sorters hold ranks x examples orders, SBW epochs x that thresholds, and a step
    // ranks x microbatch x D gradients: each product must fit (and a sane size) before any of
    // it is computed in int64.
    auto product = [](std::initializer_list<int64_t> factors, const char* what) {
      int64_t total = 1;
      for (const int64_t f : factors) {
        if (__builtin_mul_overflow(total, f, &total) || total > kMaxElements) {
          throw py::value_error(std::string("khsgd.Sorter: ") + what + " is more than 2**40");
        }
      }
    };
    product({ranks, examples}, "ranks * examples");
    product({ranks, examples, epochs}, "ranks * examples * epochs");
    product({ranks, microbatch, D}, "ranks * microbatch * D");
    product({examples, epochs, D}, "examples * epochs * D");
    if (examples % microbatch != 0) {
      throw py::value_error("khsgd.Sorter: examples per rank (" + std::to_string(examples) +
                            ") must be a multiple of microbatch (" + std::to_string(microbatch) +
                            "): every step takes microbatch examples of each rank");
    }
    const khsgd::SorterInfo& info = khsgd::sorter_info(name);  // UserError -> ValueError
    const std::string problem = khsgd::shape_problem(info, microbatch, examples);
    if (!problem.empty()) { throw py::value_error("khsgd.Sorter(" + name + "): " + problem); }
    shape_ = khsgd::sorter_shape(ranks, examples, microbatch, D, epochs, rank);
    ops_ = std::make_unique<PythonDraws>(draws_);
    {
      py::gil_scoped_release release;
      sorter_ = khsgd::make_sorter(name, shape_, *ops_);
    }
    needs_ = sorter_->needs();
  }

  PySorter(const PySorter&) = delete;
  PySorter& operator=(const PySorter&) = delete;
  ~PySorter() {
    try {
      py::gil_scoped_release release;  // ~PythonDraws takes it back
      sorter_.reset();
      ops_.reset();
    } catch (...) {  // the interpreter is going away: nothing to release into
    }
  }

  int64_t steps_per_epoch() const { return shape_.shard_rows / shape_.microbatch; }
  int64_t ranks_fed() const { return needs_ == khsgd::GradientNeed::AllRanks ? shape_.ranks : 1; }

  // This rank's order as raw int64 bytes (the Python layer makes a tensor of them).
  py::bytes sort() {
    const BusyGuard guard(busy_);
    if (sorted_ && step_ != steps_per_epoch()) {
      throw py::value_error("khsgd.Sorter.sort: the epoch had " + std::to_string(step_) + " of " +
                            std::to_string(steps_per_epoch()) +
                            " steps; every step needs its step() before the next sort()");
    }
    if (epoch_ >= shape_.epochs) {
      throw py::value_error("khsgd.Sorter.sort: built for epochs=" + std::to_string(shape_.epochs) +
                            ", this would be epoch " + std::to_string(epoch_ + 1) +
                            " (SBW's and KH-SGD's tables are sized by epochs)");
    }
    const int64_t* order = nullptr;
    {
      py::gil_scoped_release release;
      sorter_->sort();
      order = sorter_->order_of(shape_.rank);
    }
    sorted_ = true;
    step_ = 0;
    ++epoch_;
    return py::bytes(reinterpret_cast<const char*>(order),
                     static_cast<size_t>(shape_.shard_rows) * sizeof(int64_t));
  }

  // Step k's per-example gradients: a float32 CPU tensor (or any buffer of float32),
  // contiguous, [ranks fed, microbatch, D].
  void step(const py::object& G) {
    const BusyGuard guard(busy_);
    if (!sorted_) {
      throw py::value_error("khsgd.Sorter.step: call sort() first (it starts the epoch)");
    }
    if (step_ >= steps_per_epoch()) {
      throw py::value_error("khsgd.Sorter.step: this epoch already had its " +
                            std::to_string(steps_per_epoch()) +
                            " steps (examples / microbatch); call sort() for the next epoch");
    }
    if (G.is_none()) {  // a sorter that needs no gradients: the step is only counted
      if (needs_ != khsgd::GradientNeed::None) {
        throw py::type_error("khsgd.Sorter.step: " + name_ +
                             " needs the step's per-example gradients, got None");
      }
      ++step_;
      return;
    }
    const std::vector<int64_t> expected = {ranks_fed(), shape_.microbatch, shape_.D};
    const float* data = nullptr;
    const py::object keep = G;  // G (and its storage) stays alive while the GIL is released
    py::buffer_info info;
    if (py::hasattr(G, "data_ptr") && py::hasattr(G, "dtype") && py::hasattr(G, "device")) {
      const std::string dtype = py::str(G.attr("dtype"));
      if (dtype != "torch.float32") {
        throw py::type_error("khsgd.Sorter.step: G must be float32, got " + dtype);
      }
      const std::string device = py::str(G.attr("device").attr("type"));
      if (device != "cpu") {
        throw py::value_error("khsgd.Sorter.step: G must be on the CPU, got device " +
                              std::string(py::str(G.attr("device"))));
      }
      check_shape(G.attr("shape").cast<std::vector<int64_t>>(), expected);
      if (!G.attr("is_contiguous")().cast<bool>()) {
        throw py::value_error("khsgd.Sorter.step: G must be contiguous (call .contiguous())");
      }
      // torch gives a tensor's address as an integer (data_ptr())
      data = reinterpret_cast<const float*>(  // NOLINT(performance-no-int-to-ptr)
          G.attr("data_ptr")().cast<uintptr_t>());
    } else if (py::isinstance<py::buffer>(G)) {
      info = py::reinterpret_borrow<py::buffer>(G).request();
      if (info.format != py::format_descriptor<float>::format() || info.itemsize != 4) {
        throw py::type_error("khsgd.Sorter.step: G must hold float32, got buffer format '" +
                             info.format + "'");
      }
      std::vector<int64_t> shape(info.shape.begin(), info.shape.end());
      check_shape(shape, expected);
      int64_t stride = info.itemsize;
      for (size_t i = info.ndim; i-- > 0;) {
        if (info.shape[i] > 1 && info.strides[i] != stride) {
          throw py::value_error("khsgd.Sorter.step: G must be C-contiguous");
        }
        stride *= info.shape[i];
      }
      data = static_cast<const float*>(info.ptr);
    } else {
      throw py::type_error(
          "khsgd.Sorter.step: G must be a torch.Tensor (float32, CPU) or a float32 buffer, got " +
          std::string(py::str(py::type::of(G))));
    }
    if (needs_ != khsgd::GradientNeed::None) {
      py::gil_scoped_release release;
      sorter_->step(data, step_);
    }
    ++step_;
  }

  // The epoch count, then the sorter's own state.
  py::bytes state() const {
    if (sorted_ && step_ != steps_per_epoch()) {
      throw py::value_error("khsgd.Sorter.state_dict: only between epochs (after the epoch's " +
                            std::to_string(steps_per_epoch()) + " steps), not after " +
                            std::to_string(step_) + " of them");
    }
    khsgd::StateWriter out;
    out.i64(epoch_);
    sorter_->save_state(out);
    return py::bytes(reinterpret_cast<const char*>(out.data().data()), out.data().size());
  }

  void load_state(const py::bytes& bytes, int64_t expected_epoch) {
    const BusyGuard guard(busy_);
    const std::string text = bytes;
    const std::vector<uint8_t> data(text.begin(), text.end());
    khsgd::StateReader in(data, "khsgd.Sorter.load_state_dict",
                          "not a state_dict this sorter saved");
    const int64_t epoch = in.i64();
    if (epoch < 0 || epoch > shape_.epochs) {
      throw py::value_error("khsgd.Sorter.load_state_dict: the state is after epoch " +
                            std::to_string(epoch) +
                            ", this sorter has epochs=" + std::to_string(shape_.epochs));
    }
    if (epoch != expected_epoch) {
      throw py::value_error("khsgd.Sorter.load_state_dict: the state's \"epoch\" is " +
                            std::to_string(expected_epoch) + ", its sorter state is after epoch " +
                            std::to_string(epoch));
    }
    // The sorter refuses a bad state before it changes, but trailing bytes show only after:
    // then it goes back to what it had.
    khsgd::StateWriter before;
    sorter_->save_state(before);
    sorter_->load_state(in);
    if (!in.at_end()) {
      khsgd::StateReader back(before.data(), "khsgd.Sorter.load_state_dict");
      sorter_->load_state(back);
      throw py::value_error("khsgd.Sorter.load_state_dict: the state is longer than " + name_ +
                            "'s for this shape");
    }
    sorted_ = false;
    step_ = 0;
    epoch_ = epoch;
  }

  const std::string& name() const { return name_; }
  const khsgd::SorterShape& shape() const { return shape_; }
  std::string needs() const { return need_name(needs_); }
  int64_t step_index() const { return step_; }
  int64_t epoch() const { return epoch_; }

 private:
  void check_shape(const std::vector<int64_t>& got, const std::vector<int64_t>& expected) const {
    if (got != expected) {
      throw py::value_error("khsgd.Sorter.step: G must have shape [ranks fed, microbatch, D] = " +
                            shape_text(expected) + " for " + name_ + ", got " + shape_text(got));
    }
  }

  std::string name_;
  py::object draws_;
  khsgd::SorterShape shape_;
  std::unique_ptr<PythonDraws> ops_;
  std::unique_ptr<khsgd::Sorter> sorter_;
  khsgd::GradientNeed needs_ = khsgd::GradientNeed::None;
  bool sorted_ = false;
  int64_t step_ = 0;
  int64_t epoch_ = 0;  // sort() calls so far
  bool busy_ = false;
};

}  // namespace

PYBIND11_MODULE(_khsgd, m) {
  m.doc() = "The khsgd sorters (C++), fed per-example gradients from any PyTorch training loop";
  // pybind11's translator type takes the exception_ptr by value
  py::register_exception_translator(
      [](std::exception_ptr p) {  // NOLINT(performance-unnecessary-value-param)
        try {
          if (p) std::rethrow_exception(p);
        } catch (const khsgd::UserError& e) { PyErr_SetString(PyExc_ValueError, e.what()); }
      });
  m.def("sorter_names", &khsgd::sorter_names, "Every registered sorter's name");
  m.def(
      "sorter_info",
      [](const std::string& name) {
        const khsgd::SorterInfo& info = khsgd::sorter_info(name);
        py::dict d;
        d["name"] = info.name;
        d["description"] = info.description;
        d["paper"] = info.paper;
        d["needs"] = need_name(info.needs);
        d["even_microbatch"] = info.even_microbatch;
        return d;
      },
      py::arg("name"));
  py::class_<PySorter>(m, "Sorter")
      .def(py::init<const std::string&, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                    py::object>(),
           py::arg("name"), py::arg("ranks"), py::arg("rank"), py::arg("examples"),
           py::arg("microbatch"), py::arg("D"), py::arg("epochs"), py::arg("draws"))
      .def("sort", &PySorter::sort)
      .def("step", &PySorter::step, py::arg("G").none(true))
      .def("state", &PySorter::state)
      .def("load_state", &PySorter::load_state, py::arg("state"), py::arg("epoch"))
      .def_property_readonly("name", &PySorter::name)
      .def_property_readonly("needs", &PySorter::needs)
      .def_property_readonly("ranks_fed", &PySorter::ranks_fed)
      .def_property_readonly("steps_per_epoch", &PySorter::steps_per_epoch)
      .def_property_readonly("step_index", &PySorter::step_index)
      .def_property_readonly("epoch", &PySorter::epoch);
}
