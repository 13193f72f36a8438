// A whole run, in the phases a reader can follow (Run::execute): join the other ranks and agree
// on the flags and the data, build model, sorter and engine, restore a checkpoint, open the
// outputs, train epoch by epoch (train, record, checkpoint), finish. Each phase that can fail on
// one rank ends in an agreement (agreement.hpp), so that all ranks go on or stop together.
#include "khsgd/run/trainer.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>

#include "khsgd/base/errors.hpp"
#include "khsgd/comm/backends.hpp"
#include "khsgd/comm/comm.hpp"
#include "khsgd/data/data.hpp"
#include "khsgd/data/pt_stream.hpp"
#include "khsgd/data/reference_files.hpp"
#include "khsgd/engine/engine.hpp"
#include "khsgd/run/agreement.hpp"
#include "khsgd/run/checkpoint.hpp"
#include "khsgd/run/progress.hpp"
#include "khsgd/run/results.hpp"
#include "khsgd/run/run_limits.hpp"
#include "khsgd/run/run_lock.hpp"
#include "khsgd/run/stop_signal.hpp"
#include "khsgd/sorting/sorter_registry.hpp"
#include "khsgd/torch/cpu_generator.hpp"
#include "khsgd/torch/libtorch_log.hpp"
#include "khsgd/torch/torch_ops.hpp"

namespace khsgd {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double clock_seconds() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

bool build_has_cuda_engine() {
#ifdef KHSGD_WITH_CUDA
  return true;
#else
  return false;
#endif
}

// --device for `sorter`: auto takes the GPU where this build, this machine and the sorter have
// one.
Device resolve_device(const std::string& requested, const SorterInfo& sorter) {
  if (requested == "cpu") return Device::Cpu;
  if (requested == "auto")
    return build_has_cuda_engine() && sorter.cuda != nullptr && cuda_available() ? Device::Cuda
                                                                                 : Device::Cpu;
  if (sorter.cuda == nullptr)
    throw UserError("--sorter " + std::string(sorter.name) +
                    " runs on the CPU only; use --device cpu (--device auto picks it)");
  if (!build_has_cuda_engine())
    throw UserError("--device cuda: this build has no CUDA support (LibTorch " + torch_version() +
                    " without CUDA); use --device cpu, or rebuild against a CUDA LibTorch");
  if (!cuda_available())
    throw UserError("--device cuda: no CUDA device is visible to this process");
  return Device::Cuda;
}

// The reference's dev_id: one GPU per local rank, ranks sharing GPUs round-robin.
int cuda_index_for(const Launch& launch, Device device) {
  if (device != Device::Cuda) return 0;
  const int gpus = cuda_device_count();
  return gpus > 0 ? launch.local_rank % gpus : 0;
}

std::unique_ptr<TrainingEngine> make_engine(const EngineSetup& setup, Device device,
                                            int cuda_index) {
#ifdef KHSGD_WITH_CUDA
  if (device == Device::Cuda) return make_cuda_engine(setup, cuda_index);
#endif
  (void)cuda_index;
  if (device != Device::Cpu) throw UserError("--device cuda: this build has no CUDA support");
  return make_cpu_engine(setup);
}

// One line on stderr that the run goes on despite: "khsgd_train [rank R]: warning: MESSAGE".
void warn(int rank, const std::string& message) {
  std::fputs(error_line(rank, "warning", message).c_str(), stderr);
}

// Test hook for fault injection: KHSGD_STOP_AFTER_EPOCH=N ends the process abruptly (as a kill
// would) right after epoch N's results (and its checkpoint, when one was due) are written.
int64_t stop_after_epoch() {
  const char* value = std::getenv("KHSGD_STOP_AFTER_EPOCH");
  return value ? std::atoll(value) : 0;
}

class Run {
 public:
  Run(Config config, const Launch& launch) : config_(std::move(config)), launch_(launch) {}

