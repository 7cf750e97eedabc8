// The SIMT scheduler of the emulated device (see simt.h): blocks over a pool of workers, GPU threads
// as fibers, barriers, warp and warpgroup collectives, shared memory, deadlock reports.
#include "../../native/environment.h"
#include "sanitizer.h"
#include "simt.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>



namespace sv::emu {

namespace {

constexpr size_t kSharedLimit = 232448;      // bytes a block may use on sm_90 (227 KiB)
constexpr size_t kStaticSharedLimit = 49152;  // static __shared__ declarations: 48 KiB
constexpr size_t kDynamicWindow = 1024;       // the dynamic region starts inside the first KiB
constexpr size_t kArenaBytes = 256 * 1024;

// ---- settings ----

Settings read_settings() {
  Settings s;
  if (const std::string text = ::sv::environment("STEPVIDEO_EMU_SCHEDULE"); !text.empty()) {
    if (text.rfind("random", 0) == 0) {
      s.random_schedule = true;
      s.seed = text.size() > 7 ? std::strtoull(text.c_str() + 7, nullptr, 10) : 1;
    } else if (text != "fifo") {
      std::fprintf(stderr, "stepvideo emulator: STEPVIDEO_EMU_SCHEDULE must be fifo or random[:seed], got '%s'; using fifo\n",
                   text.c_str());
    }
  }
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  s.workers = std::min(cores, 8u);
  if (const std::string workers = ::sv::environment("STEPVIDEO_EMU_WORKERS"); !workers.empty()) {
    s.workers = static_cast<unsigned>(std::max(1L, std::strtol(workers.c_str(), nullptr, 10)));
  }
  return s;
}

}  // namespace

// ---- one block on one worker ----

struct SharedRegion {
  size_t offset, bytes;
  const void* key;
  const char* name;
};

struct Worker {
  Fiber scheduler;
  std::vector<std::unique_ptr<Thread>> threads;
  Block block;
  const LaunchPlan* plan = nullptr;
  std::deque<Thread*> ready;
  std::vector<Thread*> spinning;
  uint64_t spin_mark = 0;
  unsigned exited = 0;
  Thread* running = nullptr;
  std::mt19937_64 rng;
  // Shared memory: one arena, reused block after block.
  unsigned char* arena = nullptr;
  size_t dynamic_offset = 0;   // where the dynamic region starts (decided at its declaration)
  bool dynamic_placed = false;
  size_t static_offset = 0;    // next free byte for static declarations
  size_t static_bytes = 0;
  size_t used_high = 0;        // highest byte touched since the arena was last poisoned
  std::vector<SharedRegion> statics;
  // ThreadSanitizer's sync objects of block boundaries: threads acquire the start and release into
  // the end, the scheduler the other way round. Two objects, so that a thread's exit does not order
  // it before the block's threads that start later.
  char block_start = 0, block_end = 0;

