// The measuring stick for ranks that share cores: P processes meet at a barrier R times, through
// memory they share, and do nothing else: no arithmetic, no data. They are placed as
// scripts/launch.sh --mpi has mpirun place more ranks than cores (--map-by core --bind-to
// core:overload-allowed: process p on the (p mod C)-th of the C CPUs this one may use; on a machine
// with several hardware threads a core, mpirun binds to whole cores, this to single CPUs), and
// wait as khsgd's shared window does then (src/comm/mpi_comm.cpp): a process yields its core while
// one bound to the same CPU has not arrived (it cannot run otherwise), and spins while those still
// missing are all on other CPUs. With 4 processes on 2 cores each barrier then takes one switch
// between processes on each core; an epoch of mpi ranks cannot take less than an epoch of these
// barriers (one a step), which scripts/bench.sh prints beside them.
//
//   cc -O2 -o barrier barrier.c && ./barrier 4 12204
// prints the seconds of the R barriers of P processes (P <= 64).
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kLine = 64, kMaxProcs = 64, kSpins = 2048 };

// One turn of a spinning wait (x86's pause; elsewhere a compiler barrier only).
static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  __asm__ __volatile__("" ::: "memory");
#endif
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char** argv) {
  const int procs = argc > 1 ? atoi(argv[1]) : 0;
  const long rounds = argc > 2 ? atol(argv[2]) : 0;
  if (procs < 2 || procs > kMaxProcs || rounds < 1) {
    fprintf(stderr, "usage: %s PROCESSES(2-%d) ROUNDS\n", argv[0], kMaxProcs);
    return 2;
  }
  // Each process's count of barriers passed, a cache line apart.
  char* counts = mmap(NULL, (size_t)kLine * kMaxProcs, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (counts == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  // The cores this process may use, in order.
  cpu_set_t allowed;
  int core_of[CPU_SETSIZE], cores = 0;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
    perror("sched_getaffinity");
    return 1;
  }
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) core_of[cores++] = c;
  const double start = now();
  for (int p = 0; p < procs; ++p) {
    const pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 1;
    }
    if (pid > 0) continue;
    cpu_set_t own;
    CPU_ZERO(&own);
    CPU_SET(core_of[p % cores], &own);
    // Where it cannot be bound it runs unbound (and its barriers take longer), rather than leave
    // the others waiting for it.
    (void)sched_setaffinity(0, sizeof own, &own);
    for (long r = 1; r <= rounds; ++r) {
      atomic_store_explicit((_Atomic long*)(counts + p * kLine), r, memory_order_release);
      for (int q = 0; q < procs; ++q) {
        int turn = 0;  // per process waited for, as in wait_for()
        while (atomic_load_explicit((_Atomic long*)(counts + q * kLine), memory_order_acquire) < r) {
          int sharer_behind = 0;  // a process on this core that has not arrived
          for (int o = p % cores; o < procs; o += cores)
            sharer_behind |= o != p && atomic_load_explicit((_Atomic long*)(counts + o * kLine),
                                                            memory_order_relaxed) < r;
          if (turn < kSpins && !sharer_behind) {
            ++turn;
            cpu_relax();
          } else {
            sched_yield();
          }
        }
      }
    }
    _exit(0);
  }
  int status = 0, failed = 0;
  while (wait(&status) > 0) failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  if (failed) return 1;
  printf("%.4f\n", now() - start);
  return 0;
}