  void execute() {
    join();
    load_and_agree();
    lock_folder();
    build();
    restore();
    open_outputs();
    train();
    finish();
  }

 private:
  // Flags against the launch, device and backend; then join the other ranks first, so that every
  // later failure can be agreed on instead of leaving the others waiting in their first collective.
  void join() {
    check_against_world(&config_, launch_.world_size);
    threads_ = rank_threads(launch_);
    // --in_process: one process, the CPU engine, no backend; it writes every worker's rank files.
    device_ = config_.in_process ? Device::Cpu
                                 : resolve_device(config_.device, sorter_info(config_.sorter));
    backend_ = config_.in_process
                   ? Backend{"none", false}
                   : resolve_backend(config_.backend, device_, launch_,
                                     device_ == Device::Cuda ? cuda_device_count() : 0);
    rank_ = launch_.rank;
    ranks_here_ = {rank_};
    for (int r = 1; config_.in_process && r < config_.node_cnt; ++r) ranks_here_.push_back(r);
    cuda_index_ = cuda_index_for(launch_, device_);
#ifdef KHSGD_WITH_CUDA
    if (device_ == Device::Cuda) select_cuda_device(cuda_index_);
#endif
    if (rank_ != 0) spdlog::set_level(spdlog::level::warn);
    dir_ = run_directory(config_);
    check_run_needs();
    const auto timeout = std::chrono::milliseconds(config_.timeout * 1000);
    comm_ = open_communicator(launch_, backend_, cuda_index_, timeout);
  }

  // What the run will need from the machine, checked before it makes anything (run_limits.hpp);
  // every rank checks the same, before it joins the others.
  void check_run_needs() const {
    check_path_fits(dir_);
    // Each worker here keeps its time log open, and its order log with --save_orders; then the
    // metrics log, the lock, the standard streams, and room for LibTorch's and the backend's own
    // (sockets to the other ranks).
    const int64_t workers = static_cast<int64_t>(ranks_here_.size());
    const int64_t files = workers * (config_.save_orders ? 2 : 1) + 64 + 2 * launch_.world_size;
    reserve_open_files(files, workers > 1
                                  ? "--in_process with " + std::to_string(workers) + " workers"
                                  : std::string("this run"));
    if (config_.dataset == "synthetic" && config_.synthetic_rows > 0)
      check_memory(synthetic_set_bytes(config_.synthetic_rows),
                   "--synthetic_rows " + std::to_string(config_.synthetic_rows));
  }

  // Every rank loads the data; then all compare every flag and the data, so that a rank started
  // differently stops the run before anything is written.
  void load_and_agree() {
    run_agreed(*comm_, "start", [&] {
      if (config_.dataset == "synthetic")
        data_ = config_.synthetic_rows
                    ? make_synthetic(config_.synthetic_rows, config_.synthetic_rows / 4, threads_)
                    : make_synthetic(kHmdaTrainRows, kHmdaTestRows, threads_);
      else
        data_ = load_hmda(config_.data_dir);
    });
    flags_ = behaviour_flags(config_);
    const uint64_t data_hash = data_fingerprint(data_);
    agree_on_settings(*comm_, flags_, data_hash);
    fingerprint_ = run_fingerprint(flags_, data_hash);
    part_ = plan_partition(data_.n_train, data_.d, config_.B, config_.node_cnt);
    // --save_grads writes an epoch's [N', D] gradients as one torch.save record, which the streamed
    // writer (pt_stream.hpp) keeps under 4 GiB; said here, before anything is written.
    const double grad_bytes = 4.0 * static_cast<double>(part_.used_rows * part_.D);
    if (!config_.save_grads.empty() && grad_bytes >= 4294967295.0)
      throw UserError("--save_grads: an epoch's gradients are " + std::to_string(part_.used_rows) +
                      " x " + std::to_string(part_.D) + " floats, " +
                      std::to_string(static_cast<int64_t>(grad_bytes / (1 << 30))) +
                      " GiB, more than the 4 GiB a torch.save record holds here; use fewer rows");
  }