  Worker() {
    scheduler.adopt_current_thread();
    void* memory = mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    arena = static_cast<unsigned char*>(memory);  // page aligned: shared addresses keep host alignment
    std::memset(arena, 0xff, kArenaBytes);
    SV_ASAN_POISON(arena, kArenaBytes);
  }
};

namespace {

// The worker of this OS thread (scheduler side; code on a fiber finds it through its Thread).
thread_local Worker* current_worker = nullptr;

Worker& worker() {
  if (current_worker == nullptr) current_worker = new Worker();  // lives as long as its OS thread's uses
  return *current_worker;
}

Thread* pick(Worker& w);

// Makes `t` the running thread (the switch to its fiber follows).
void activate(Worker& w, Thread& t) {
  t.state = ThreadState::running;
  w.running = &t;
}

// The running GPU thread has blocked: switches straight to the next ready thread (or, when none is
// ready, to the scheduler, which wakes spinners or reports the deadlock); returns when resumed.
void block_current() {
  Thread& t = this_thread();
  Worker& w = *t.worker;
  Thread* next = pick(w);
  if (next == &t) {  // a yield (random schedule) picked the yielding thread itself: keep running
    activate(w, t);
    return;
  }
  if (next == nullptr) {
    Fiber::switch_to(t.fiber, w.scheduler);
  } else {
    activate(w, *next);
    Fiber::switch_to(t.fiber, next->fiber);
  }
}

void make_ready(Thread& t) {
  t.state = ThreadState::ready;
  t.worker->ready.push_back(&t);
}

std::string site_text(const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  return std::string(base ? base + 1 : file) + ":" + std::to_string(line);
}

std::string state_text(const Thread& t) {
  switch (t.state) {
    case ThreadState::ready: return "ready";
    case ThreadState::running: return "running";
    case ThreadState::exited: return "exited";
    case ThreadState::barrier:
      if (t.site.detail0 == 0) return "waiting at __syncthreads (" + site_text(t.site.file, t.site.line) + ")";
      return "waiting at bar.sync " + std::to_string(t.site.detail0) + ", " + std::to_string(t.site.detail1) +
             " threads (" + site_text(t.site.file, t.site.line) + ")";
    case ThreadState::collective:
      return std::string("waiting for its ") + (t.site.detail0 == kWarpgroupSize ? "warpgroup" : "warp") + " at " +
             t.site.what + " (" + site_text(t.site.file, t.site.line) + ")";
    case ThreadState::spinning: {
      std::string text = std::string("spinning on ") + t.site.what + " (" + site_text(t.site.file, t.site.line) + ")";
      if (t.site.detail0 != 0 || t.site.detail1 != 0) {
        text += " [shared 0x" + [&] {
          char buffer[32];
          std::snprintf(buffer, sizeof(buffer), "%llx", static_cast<unsigned long long>(t.site.detail0));
          return std::string(buffer);
        }() + ", parity " + std::to_string(t.site.detail1) + "]";
      }
      return text;
    }
  }
  return "?";
}

std::string block_report(const Worker& w, const std::string& headline) {
  const Block& b = w.block;
  std::string report = headline + " in block " + format_index(b.index) + " of the kernel launched at " +
                       site_text(w.plan->site.file, w.plan->site.line) + " (" + w.plan->site.function + "), grid " +
                       format_index(uint3{w.plan->grid.x, w.plan->grid.y, w.plan->grid.z}) + " x block " +
                       format_index(uint3{w.plan->block.x, w.plan->block.y, w.plan->block.z}) + ":";
  unsigned first = 0;
  for (unsigned i = 1; i <= b.threads; i++) {
    if (i < b.threads && state_text(*w.threads[i]) == state_text(*w.threads[first])) continue;
    const unsigned last = i - 1;
    report += "\n  threads " + std::to_string(first) + (last != first ? "-" + std::to_string(last) : "") + " (warps " +
              std::to_string(first / kWarpSize) +
              (last / kWarpSize != first / kWarpSize ? "-" + std::to_string(last / kWarpSize) : "") +
              "): " + state_text(*w.threads[first]);
    first = i;
  }
  return report;
}

void thread_entry(void* argument) {
  Thread& t = *static_cast<Thread*>(argument);
  Worker& w = *t.worker;
  SV_TSAN_ACQUIRE(&w.block_start);  // after everything before the block (not after its other threads)
  SV_TSAN_ACQUIRE(const_cast<LaunchPlan*>(w.plan));  // and after the launch that made it
  w.plan->body();
  if (!t.copies.empty()) {
    fail_launch(describe_thread(t) + " exited with " + std::to_string(t.copies.size()) +
                " cp.async copies that no cp.async.wait_group waited for");
  }
  ptx_thread_exit(t);
  Block& b = w.block;
  const unsigned warp = t.index / kWarpSize;
  if (b.warp_collectives[warp].open && b.warp_collectives[warp].mask.test(lane_of(t))) {
    const Collective& c = b.warp_collectives[warp];
    fail_launch(describe_thread(t) + " exited while its warp waits for it at " + c.what + " (" + site_text(c.file, c.line) + ")");
  }
  if (b.barriers[0].count != 0 && b.barriers[0].count == b.threads) {
    fail_launch(describe_thread(t) + " exited while " + std::to_string(b.barriers[0].arrived) +
                " threads wait at __syncthreads (" + site_text(b.barriers[0].file, b.barriers[0].line) +
                "), which every thread of the block must reach");
  }
  t.state = ThreadState::exited;
  w.exited++;
  b.progress++;
  SV_TSAN_RELEASE(&w.block_end);
  Thread* next = pick(w);
  if (next == nullptr) {
    Fiber::exit_to(t.fiber, w.scheduler);
  } else {
    activate(w, *next);
    Fiber::exit_to(t.fiber, next->fiber);
  }
}

Thread* pick(Worker& w) {
  if (w.ready.empty()) return nullptr;
  if (settings().random_schedule && w.ready.size() > 1) {
    const size_t i = static_cast<size_t>(w.rng() % w.ready.size());
    std::swap(w.ready[i], w.ready.front());
  }
  Thread* t = w.ready.front();
  w.ready.pop_front();
  return t;
}

// Runs one block to completion; returns "" or its failure report.
std::string run_block(Worker& w, const LaunchPlan& plan, uint3 index, int* error_code) {
  const unsigned n = plan.block.x * plan.block.y * plan.block.z;
  Block& b = w.block;
  b.index = index;
  b.threads = n;
  b.warp_collectives.assign((n + kWarpSize - 1) / kWarpSize, Collective{});
  b.warpgroup_collectives.assign((n + kWarpgroupSize - 1) / kWarpgroupSize, Collective{});
  for (NamedBarrier& barrier : b.barriers) barrier = NamedBarrier{};
  b.progress = 0;
  b.failure.clear();
  b.failure_code = 0;
  ptx_block_reset(b);
  w.plan = &plan;
  w.ready.clear();
  w.spinning.clear();
  w.spin_mark = 0;
  w.exited = 0;
  // Shared memory: back to poison everywhere used before, nothing declared.
  SV_ASAN_UNPOISON(w.arena, kArenaBytes);
  std::memset(w.arena, 0xff, std::min(kArenaBytes, std::max(w.used_high, kDynamicWindow + plan.dynamic_shared)));
  SV_ASAN_POISON(w.arena, kArenaBytes);
  w.used_high = 0;
  w.dynamic_placed = false;
  w.dynamic_offset = 0;
  w.static_offset = (kDynamicWindow + plan.dynamic_shared + 1023) / 1024 * 1024;
  w.static_bytes = 0;
  w.statics.clear();
  if (settings().random_schedule) w.rng.seed(settings().seed ^ (uint64_t{index.x} << 32 | uint64_t{index.y} << 16 | index.z));

  while (w.threads.size() < n) w.threads.push_back(std::make_unique<Thread>());
  for (unsigned i = 0; i < n; i++) {
    Thread& t = *w.threads[i];
    t.index = i;
    t.view.thread_idx = uint3{i % plan.block.x, (i / plan.block.x) % plan.block.y, i / (plan.block.x * plan.block.y)};
    t.view.block_idx = index;
    t.view.block_dim = plan.block;
    t.view.grid_dim = plan.grid;
    t.site = WaitSite{};
    t.copies.clear();
    t.group_ends.clear();
    t.worker = &w;
    t.fiber.reset(&thread_entry, &t, FiberTag{&t.view, &t});
    make_ready(t);
  }

  SV_TSAN_RELEASE(&w.block_start);  // this block's threads start after everything before it
  while (true) {
    Thread* t = pick(w);
    if (t == nullptr) {
      if (!w.spinning.empty() && b.progress != w.spin_mark) {
        w.spin_mark = b.progress;
        for (Thread* s : w.spinning) make_ready(*s);
        w.spinning.clear();
        continue;
      }
      if (w.exited == n) break;
      b.failure = block_report(w, "deadlock: no thread can proceed");
      b.failure_code = cudaErrorLaunchFailure;
      break;
    }
    activate(w, *t);
    Fiber::switch_to(w.scheduler, t->fiber);
    w.running = nullptr;
    if (!b.failure.empty()) break;
  }
  SV_TSAN_ACQUIRE(&w.block_end);  // what the block's threads did happens before whatever follows
  *error_code = b.failure_code;
  return b.failure;
}

// ---- the worker pool ----

struct Pool {
  std::mutex mutex;
  std::condition_variable wake, done;
  std::vector<std::thread> threads;
  std::function<void()> job;
  uint64_t generation = 0;
  unsigned pending = 0;

