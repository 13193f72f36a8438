#include "khsgd/trainer.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <memory>
#include <fstream>
#include <optional>

#include "khsgd/checkpoint.hpp"
#include "khsgd/comm.hpp"
#include "khsgd/data.hpp"
#include "khsgd/engine.hpp"
#include "khsgd/errors.hpp"
#include "khsgd/hash.hpp"
#include "khsgd/progress.hpp"
#include "khsgd/pt_file.hpp"
#include "khsgd/results.hpp"
#include "khsgd/sorters.hpp"
#include "khsgd/torch_ops.hpp"

namespace khsgd {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool build_has_cuda_engine() {
#ifdef KHSGD_WITH_CUDA
  return true;
#else
  return false;
#endif
}

Device resolve_device(const std::string& requested) {
  if (requested == "cpu") return Device::Cpu;
  if (requested == "auto") return build_has_cuda_engine() && cuda_available() ? Device::Cuda : Device::Cpu;
  if (!build_has_cuda_engine())
    throw UserError("--device cuda: this build has no CUDA support (LibTorch " + torch_version() +
                    " without CUDA); use --device cpu, or rebuild against a CUDA LibTorch");
  if (!cuda_available()) throw UserError("--device cuda: no CUDA device is visible to this process");
  return Device::Cuda;
}

std::string resolve_backend(const std::string& requested, Device device, const Launch& launch) {
  const std::string backend =
      requested == "auto" ? (device == Device::Cuda ? "nccl" : "gloo") : requested;
  if (backend == "nccl" && device != Device::Cuda)
    throw UserError("--backend nccl moves GPU memory and needs --device cuda; use --backend gloo "
                    "for CPU training");
  // NCCL refuses two ranks on one GPU; say so before anyone waits for it.
  const int gpus = device == Device::Cuda ? cuda_device_count() : 0;
  if (backend == "nccl" && launch.world_size > 1 &&
      std::max(launch.local_world_size, launch.local_rank + 1) > gpus)
    throw UserError("--backend nccl needs one GPU per rank, but this machine runs " +
                    std::to_string(std::max(launch.local_world_size, launch.local_rank + 1)) +
                    " ranks on " + std::to_string(gpus) +
                    " GPU(s); use --backend gloo to run several ranks per GPU");
  return backend;
}

// The reference's dev_id: one GPU per local rank, ranks sharing GPUs round-robin.
int cuda_index_for(const Launch& launch, Device device) {
  if (device != Device::Cuda) return 0;
  const int gpus = cuda_device_count();
  return gpus > 0 ? launch.local_rank % gpus : 0;
}

// What must be equal on every rank: the flags that shape the run and the data.
struct Fingerprint {
  uint64_t value = kFnvOffset;
  void add(const void* bytes, size_t size) { value = fnv1a64(bytes, size, value); }
  void add(const std::string& text) { add(text.data(), text.size() + 1); }
  template <typename T>
  void add_value(T v) { add(&v, sizeof v); }
  void add_floats(const std::vector<float>& values) { add(values.data(), values.size() * sizeof(float)); }
};

int64_t run_fingerprint(const Config& c, const Dataset& data) {
  Fingerprint f;
  for (const std::string* s : {&c.sorter, &c.backend, &c.exp, &c.device, &c.dataset})
    f.add(*s);
  for (int64_t v : {c.seed, c.B, c.epochs, c.node_cnt, static_cast<int64_t>(c.save_orders),
                    c.synthetic_rows})
    f.add_value(v);
  f.add_value(c.lr);
  f.add_value(c.momentum);
  f.add_value(data.d);
  f.add_value(data.n_train);
  f.add_value(data.n_test);
  f.add_floats(data.train_x);
  f.add_floats(data.train_y);
  f.add_floats(data.test_x);
  f.add_floats(data.test_y);
  return static_cast<int64_t>(f.value >> 1);  // non-negative
}

// Every rank says whether it can go on (and what it failed at); all stop together if one can't.
void agree(Communicator& comm, const std::string& own_failure, const char* stage) {
  const std::vector<int64_t> all = comm.all_gather_value(own_failure.empty() ? 0 : 1);
  if (!own_failure.empty()) throw UserError(own_failure);
  for (int r = 0; r < comm.size(); ++r)
    if (all[r] != 0)
      throw UserError("rank " + std::to_string(r) + " could not " + stage +
                      " (its error is printed above); stopping");
}

// Every rank reports whether it is ready (and with what flags and data) before anyone trains, so
// that a rank that failed to start stops the others with a clear message instead of a hang.
void agree_to_start(Communicator& comm, const std::string& own_failure, int64_t fingerprint) {
  agree(comm, own_failure, "start");
  const std::vector<int64_t> all = comm.all_gather_value(fingerprint);
  for (int r = 0; r < comm.size(); ++r) {
    if (all[r] != all[0])
      throw UserError("rank " + std::to_string(r) +
                      " was started with different flags or different data than rank 0; every "
                      "rank must get the same flags and the same data files");
  }
}

std::string host_name() {
  char name[256] = {0};
  gethostname(name, sizeof name - 1);
  return name;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports KiB
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

std::string epoch_list_text(const std::vector<int64_t>& epochs) {
  std::string text;
  for (int64_t e : epochs) text += (text.empty() ? "" : ",") + std::to_string(e);
  return text;
}

std::string time_line(int64_t epoch, const EpochTimes& t, double train_seconds) {
  char line[256];
  std::snprintf(line, sizeof line, "%lld,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%d",
                static_cast<long long>(epoch), t.sorter, t.communication, t.dataset,
                t.forward_backward, t.sgd, train_seconds, t.estimated ? 1 : 0);
  return line;
}

constexpr const char* kTimeHeader =
    "epoch,sorter,communication,dataset,forward_backward,sgd,train_seconds,estimated";

// The checks that decide, on rank 0, whether this run may write into its folder.
std::string check_run_folder(const Config& config, const std::string& dir) {
  const RunFolderState state = inspect_run_folder(dir);
  if (config.overwrite || !state.exists || !state.has_results) return "";
  if (state.finished)
    return "'" + dir + "' already holds a finished run; use --overwrite to replace it (or another "
           "--results_dir / --exp to keep both)";
  if (!config.resume)
    return "'" + dir + "' holds an unfinished run; use --resume to continue it from its last "
           "checkpoint or --overwrite to start over";
  if (!state.has_checkpoint)
    return "'" + dir + "' holds an unfinished run but no checkpoint to resume from; use "
           "--overwrite to start over";
  return "";
}

std::string checkpoint_path(const std::string& dir, int rank) {
  return dir + "/checkpoint-rank" + std::to_string(rank) + ".bin";
}

// Test hook for fault injection: KHSGD_STOP_AFTER_EPOCH=N ends the process abruptly (as a kill
// would) right after epoch N's results and checkpoint are written.
int64_t stop_after_epoch() {
  const char* value = std::getenv("KHSGD_STOP_AFTER_EPOCH");
  return value ? std::atoll(value) : 0;
}

std::string config_json(const Config& c, const Launch& launch, Device device,
                        const std::string& backend, const Dataset& data, const Partition& p) {
  auto str = [](const std::string& s) { return json_string(s); };
  auto num = [](auto v) { return std::to_string(v); };
  auto real = [](double v) {
    char text[40];
    std::snprintf(text, sizeof text, "%.17g", v);
    return std::string(text);
  };
  return json_object({
      {"sorter", str(c.sorter)},
      {"seed", num(c.seed)},
      {"lr", real(c.lr)},
      {"B", num(c.B)},
      {"momentum", real(c.momentum)},
      {"epochs", num(c.epochs)},
      {"node_cnt", num(c.node_cnt)},
      {"backend", str(backend)},
      {"exp", str(c.exp)},
      {"device", str(device_name(device))},
      {"dataset", str(c.dataset)},
      {"data_dir", str(c.data_dir)},
      {"results_dir", str(c.results_dir)},
      {"save_orders", c.save_orders ? "true" : "false"},
      {"save_grads", str(epoch_list_text(c.save_grads))},
      {"synthetic_rows", num(c.synthetic_rows)},
      {"profile", c.profile ? "true" : "false"},
      {"world_size", num(launch.world_size)},
      {"launcher", str(launch.launcher)},
      {"master", str(launch.master_addr + ":" + std::to_string(launch.master_port))},
      {"host", str(host_name())},
      {"data_source", str(data.source)},
      {"train_rows", num(data.n_train)},
      {"test_rows", num(data.n_test)},
      {"features", num(data.d)},
      {"used_train_rows", num(p.used_rows)},
      {"shard_rows", num(p.shard_rows)},
      {"microbatch", num(p.microbatch)},
      {"steps_per_epoch", num(p.num_batches)},
      {"libtorch", str(torch_version())},
      {"started_utc", str(utc_now())},
  });
}

std::unique_ptr<TrainingEngine> make_engine(const EngineSetup& setup, Device device, int cuda_index) {
#ifdef KHSGD_WITH_CUDA
  if (device == Device::Cuda) return make_cuda_engine(setup, cuda_index);
#endif
  (void)cuda_index;
  if (device != Device::Cpu) throw UserError("--device cuda: this build has no CUDA support");
  return make_cpu_engine(setup);
}

}  // namespace

std::string build_info() {
  std::string backends;
  for (const auto& b : available_backends()) backends += (backends.empty() ? "" : ", ") + b;
  return std::string("khsgd_train ") + KHSGD_VERSION + " (LibTorch " + torch_version() +
         "; CUDA engine: " + (build_has_cuda_engine() ? "yes" : "no") +
         "; backends: " + (backends.empty() ? "none" : backends) + ")";
}

void run_training(Config config, const Launch& launch) {
  check_against_world(&config, launch.world_size);
  const Device device = resolve_device(config.device);
  const std::string backend = resolve_backend(config.backend, device, launch);
  const int rank = launch.rank;
  const int cuda_index = cuda_index_for(launch, device);
#ifdef KHSGD_WITH_CUDA
  if (device == Device::Cuda) select_cuda_device(cuda_index);
#endif
  if (rank != 0) spdlog::set_level(spdlog::level::warn);

  // Join the other ranks first: every later failure can then be agreed on instead of leaving the
  // others waiting in their first collective.
  const auto timeout = std::chrono::milliseconds(config.timeout * 1000);
  std::unique_ptr<Communicator> comm =
      needs_process_group(launch.world_size, config.backend)
          ? connect_process_group(launch, backend, cuda_index, timeout)
          : make_solo_communicator();

  Dataset data;
  std::string failure;
  const std::string dir = run_directory(config);
  try {
    if (config.dataset == "synthetic")
      data = config.synthetic_rows ? make_synthetic(config.synthetic_rows, config.synthetic_rows / 4)
                                   : make_synthetic();
    else
      data = load_hmda(config.data_dir);
    if (rank == 0) failure = check_run_folder(config, dir);
  } catch (const UserError& e) {
    failure = e.what();
  }
  const int64_t fingerprint = failure.empty() ? run_fingerprint(config, data) : 0;
  agree_to_start(*comm, failure, fingerprint);
  const Partition part = plan_partition(data.n_train, config.B, launch.world_size);

  // SPEC's order of random draws: seed, Linear init on the CPU generator, sorter tables on the
  // training device's generator, then each epoch's sort(). A resumed run rebuilds the same and
  // then restores what changed since from its checkpoint.
  seed_generators(static_cast<uint64_t>(config.seed));
  EngineSetup setup;
  setup.data = &data;
  setup.partition = part;
  setup.rank = rank;
  setup.theta = init_linear_parameters(data.d);
  setup.lr = config.lr;
  setup.momentum = config.momentum;
  std::unique_ptr<DeviceOps> ops = make_torch_ops(device, cuda_index);
  SorterShape shape;
  shape.ranks = part.ranks;
  shape.shard_rows = part.shard_rows;
  shape.microbatch = part.microbatch;
  shape.D = data.d + 1;
  shape.epochs = config.epochs;
  shape.rank = rank;
  shape.device = device;
  std::unique_ptr<Sorter> sorter = make_sorter(config.sorter, shape, *ops);
  std::unique_ptr<TrainingEngine> engine = make_engine(setup, device, cuda_index);

  // Resume: every rank restores from its own checkpoint (ranks on other hosts keep their own).
  const bool resuming = config.resume && comm->all_gather_value(
      rank == 0 ? inspect_run_folder(dir).has_checkpoint : 0)[0] != 0;
  int64_t done = 0;
  std::string earlier_metrics;
  try {
    if (resuming) {
      const Checkpoint c = read_checkpoint(checkpoint_path(dir, rank));
      if (c.fingerprint != fingerprint || c.rank != rank || c.world_size != launch.world_size)
        throw UserError(checkpoint_path(dir, rank) +
                        ": written by a run with other flags, other data or other ranks; use "
                        "--overwrite to start over");
      StateReader sorter_state(c.sorter_state, checkpoint_path(dir, rank));
      sorter->load_state(sorter_state);
      engine->restore(c.theta, c.velocity);
      set_generator_state(Device::Cpu, 0, c.cpu_generator);
      if (device == Device::Cuda) set_generator_state(Device::Cuda, cuda_index, c.cuda_generator);
      done = c.epoch;
      earlier_metrics = c.metrics_rows;
    }
  } catch (const UserError& e) {
    failure = e.what();
  } catch (const std::exception& e) {  // a generator state LibTorch refuses
    failure = checkpoint_path(dir, rank) + ": cannot be restored (" + e.what() +
              "); use --overwrite to start over";
  }
  agree(*comm, failure, "restore its checkpoint");

  std::optional<MetricsLog> metrics;
  try {
    if (rank == 0) {
      if (config.overwrite) remove_run_files(dir);
      make_directories(dir);
      if (!resuming)
        write_file_atomically(dir + "/config.json",
                              config_json(config, launch, device, backend, data, part));
      metrics.emplace(dir + "/metrics.csv", earlier_metrics);
    }
  } catch (const UserError& e) {
    failure = e.what();
  }
  agree(*comm, failure, "prepare its results folder");
  // Rank 0 has made the folder; ranks on other hosts make their own copy of it.
  std::optional<LineLog> orders, time_log;
  try {
    if (rank != 0) make_directories(dir);
    if (config.save_orders)
      orders.emplace(dir + "/orders-rank" + std::to_string(rank) + ".csv", "", resuming ? done : -1);
    time_log.emplace(dir + "/time-rank" + std::to_string(rank) + ".csv", kTimeHeader,
                     resuming ? done + 1 : -1);
  } catch (const UserError& e) {
    failure = e.what();
  }
  agree(*comm, failure, "prepare its results folder");

  Progress progress(rank == 0 && !config.quiet, stderr, part.used_rows, part.num_batches,
                    config.epochs);
  std::vector<float> captured;
  if (!config.save_grads.empty()) captured.resize(part.used_rows * (data.d + 1));
  spdlog::info("{} on {} ({} rank(s), {}), {} train / {} test rows, {} steps of B={} per epoch",
               config.sorter, device_name(device), launch.world_size, backend, data.n_train,
               data.n_test, part.num_batches, config.B);
  spdlog::info("{} {}", resuming ? "resuming after epoch " + std::to_string(done) + " in" : "writing",
               dir);

  const auto run_start = Clock::now();
  std::vector<double> train_times, eval_times;
  const int64_t stop_after = stop_after_epoch();
  for (int64_t epoch = done + 1; epoch <= config.epochs; ++epoch) {
    const auto start = Clock::now();
    comm->set_progress(epoch);
    progress.start_epoch(epoch);
    const std::vector<int64_t>& order = sorter->sort();
    const double sort_seconds = seconds_since(start);
    EpochHooks hooks;
    hooks.observer = progress.mode() == Progress::Mode::Off ? nullptr : &progress;
    hooks.profile = config.profile;
    const bool save_grads = std::binary_search(config.save_grads.begin(), config.save_grads.end(), epoch);
    hooks.capture = save_grads ? captured.data() : nullptr;
    EpochTimes times = engine->train_epoch(order, *sorter, *comm, hooks);
    const double train_seconds = seconds_since(start);
    times.sorter += sort_seconds;
    time_log->append(time_line(epoch, times, train_seconds));
    if (orders) orders->append(order_line(order));
    if (rank == 0) {
      if (save_grads) {
        HostTensor grads;
        grads.shape = {part.used_rows, data.d + 1};
        grads.values = captured;
        write_tensor(dir + "/grads-epoch" + std::to_string(epoch) + ".pt", grads);
      }
      const auto eval_start = Clock::now();
      EpochRecord record;
      record.epoch = epoch;
      std::tie(record.train, record.test) = engine->evaluate();
      record.eval_seconds = seconds_since(eval_start);
      record.train_seconds = train_seconds;
      metrics->append(record);
      train_times.push_back(train_seconds);
      eval_times.push_back(record.eval_seconds);
      progress.end_epoch(record.train.loss);
      char line[256];
      std::snprintf(line, sizeof line,
                    "Epoch %lld | full train loss %.6f | test acc %.3f%% | train %.3f s | eval %.3f s",
                    static_cast<long long>(epoch), record.train.loss, 100 * record.test.accuracy,
                    train_seconds, record.eval_seconds);
      progress.print_line(line);
    }
    if (config.checkpoint_every > 0 && epoch % config.checkpoint_every == 0 && epoch < config.epochs) {
      Checkpoint c;
      c.epoch = epoch;
      c.fingerprint = fingerprint;
      c.rank = rank;
      c.world_size = launch.world_size;
      c.theta = engine->parameters();
      c.velocity = engine->velocity();
      StateWriter sorter_state;
      sorter->save_state(sorter_state);
      c.sorter_state = sorter_state.data();
      c.cpu_generator = generator_state(Device::Cpu);
      if (device == Device::Cuda) c.cuda_generator = generator_state(Device::Cuda, cuda_index);
      if (rank == 0) c.metrics_rows = metrics->rows();
      write_checkpoint(checkpoint_path(dir, rank), c);
    }
    if (epoch == stop_after) {
      std::fflush(nullptr);
      std::_Exit(9);
    }
  }
  progress.finish();
  comm->barrier();
  if (rank == 0) {
    // Written last: its presence marks a finished run.
    auto real = [](double v) {
      char text[40];
      std::snprintf(text, sizeof text, "%.6f", v);
      return std::string(text);
    };
    std::vector<std::pair<std::string, std::string>> summary = {
        {"finished", "true"},
        {"epochs", std::to_string(config.epochs)},
        {"resumed_after_epoch", std::to_string(done)},
        {"median_train_seconds", real(median(train_times))},
        {"median_eval_seconds", real(median(eval_times))},
        {"wall_seconds", real(seconds_since(run_start))},
        {"peak_rss_mib", real(peak_rss_mib())}};
#ifdef KHSGD_WITH_CUDA
    if (device == Device::Cuda) summary.emplace_back("peak_gpu_mib", real(peak_cuda_mib()));
#endif
    write_file_atomically(dir + "/summary.json", json_object(summary));
  }
  std::remove(checkpoint_path(dir, rank).c_str());  // a finished run needs none
}

}  // namespace khsgd