  // One run per folder (run_lock.hpp): rank 0 locks the folder before it looks into it, then the
  // first rank on every other host locks that host's copy (or finds its own job's lock there).
  // Whoever locks a copy also refuses the entries in it that are not plain files (files.hpp: the
  // folder may have been prepared by someone else), before anything there is read or written.
  void lock_folder() {
    const uint64_t job = static_cast<uint64_t>(
        comm_->all_gather_value(rank_ == 0 ? static_cast<int64_t>(new_job_id()) : 0)[0]);
    run_agreed(*comm_, "lock its results folder", [&] {
      if (rank_ != 0) return;
      lock_ = lock_run_folder(dir_, job);
      check_run_folder_entries(dir_);
      check_run_folder(dir_, config_.resume, config_.overwrite);
    });
    run_agreed(*comm_, "lock its results folder", [&] {
      if (rank_ == 0 || launch_.local_rank != 0) return;
      lock_ = lock_run_folder(dir_, job);
      check_run_folder_entries(dir_);
    });
  }

  // The order of random draws (ALGORITHM.md §5): seed, Linear init on the CPU generator, sorter
  // tables on the training device's generator, then each epoch's sort(). A resumed run rebuilds the
  // same and then restores what changed since from its checkpoint.
  void build() {
    // The CPU's draws come from khsgd's copy of LibTorch's CPU generator (cpu_generator.hpp), the
    // GPU's from LibTorch's CUDA generator.
    default_cpu_generator().manual_seed(static_cast<uint64_t>(config_.seed));
    if (device_ == Device::Cuda) seed_generators(static_cast<uint64_t>(config_.seed));
    EngineSetup setup;
    setup.data = &data_;
    setup.partition = part_;
    setup.rank = rank_;
    setup.in_process = config_.in_process;
    setup.threads = threads_;
    setup.theta = cpu_linear_init(default_cpu_generator(), data_.d);
    setup.lr = config_.lr;
    setup.momentum = config_.momentum;
    ops_ = device_ == Device::Cuda
               ? make_torch_ops(device_, cuda_index_)
               : make_cpu_ops(default_cpu_generator(), &torch_cpu_log_of_multiples);
    SorterShape shape;
    shape.geometry() = part_.geometry();
    shape.epochs = config_.epochs;
    shape.rank = rank_;
    shape.device = device_;
    shape.every_rank_here = config_.in_process;
    sorter_ = make_sorter(config_.sorter, shape, *ops_);
    // With a core to spare, D-RR draws its permutation beside the CPU engine's steps, which wait
    // for the rows they read (not with --profile, which times each part of a step on its own).
    sorter_->draw_beside(device_ == Device::Cpu && threads_ > 1 && !config_.profile);
    engine_ = make_engine(setup, device_, cuda_index_);
  }

  // --resume: every rank restores from its own checkpoint, if rank 0's folder has one. The ranks
  // replace their checkpoints one by one, so they may be one checkpoint apart (a kill or a full
  // disk between two ranks' writes): all restore the latest epoch every rank holds.
  void restore() {
    resuming_ =
        config_.resume &&
        comm_->all_gather_value(rank_ == 0 ? inspect_run_folder(dir_).has_checkpoint : 0)[0] != 0;
    if (config_.resume && !resuming_ && rank_ == 0)
      warn(rank_, "--resume: '" + dir_ + "' holds no run to resume; starting a new one");
    if (!resuming_) return;
    run_agreed(*comm_, "read its checkpoints", [&] { read_checkpoints(); });
    const int64_t epoch =
        common_checkpoint_epoch(comm_->all_gather_value(latest_ ? latest_->epoch : -1),
                                comm_->all_gather_value(previous_ ? previous_->epoch : -1));
    run_agreed(*comm_, "restore its checkpoint", [&] { restore_epoch(epoch); });
    latest_.reset();
    previous_.reset();
  }