  void start(unsigned count) {
    while (threads.size() < count) {
      threads.emplace_back([this] {
        uint64_t seen = 0;
        while (true) {
          std::function<void()> work;
          {
            std::unique_lock<std::mutex> lock(mutex);
            wake.wait(lock, [&] { return generation != seen; });
            seen = generation;
            work = job;
          }
          work();
          std::lock_guard<std::mutex> lock(mutex);
          if (--pending == 0) done.notify_all();
        }
      });
      threads.back().detach();
    }
  }

  // Runs `work` on `helpers` pool threads and on the caller, and waits for all of them.
  void run(unsigned helpers, const std::function<void()>& work) {
    if (helpers > 0) {
      start(helpers);
      std::lock_guard<std::mutex> lock(mutex);
      job = work;
      pending = static_cast<unsigned>(threads.size());
      generation++;
      wake.notify_all();
    }
    work();
    if (helpers > 0) {
      std::unique_lock<std::mutex> lock(mutex);
      done.wait(lock, [&] { return pending == 0; });
    }
  }
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: its threads are detached
  return *p;
}

}  // namespace

const Settings& settings() {
  static const Settings s = read_settings();
  return s;
}

std::string format_index(uint3 v) {
  return "(" + std::to_string(v.x) + ", " + std::to_string(v.y) + ", " + std::to_string(v.z) + ")";
}

std::string describe_thread(const Thread& t) {
  return "thread " + std::to_string(t.index) + " (warp " + std::to_string(t.index / kWarpSize) + ", lane " +
         std::to_string(t.index % kWarpSize) + ") of block " + format_index(t.view.block_idx);
}

Block& this_block() { return this_thread().worker->block; }

RunResult run_launch(const LaunchPlan& plan) {
  const uint64_t blocks = uint64_t{plan.grid.x} * plan.grid.y * plan.grid.z;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex result_mutex;
  RunResult result;
  auto work = [&] {
    Worker& w = worker();
    while (!failed.load(std::memory_order_relaxed)) {
      const uint64_t i = next.fetch_add(1);
      if (i >= blocks) break;
      const uint3 index{static_cast<unsigned>(i % plan.grid.x), static_cast<unsigned>((i / plan.grid.x) % plan.grid.y),
                        static_cast<unsigned>(i / (uint64_t{plan.grid.x} * plan.grid.y))};
      int code = 0;
      std::string failure = run_block(w, plan, index, &code);
      if (!failure.empty()) {
        std::lock_guard<std::mutex> lock(result_mutex);
        if (result.report.empty()) {
          result.report = std::move(failure);
          result.error = code;
        }
        failed.store(true);
      }
    }
  };
  const unsigned helpers = static_cast<unsigned>(std::min<uint64_t>(settings().workers, blocks)) - 1;
  pool().run(helpers, work);
  return result;
}

// ---- synchronisation ----

void barrier_sync(int id, unsigned count, const char* file, int line) {
  Thread& t = this_thread();
  Worker& w = *t.worker;
  Block& b = w.block;
  if (id < 0 || id >= kNamedBarriers) fail_launch(describe_thread(t) + ": bar.sync with barrier id " + std::to_string(id) + " (0-15 exist)");
  if (count == 0) count = b.threads;
  if (count % kWarpSize != 0 && count != b.threads) {
    fail_launch(describe_thread(t) + ": bar.sync " + std::to_string(id) + " with " + std::to_string(count) +
                " threads, not a multiple of the warp size (" + site_text(file, line) + ")");
  }
  NamedBarrier& barrier = b.barriers[id];
  if (barrier.arrived == 0) {
    barrier.count = count;
    barrier.file = file;
    barrier.line = line;
  } else if (barrier.count != count) {
    fail_launch(describe_thread(t) + " arrived at bar.sync " + std::to_string(id) + " expecting " + std::to_string(count) +
                " threads (" + site_text(file, line) + ") while others expect " + std::to_string(barrier.count) + " (" +
                site_text(barrier.file, barrier.line) + ")");
  } else if (id == 0 && (barrier.file != file || barrier.line != line) &&
             (std::strcmp(barrier.file, file) != 0 || barrier.line != line)) {
    fail_launch("divergent __syncthreads: " + std::to_string(barrier.arrived) + " threads wait at " +
                site_text(barrier.file, barrier.line) + ", " + describe_thread(t) + " arrived at " + site_text(file, line));
  }
  b.progress++;
  SV_TSAN_RELEASE(&barrier);
  if (++barrier.arrived == barrier.count) {
    for (unsigned i = 0; i < b.threads; i++) {
      Thread& other = *w.threads[i];
      if (&other != &t && other.state == ThreadState::barrier && other.site.detail0 == id) make_ready(other);
    }
    barrier.count = barrier.arrived = 0;
    SV_TSAN_ACQUIRE(&barrier);
    if (settings().random_schedule) maybe_yield();
    return;
  }
  t.state = ThreadState::barrier;
  t.site = WaitSite{id == 0 ? "__syncthreads" : "bar.sync", file, line, id, static_cast<int64_t>(count)};
  block_current();
  SV_TSAN_ACQUIRE(&barrier);
}

void syncwarp(unsigned mask, const char* file, int line) {
  collective(kWarpSize, mask, false, "__syncwarp", nullptr, nullptr,
             [](LaneSlot*, unsigned, const LaneMask&, const void*) { return std::string(); }, nullptr, file, line);
}

namespace {

struct ShuffleIn {
  uint32_t value;
  int lane_or_delta;
  int width;
};

std::string shuffle_compute(LaneSlot* lanes, unsigned, const LaneMask& mask, const void* argument) {
  const ShuffleMode mode = *static_cast<const ShuffleMode*>(argument);
  for (unsigned lane = 0; lane < kWarpSize; lane++) {
    if (!mask.test(lane)) continue;
    const ShuffleIn& in = *static_cast<const ShuffleIn*>(lanes[lane].in);
    const int width = in.width;
    const int segment = static_cast<int>(lane) / width * width;  // first lane of this lane's sub-section
    int source = static_cast<int>(lane);
    switch (mode) {
      case ShuffleMode::idx: source = segment + (in.lane_or_delta % width + width) % width; break;
      case ShuffleMode::up:
        source = static_cast<int>(lane) - in.lane_or_delta;
        if (source < segment) source = static_cast<int>(lane);
        break;
      case ShuffleMode::down:
        source = static_cast<int>(lane) + in.lane_or_delta;
        if (source >= segment + width) source = static_cast<int>(lane);
        break;
      case ShuffleMode::bfly:
        source = static_cast<int>(lane) ^ in.lane_or_delta;
        if (source >= segment + width) source = static_cast<int>(lane);
        break;
    }
    if (source < 0 || source >= kWarpSize || !mask.test(static_cast<size_t>(source))) {
      return "lane " + std::to_string(lane) + " reads lane " + std::to_string(source) +
             " in a shuffle whose mask does not include it";
    }
    *static_cast<uint32_t*>(lanes[lane].out) = static_cast<const ShuffleIn*>(lanes[source].in)->value;
  }
  return "";
}

const ShuffleMode kModes[] = {ShuffleMode::idx, ShuffleMode::up, ShuffleMode::down, ShuffleMode::bfly};
const char* const kShuffleNames[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync"};

}  // namespace

uint32_t shuffle(ShuffleMode mode, unsigned mask, uint32_t value, int lane_or_delta, int width, const char* file, int line) {
  if (width <= 0 || width > kWarpSize || (width & (width - 1)) != 0) {
    fail_launch(describe_thread(this_thread()) + ": shuffle width " + std::to_string(width) + " is not a power of two <= 32");
  }
  const ShuffleIn in{value, lane_or_delta, width};
  uint32_t out = 0;
  const int m = static_cast<int>(mode);
  collective(kWarpSize, mask, false, kShuffleNames[m], &in, &out, &shuffle_compute, &kModes[m], file, line);
  return out;
}

void collective(unsigned group_size, uint64_t mask_bits, bool aligned, const char* what, const void* in, void* out,
                CollectiveCompute compute, const void* argument, const char* file, int line) {
  Thread& t = this_thread();
  Worker& w = *t.worker;
  Block& b = w.block;
  const unsigned group = t.index / group_size, position = t.index % group_size;
  Collective& c = (group_size == kWarpSize ? b.warp_collectives : b.warpgroup_collectives)[group];
  const unsigned first = group * group_size;
  if (!c.open) {
    // The first lane to arrive checks the collective as a whole: its mask, the lanes it names.
    const unsigned present = std::min(group_size, b.threads - first);  // a partial last warp has fewer
    LaneMask mask;
    if (group_size == kWarpSize) {
      mask = LaneMask(mask_bits & 0xffffffffull);
    } else {
      for (unsigned i = 0; i < present; i++) mask.set(i);  // warpgroup collectives: the whole group
    }
    if ((aligned || group_size != kWarpSize) && (present != group_size || mask.count() != group_size)) {
      fail_launch(std::string(what) + " is .sync.aligned: every lane of the " + (group_size == kWarpSize ? "warp" : "warpgroup") +
                  " must execute it, but " + describe_thread(t) + " calls it with " + std::to_string(mask.count()) +
                  " of " + std::to_string(group_size) + " lanes (" + site_text(file, line) + ")");
    }
    for (unsigned i = 0; i < group_size; i++) {
      if (!mask.test(i)) continue;
      if (i >= present || w.threads[first + i]->state == ThreadState::exited) {
        fail_launch(describe_thread(t) + " calls " + what + " with lane " + std::to_string(i) + " in its mask, which " +
                    (i >= present ? "does not exist" : "has exited") + " (" + site_text(file, line) + ")");
      }
    }
    c.open = true;
    c.what = what;
    c.file = file;
    c.line = line;
    c.mask = mask;
    c.mask_bits = mask_bits;
    c.arrived.reset();
    c.compute = compute;
    c.argument = argument;
  } else if (c.line != line || (c.file != file && std::strcmp(c.file, file) != 0) ||
             (c.what != what && std::strcmp(c.what, what) != 0)) {
    fail_launch(std::string("divergent ") + (group_size == kWarpSize ? "warp" : "warpgroup") + ": " +
                std::to_string(c.arrived.count()) + " lanes wait at " + c.what + " (" + site_text(c.file, c.line) + "), " +
                describe_thread(t) + " arrived at " + what + " (" + site_text(file, line) + ")");
  } else if (group_size == kWarpSize && c.mask_bits != mask_bits) {
    fail_launch(std::string(what) + " (" + site_text(file, line) + "): the lanes of " + describe_thread(t) +
                "'s warp pass different masks");
  }
  if (!c.mask.test(position)) {
    fail_launch(describe_thread(t) + " calls " + what + " with a mask that leaves itself out (" + site_text(file, line) + ")");
  }
  c.lanes[position] = LaneSlot{in, out};
  c.arrived.set(position);
  b.progress++;
  SV_TSAN_RELEASE(&c);
  if (c.arrived == c.mask) {
    SV_TSAN_ACQUIRE(&c);
    c.open = false;
    const std::string error = c.compute(c.lanes, group_size, c.mask, c.argument);
    if (!error.empty()) fail_launch(std::string(what) + " (" + site_text(file, line) + "), block " + format_index(b.index) + ": " + error);
    for (unsigned i = 0; i < group_size; i++) {
      if (i != position && c.mask.test(i)) make_ready(*w.threads[first + i]);
    }
    if (settings().random_schedule) maybe_yield();
    return;
  }
  t.state = ThreadState::collective;
  t.site = WaitSite{what, file, line, static_cast<int64_t>(group_size), 0};
  block_current();
  SV_TSAN_ACQUIRE(&c);
}

void spin_yield(const WaitSite& site) {
  Thread& t = this_thread();
  Worker& w = *t.worker;
  t.state = ThreadState::spinning;
  t.site = site;
  w.spinning.push_back(&t);
  block_current();
}

void note_progress() { this_block().progress++; }

void maybe_yield() {
  if (!settings().random_schedule) return;
  Worker& w = *this_thread().worker;
  if (w.ready.empty() || (w.rng() & 3u) != 0) return;
  make_ready(this_thread());
  block_current();
}

void fail_launch(const std::string& report, int error_code) {
  Thread& t = this_thread();
  Worker& w = *t.worker;
  Block& b = w.block;
  if (b.failure.empty()) {
    b.failure = report;
    b.failure_code = error_code;
  }
  t.state = ThreadState::exited;
  Fiber::exit_to(t.fiber, w.scheduler);
  std::abort();  // never resumed
}

void trap(const char* why, const char* file, int line) {
  fail_launch(std::string(why) + " at " + site_text(file, line) + " by " + describe_thread(this_thread()), cudaErrorLaunchFailure);
}

void check_launch_bounds(const char* file, int line, int max_threads_per_block, int /*min_blocks_per_sm*/) {
  const dim3 block = view().block_dim;
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads <= static_cast<uint64_t>(max_threads_per_block)) return;
  // Reported when the block starts (a GPU refuses it at the launch): the site names the kernel.
  fail_launch("a block of " + std::to_string(threads) + " threads launched for the kernel at " + site_text(file, line) +
                  ", over its __launch_bounds__ of " + std::to_string(max_threads_per_block) + " threads per block",
              cudaErrorLaunchOutOfResources);
}

uint64_t global_timer_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

// ---- shared memory ----

unsigned char* shared_base() { return this_thread().worker->arena; }

void* dynamic_shared(size_t align) {
  Worker& w = *this_thread().worker;
  if (align == 0 || (align & (align - 1)) != 0) align = 16;
  if (!w.dynamic_placed) {
    // Exactly as aligned as declared: a kernel that needs more must align by hand, on a GPU too.
    w.dynamic_offset = align >= kDynamicWindow ? kDynamicWindow : (align < 16 ? 16 : align);
    if (align > kDynamicWindow) fail_launch("extern __shared__ aligned to more than 1 KiB is not supported by the emulator");
    w.dynamic_placed = true;
    const size_t bytes = w.plan->dynamic_shared;
    SV_ASAN_UNPOISON(w.arena + w.dynamic_offset, bytes);
    w.used_high = std::max(w.used_high, w.dynamic_offset + bytes);
  } else if (w.dynamic_offset % align != 0) {
    fail_launch("extern __shared__ declared with different alignments in one kernel");
  }
  return w.arena + w.dynamic_offset;
}

void* static_shared(const void* key, size_t bytes, size_t align, const char* name) {
  Worker& w = *this_thread().worker;
  for (const SharedRegion& r : w.statics)
    if (r.key == key) return w.arena + r.offset;
  align = std::max<size_t>(align, 16);
  const size_t offset = (w.static_offset + align - 1) / align * align;
  w.static_bytes += bytes;
  if (w.static_bytes > kStaticSharedLimit) {
    fail_launch(std::string("static __shared__ declarations exceed 48 KiB at '") + name + "' (" + std::to_string(w.static_bytes) + " bytes)");
  }
  if (offset + bytes > kSharedLimit + kDynamicWindow) {
    fail_launch("shared memory over the 227 KiB a block may use: " + std::to_string(w.plan->dynamic_shared) +
                " dynamic bytes and " + std::to_string(w.static_bytes) + " static bytes (at '" + name + "')");
  }
  w.statics.push_back(SharedRegion{offset, bytes, key, name});
  w.static_offset = offset + bytes;
  w.used_high = std::max(w.used_high, offset + bytes);
  SV_ASAN_UNPOISON(w.arena + offset, bytes);
  return w.arena + offset;
}

uint32_t shared_address(const void* pointer, const char* file, int line) {
  Worker& w = *this_thread().worker;
  const unsigned char* p = static_cast<const unsigned char*>(pointer);
  if (p < w.arena || p >= w.arena + kArenaBytes) {
    fail_launch(describe_thread(this_thread()) + " converts a pointer that is not shared memory to a shared address (" +
                    site_text(file, line) + ")",
                cudaErrorIllegalAddress);
  }
  return static_cast<uint32_t>(p - w.arena);
}

void check_shared(const void* pointer, size_t bytes, size_t align, const char* what, const char* file, int line) {
  Worker& w = *this_thread().worker;
  const unsigned char* p = static_cast<const unsigned char*>(pointer);
  const size_t offset = static_cast<size_t>(p - w.arena);
  if (p < w.arena || offset + bytes > kArenaBytes) {
    fail_launch(std::string(what) + " (" + site_text(file, line) + ") by " + describe_thread(this_thread()) +
                    ": address outside shared memory",
                cudaErrorIllegalAddress);
  }
  if (align > 1 && offset % align != 0) {
    fail_launch(std::string(what) + " (" + site_text(file, line) + ") by " + describe_thread(this_thread()) +
                    ": shared address 0x" + [&] {
                      char buffer[24];
                      std::snprintf(buffer, sizeof(buffer), "%zx", offset);
                      return std::string(buffer);
                    }() + " is not " + std::to_string(align) + "-byte aligned",
                cudaErrorMisalignedAddress);
  }
  const bool in_dynamic = w.dynamic_placed && offset >= w.dynamic_offset && offset + bytes <= w.dynamic_offset + w.plan->dynamic_shared;
  bool in_static = false;
  for (const SharedRegion& r : w.statics) {
    if (offset >= r.offset && offset + bytes <= r.offset + r.bytes) {
      in_static = true;
      break;
    }
  }
  if (!in_dynamic && !in_static) {
    char buffer[128];
    std::snprintf(buffer, sizeof(buffer), ": shared bytes [0x%zx, 0x%zx) are outside every declared region", offset, offset + bytes);
    std::string regions;
    if (w.dynamic_placed) {
      char r[96];
      std::snprintf(r, sizeof(r), " (dynamic [0x%zx, 0x%zx))", w.dynamic_offset, w.dynamic_offset + w.plan->dynamic_shared);
      regions = r;
    }
    fail_launch(std::string(what) + " (" + site_text(file, line) + ") by " + describe_thread(this_thread()) + buffer + regions,
                cudaErrorIllegalAddress);
  }
}

void* shared_pointer(uint32_t address, size_t bytes, size_t align, const char* what, const char* file, int line) {
  unsigned char* p = this_thread().worker->arena + address;
  check_shared(p, bytes, align, what, file, line);
  return p;
}

void poison_shared(void* pointer, size_t bytes) { std::memset(pointer, 0xff, bytes); }

}  // namespace sv::emu