  // This rank's latest and previous checkpoints. A damaged one (cut short, corrupt) counts as
  // absent when the other is whole, so that the ranks agree on an epoch without it: a damaged
  // latest one costs the epochs since the previous checkpoint, not the whole run.
  void read_checkpoints() {
    auto read = [&](const std::string& path, std::optional<DamagedCheckpoint>* damage) {
      try {
        return read_own_checkpoint(path);
      } catch (const DamagedCheckpoint& e) {
        damage->emplace(e);
        return std::optional<Checkpoint>();
      }
    };
    latest_ = read(checkpoint_path(dir_, rank_), &latest_damage_);
    previous_ = read(previous_checkpoint_path(dir_, rank_), &previous_damage_);
    if (latest_ || previous_) return;
    if (latest_damage_) throw *latest_damage_;
    if (previous_damage_) throw *previous_damage_;
    throw UserError(checkpoint_path(dir_, rank_) + ": no checkpoint to resume from");
  }

  // Restores the checkpoint of `epoch` (the ranks' common one; -1: none), promoting this rank's
  // previous checkpoint when that is the one.
  void restore_epoch(int64_t epoch) {
    const std::string latest_path = checkpoint_path(dir_, rank_);
    if (epoch < 0 && latest_damage_) throw *latest_damage_;
    if (epoch < 0)
      throw UserError(latest_path +
                      ": the ranks' checkpoints have no epoch in common; use --overwrite to "
                      "start over");
    const bool from_previous = !(latest_ && latest_->epoch == epoch);
    if (latest_damage_)
      warn(rank_, latest_path + ": corrupt checkpoint (" + latest_damage_->why() +
                      "); resuming after epoch " + std::to_string(epoch) +
                      " from the previous checkpoint, which replaces it");
    if (previous_damage_)
      warn(rank_, previous_checkpoint_path(dir_, rank_) + ": corrupt checkpoint (" +
                      previous_damage_->why() + "); not needed, resuming after epoch " +
                      std::to_string(epoch) + " from the latest checkpoint");
    const Checkpoint& c = from_previous ? *previous_ : *latest_;
    const std::string path = from_previous ? previous_checkpoint_path(dir_, rank_) : latest_path;
    try {
      StateReader sorter_state(c.sorter_state, path);
      sorter_->load_state(sorter_state);
      engine_->restore(c.theta, c.velocity);
      default_cpu_generator().set_state(c.cpu_generator);
      if (device_ == Device::Cuda) set_generator_state(Device::Cuda, cuda_index_, c.cuda_generator);
    } catch (const UserError&) {
      throw;
    } catch (const std::exception& e) {  // a generator state the generator refuses
      throw UserError(path + ": cannot be restored (" + e.what() +
                      "); use --overwrite to start over");
    }
    if (from_previous) promote_previous_checkpoint(dir_, rank_);
    done_ = c.epoch;
    earlier_metrics_ = c.metrics_rows;
    summary_.first_nonfinite_epoch = first_nonfinite_epoch(earlier_metrics_);
  }

  // This rank's checkpoint at `path`, checked to belong to this run and rank; none if absent.
  std::optional<Checkpoint> read_own_checkpoint(const std::string& path) const {
    if (!check_regular_entry(path)) return std::nullopt;
    Checkpoint c = read_checkpoint(path);
    if (c.fingerprint != fingerprint_ || c.rank != rank_ || c.world_size != launch_.world_size) {
      const std::string what = checkpoint_difference(c);
      throw UserError(path + ": written by a run with other flags, other data or other ranks" +
                      (what.empty() ? "" : " (" + what + ")") + "; use --overwrite to start over");
    }
    return c;
  }

  // What sets checkpoint `c` apart from this run, as the ranks' agreement names a flag; "" when
  // it cannot tell (a format-1 checkpoint, without the flags' hashes).
  std::string checkpoint_difference(const Checkpoint& c) const {
    if (c.world_size != launch_.world_size)
      return "it is of a run of " + std::to_string(c.world_size) + " rank(s), this one has " +
             std::to_string(launch_.world_size);
    if (c.rank != rank_) return "it is rank " + std::to_string(c.rank) + "'s";
    if (c.flag_hashes.size() != flag_hashes(flags_).size()) return "";
    const std::string flag = first_differing_flag(flags_, c.flag_hashes);
    return flag.empty() ? "the data differs" : flag;
  }

  // Rank 0 makes the folder and the shared files first; then every rank opens its own files
  // (ranks on other hosts make their own copy of the folder).
  void open_outputs() {
    run_agreed(*comm_, "prepare its results folder", [&] {
      if (rank_ != 0) return;
      if (config_.overwrite) remove_run_files(dir_);
      make_directories(dir_, kRunFolderOwnParts);
      // A resume keeps the run's config.json, or writes it again if it was deleted.
      if (!resuming_ || !check_regular_entry(dir_ + "/config.json"))
        write_file_atomically(
            dir_ + "/config.json",
            config_json(config_, launch_, {device_name(device_), backend_.name, torch_version()},
                        data_, part_));
      metrics_.emplace(dir_ + "/metrics.csv", earlier_metrics_);
      if (resuming_) warn_of_passed_grads();
    });
    run_agreed(*comm_, "prepare its results folder", [&] {
      if (rank_ != 0) make_directories(dir_, kRunFolderOwnParts);
      for (const int r : ranks_here_) {
        if (config_.save_orders)
          orders_.emplace_back(dir_ + "/orders-rank" + std::to_string(r) + ".csv", "",
                               resuming_ ? done_ : -1);
        time_logs_.emplace_back(time_log_path(dir_, r),
                                resuming_ ? resumed_time_text(r) : std::string(kTimeHeader) + "\n");
        references_.emplace_back(dir_, r, config_.sorter, part_.used_rows, data_.n_test);
        references_.back().prepare();
      }
    });
    progress_.emplace(rank_ == 0 && !config_.quiet, stderr, part_.used_rows, part_.num_batches,
                      config_.epochs);
    if (!config_.save_grads.empty()) captured_.resize(part_.used_rows * part_.D);
    const std::string workers =
        config_.in_process ? std::to_string(config_.node_cnt) + " workers in one process"
                           : std::to_string(launch_.world_size) + " rank(s), " + backend_.name;
    spdlog::info("{} on {} ({}), {} train / {} test rows, {} steps of B={} per epoch",
                 config_.sorter, device_name(device_), workers, data_.n_train, data_.n_test,
                 part_.num_batches, config_.B);
    spdlog::info("{} {}",
                 resuming_ ? "resuming after epoch " + std::to_string(done_) + " in" : "writing",
                 dir_);
  }

  // time-rankR.csv's text for a resume: its rows so far, a lost row rebuilt (with nan times) so
  // that a deleted or shortened file does not stop the resume; one warning names those epochs.
  std::string resumed_time_text(int r) const {
    const std::string path = time_log_path(dir_, r);
    std::vector<int64_t> rebuilt;
    std::string text = resumed_time_log(path, done_, &rebuilt);
    if (!rebuilt.empty())
      warn(rank_, "'" + path + "' lacked the times of epoch(s) " + epoch_ranges(rebuilt) +
                      "; their rows are rebuilt with nan times");
    return text;
  }

  // Rank 0 of a resume: the --save_grads epochs finished before it whose gradients are not on disk
  // are not trained again, so not saved; one line says so rather than skip them silently.
  void warn_of_passed_grads() const {
    std::vector<int64_t> passed;
    for (const int64_t epoch : config_.save_grads)
      if (epoch <= done_ && !check_regular_entry(grads_path(epoch))) passed.push_back(epoch);
    if (!passed.empty())
      warn(rank_, "--save_grads: epoch(s) " + epoch_ranges(passed) +
                      " finished before this resume (after epoch " + std::to_string(done_) +
                      "), so their gradients are not saved; --overwrite runs them again");
  }

  std::string grads_path(int64_t epoch) const {
    return dir_ + "/grads-epoch" + std::to_string(epoch) + ".pt";
  }

  // Epoch by epoch: train and write the results, then one agreement of all ranks decides whether
  // a write failed somewhere, whether to checkpoint (rank 0's schedule) and whether to stop.
  void train() {
    run_start_ = Clock::now();
    CheckpointSchedule schedule(config_.checkpoint_every, config_.checkpoint_seconds,
                                clock_seconds());
    // Before this, SIGTERM/SIGINT/SIGHUP end the process as they always did. Under mpi they stay
    // with mpi_comm.cpp: mpirun sends SIGTERM to end every rank when one fails, and SIGKILL soon
    // after, so there is no clean stop at an epoch's end to be had there.
    if (backend_.name != "mpi") install_stop_handlers();
    const int64_t stop_after = stop_after_epoch();
    for (int64_t epoch = done_ + 1; epoch <= config_.epochs; ++epoch) {
      const bool last = epoch == config_.epochs;  // a signal in the last epoch lets the run finish
      std::string write_failure;
      try {
        const double train_seconds = train_epoch(epoch);
        if (rank_ == 0) record_epoch(epoch, train_seconds);
        update_reference_files(last);
      } catch (const IoError& e) { write_failure = e.what(); }
      const EpochDecision next = agree_after_epoch(*comm_, write_failure, last ? 0 : stop_signal(),
                                                   !last && schedule.due(epoch, clock_seconds()));
      if (next.checkpoint) {
        run_agreed(*comm_, "write its checkpoint", [&] { save_checkpoint(epoch); });
        schedule.written(clock_seconds());
      }
      if (epoch == stop_after) {
        std::fflush(nullptr);
        std::_Exit(9);
      }
      if (next.stop_signal != 0) stop(epoch, next.stop_signal);
    }
    progress_->finish();
  }

  // A clean stop after `epoch`, whose checkpoint is written: the reference's files catch up with
  // the CSVs, and main() exits with 128 + the signal.
  [[noreturn]] void stop(int64_t epoch, int signal) {
    progress_->finish();
    run_agreed(*comm_, "write its results", [&] { update_reference_files(/*last=*/true); });
    throw StopRequested(signal, "stopped by " + signal_name(signal) + " after epoch " +
                                    std::to_string(epoch) + "; --resume continues");
  }

  // results.pt (rank 0) and time/time-R.pt of every rank this process writes for.
  void update_reference_files(bool last) {
    for (size_t i = 0; i < references_.size(); ++i)
      references_[i].update(last, ranks_here_[i] == 0 ? &metrics_->rows() : nullptr);
  }

  // The sorter's order, then the engine's steps; the epoch's times and order go to this rank's
  // files. Returns the epoch's training seconds.
  double train_epoch(int64_t epoch) {
    const auto start = Clock::now();
    comm_->set_progress(epoch);
    progress_->start_epoch(epoch);
    const std::vector<int64_t>& order = sorter_->sort();
    const double sort_seconds = seconds_since(start);
    EpochHooks hooks;
    hooks.observer = progress_->mode() == Progress::Mode::Off ? nullptr : &*progress_;
    hooks.profile = config_.profile;
    const bool save_grads =
        std::binary_search(config_.save_grads.begin(), config_.save_grads.end(), epoch);
    hooks.capture = save_grads ? captured_.data() : nullptr;
    EpochTimes times = engine_->train_epoch(order, *sorter_, *comm_, hooks);
    // The whole order and the generator past its draw, for the order files and the checkpoint.
    sorter_->wait_for_order(part_.shard_rows);
    const double train_seconds = seconds_since(start);
    times.sorter += sort_seconds;
    // In one process the workers' steps are interleaved: each worker's file holds the process's
    // times.
    for (LineLog& log : time_logs_) log.append(time_line(epoch, times, train_seconds));
    for (size_t i = 0; i < orders_.size(); ++i) {
      if (ranks_here_.size() == 1) {
        orders_[i].append(order_line(order));
        continue;
      }
      const int64_t* own = sorter_->order_of(ranks_here_[i]);
      orders_[i].append(order_line(std::vector<int64_t>(own, own + part_.shard_rows)));
    }
    if (save_grads && rank_ == 0) {
      // torch.save(tensor [N', D]), streamed from the buffer (no copy of it).
      write_saved_stream(grads_path(epoch), [this](SavedEmitter& out) {
        out.tensor({part_.used_rows, part_.D}, captured_.data(), captured_.size());
      });
    }
    return train_seconds;
  }

  // Rank 0: evaluate after the epoch's training (not timed as training), append the metrics row,
  // print the epoch's line.
  void record_epoch(int64_t epoch, double train_seconds) {
    const auto eval_start = Clock::now();
    EpochRecord record;
    record.epoch = epoch;
    std::tie(record.train, record.test) = engine_->evaluate();
    record.eval_seconds = seconds_since(eval_start);
    record.train_seconds = train_seconds;
    metrics_->append(record);
    if (summary_.first_nonfinite_epoch == 0 && diverged(record)) report_divergence(record);
    summary_.train_seconds.push_back(train_seconds);
    summary_.eval_seconds.push_back(record.eval_seconds);
    progress_->end_epoch(record.train.loss);
    char line[256];
    std::snprintf(
        line, sizeof line,
        "Epoch %lld | full train loss %.6f | test acc %.3f%% | train %.3f s | eval %.3f s",
        static_cast<long long>(epoch), record.train.loss, 100 * record.test.accuracy, train_seconds,
        record.eval_seconds);
    progress_->print_line(line);
  }

  // Once, at the first epoch whose loss is not finite. The run goes on to its last epoch as the
  // reference does (every epoch's row, a checkpoint to resume); summary.json marks it diverged.
  void report_divergence(const EpochRecord& record) {
    summary_.first_nonfinite_epoch = record.epoch;
    char values[96];
    std::snprintf(values, sizeof values, "full train loss %g, test loss %g", record.train.loss,
                  record.test.loss);
    progress_->print_notice(
        error_line(0, "warning",
                   "training diverged at epoch " + std::to_string(record.epoch) + " (" + values +
                       "; is --lr " + python_float_repr(config_.lr) +
                       " too large?); the run goes on and summary.json marks it \"diverged\""));
  }

  void save_checkpoint(int64_t epoch) {
    sorter_->wait_for_order(part_.shard_rows);  // no draw beside the steps still at the generator
    Checkpoint c;
    c.epoch = epoch;
    c.fingerprint = fingerprint_;
    c.rank = rank_;
    c.world_size = launch_.world_size;
    c.flag_hashes = flag_hashes(flags_);
    c.theta = engine_->parameters();
    c.velocity = engine_->velocity();
    StateWriter sorter_state;
    sorter_->save_state(sorter_state);
    c.sorter_state = sorter_state.data();
    c.cpu_generator = default_cpu_generator().state();
    if (device_ == Device::Cuda) c.cuda_generator = generator_state(Device::Cuda, cuda_index_);
    if (rank_ == 0) c.metrics_rows = metrics_->rows();
    write_next_checkpoint(dir_, rank_, c);
  }

  // Every rank has finished; rank 0 writes summary.json last, since its presence marks a finished
  // run. Only then do the ranks delete their checkpoints (a finished run needs none): a rank 0
  // lost before summary.json leaves a run that --resume can still finish.
  void finish() {
    comm_->barrier();
    if (rank_ == 0) {
      summary_.epochs = config_.epochs;
      summary_.resumed_after_epoch = done_;
      summary_.wall_seconds = seconds_since(run_start_);
#ifdef KHSGD_WITH_CUDA
      if (device_ == Device::Cuda) summary_.peak_gpu_mib = peak_cuda_mib();
#endif
      write_file_atomically(dir_ + "/summary.json", summary_json(summary_));
    }
    comm_->barrier();
    remove_checkpoints(dir_, rank_);
  }

  Config config_;
  const Launch& launch_;

  // join
  Device device_ = Device::Cpu;
  Backend backend_;
  int rank_ = 0;
  std::vector<int> ranks_here_;  // whose rank files this process writes: its own, or every worker's
  // rank_threads(): for the synthetic set, the sorter's walk beside the steps, the evaluation
  int threads_ = 1;
  int cuda_index_ = 0;
  std::string dir_;  // the run folder
  std::unique_ptr<Communicator> comm_;

  // load_and_agree, build
  Dataset data_;
  Partition part_;
  std::vector<FlagSetting> flags_;  // every behaviour flag, as the ranks compared them
  int64_t fingerprint_ = 0;         // the run's identity, which its checkpoints carry
  std::unique_ptr<DeviceOps> ops_;
  std::unique_ptr<Sorter> sorter_;
  std::unique_ptr<TrainingEngine> engine_;

  std::optional<RunLock> lock_;  // this host's copy of the run folder is ours while the run lives

  // restore
  bool resuming_ = false;
  std::optional<Checkpoint> latest_, previous_;  // this rank's, while restoring
  std::optional<DamagedCheckpoint> latest_damage_, previous_damage_;
  int64_t done_ = 0;             // epochs finished before this process started
  std::string earlier_metrics_;  // their metrics.csv rows (rank 0)

  // open_outputs, train
  std::optional<MetricsLog> metrics_;       // rank 0
  std::deque<LineLog> orders_, time_logs_;  // per rank here
  std::deque<ReferenceFiles> references_;   // results.pt and time/time-R.pt, as the reference's
  std::optional<Progress> progress_;
  std::vector<float> captured_;  // --save_grads: the epoch's gathered gradients
  RunSummary summary_;
  Clock::time_point run_start_;
};

}  // namespace

std::string build_info() {
  std::string backends;
  for (const auto& b : available_backends()) backends += (backends.empty() ? "" : ", ") + b;
  return std::string("khsgd_train ") + KHSGD_VERSION + " (LibTorch " + torch_version() +
         "; CUDA engine: " + (build_has_cuda_engine() ? "yes" : "no") +
         "; backends: " + (backends.empty() ? "none" : backends) + ")";
}

void run_training(Config config, const Launch& launch) { Run(std::move(config), launch).execute(); }

bool run_needs_libtorch(const Config& config, const Launch& launch) {
  const SorterInfo& sorter = sorter_info(config.sorter);
  // KH-SGD's log table: torch.log's bits, which khsgd_train computes itself only where this build's
  // LibTorch takes them from a library it can call too (libtorch_log.hpp).
  if (sorter.torch_log_table && !libtorch_log_without_libtorch()) return true;
  if (config.in_process) return false;  // the CPU engine, no backend
  // The GPU: --device cuda, or auto where the build, the sorter and the machine have one (the
  // CUDA runtime answers that without LibTorch; a CPU-only machine keeps the run here).
  if (config.device == "cuda") return true;
#ifdef KHSGD_WITH_CUDA
  if (config.device == "auto" && sorter.cuda != nullptr && visible_cuda_devices() > 0) return true;
#endif
  try {
    // Ranks that join: c10d's process group, or MPI's heartbeats over c10d's TCPStore.
    return resolve_backend(config.backend, Device::Cpu, launch, 0).connects;
  } catch (const UserError&) {
    return true;  // khsgd_train_run refuses it, in its order of checks
  }
}

}  // namespace khsgd
