using System;
using System.Diagnostics;
using System.IO;
using System.Linq;

namespace Mix.Tests.Shared;

/// <summary>
/// The C++ that the kernel emulation tests put in front of a kernel compiled by g++: cooperative CUDA threads. Every
/// emulated thread of a launch is a fiber (its own stack) on the OS thread that launched it; a block barrier, a warp
/// collective or a spin-wait switches to the next fiber, round robin, and a barrier lets its fibers go once all of them
/// have arrived.
/// </summary>
/// <remarks>
/// Why not one OS thread per CUDA thread, as these tests first did: on the two-core CI machine a block of 128–256 OS
/// threads spent most of its time in futex wake-ups, two at every emulated warp shuffle, mma or ldmatrix, and the
/// emulation tests took two thirds of CI. A switch here is a few register moves (no signal-mask system call, as
/// <c>swapcontext</c> makes). Fibers run one at a time in a fixed order (alternately forwards and backwards), so a run is deterministic; what the tests
/// check is layout and arithmetic, never timing. Harnesses pass an <c>enter</c> action that restores their per-thread
/// globals (<c>threadIdx</c>, the block's barrier) each time a fiber resumes.
/// </remarks>
internal static class CudaThreadEmulation
{
    public const string Header = """
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <functional>
#include <vector>
#include <sys/mman.h>
// mix_fiber_switch(&save, load): push the callee-saved registers and the SSE / x87 control words, store the stack
// pointer in save, continue on load's stack (System V x86-64)
extern "C" void mix_fiber_switch(void** save, void* load);
asm(R"(
  .text
  .globl mix_fiber_switch
  .type mix_fiber_switch, @function
mix_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size mix_fiber_switch, .-mix_fiber_switch
)");
struct mix_fiber { void* sp; void* stack; std::function<void()> enter, body; bool done; };
static void* mix_scheduler_sp;
static mix_fiber* mix_fiber_running;   // null outside a launch: yield is then a no-op
static constexpr size_t mix_fiber_stack_bytes = 256 << 10;
static std::vector<void*> mix_fiber_free_stacks;
// to the scheduler, which resumes the next fiber
static void mix_fiber_yield() {
  if (mix_fiber_running) mix_fiber_switch(&mix_fiber_running->sp, mix_scheduler_sp);
}
static void mix_fiber_entry() {
  mix_fiber* f = mix_fiber_running;
  f->body();
  f->done = true;
  mix_fiber_switch(&f->sp, mix_scheduler_sp);
  std::abort();   // a finished fiber is never resumed
}
// a block (or warp) barrier among n fibers
struct mix_barrier {
  explicit mix_barrier(std::ptrdiff_t n) : n_(n) {}
  void arrive_and_wait() {
    const unsigned long long g = gen_;
    if (++arrived_ == n_) { arrived_ = 0; gen_++; return; }
    while (gen_ == g) mix_fiber_yield();
  }
  std::ptrdiff_t n_, arrived_ = 0;
  unsigned long long gen_ = 0;
};
// the fibers of one launch (a block, or every block of a grid that must be resident at once)
class mix_fibers {
 public:
  mix_fibers() = default;
  mix_fibers(const mix_fibers&) = delete;
  ~mix_fibers() { for (auto& f : fs_) mix_fiber_free_stacks.push_back(f.stack); }
  void reserve(size_t n) { fs_.reserve(n); }
  // enter runs each time the fiber resumes (restoring the harness's per-thread globals), body once
  void spawn(std::function<void()> enter, std::function<void()> body) {
    void* stack;
    if (!mix_fiber_free_stacks.empty()) { stack = mix_fiber_free_stacks.back(); mix_fiber_free_stacks.pop_back(); }
    else {
      stack = mmap(nullptr, mix_fiber_stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (stack == MAP_FAILED) { std::printf("fiber stack: mmap failed\n"); std::exit(3); }
    }
    // the first switch pops the control words and six registers, then returns into mix_fiber_entry with the stack
    // aligned as after a call (a zero return address above it)
    uintptr_t* top = (uintptr_t*)((char*)stack + mix_fiber_stack_bytes);
    *--top = 0;
    *--top = (uintptr_t)&mix_fiber_entry;
    for (int i = 0; i < 6; i++) *--top = 0;
    *--top = 0x037Full << 32 | 0x1F80u;   // mxcsr, then the x87 control word: the defaults
    fs_.push_back(mix_fiber{ top, stack, std::move(enter), std::move(body), false });
  }
  // resume every unfinished fiber in turn until all have returned; every other round backwards, so that a read of
  // another thread's write without a barrier between them sees the old value in one of two neighbouring rounds,
  // whichever of the two threads has the lower index
  void run() {
    for (size_t live = fs_.size(), round = 0; live; round++) {
      live = 0;
      for (size_t k = 0; k < fs_.size(); k++) {
        mix_fiber& f = fs_[round & 1 ? fs_.size() - 1 - k : k];
        if (f.done) continue;
        mix_fiber_running = &f;
        f.enter();
        mix_fiber_switch(&mix_scheduler_sp, f.sp);
        mix_fiber_running = nullptr;
        if (!f.done) live++;
      }
    }
  }
 private:
  std::vector<mix_fiber> fs_;
};

""";

    /// <summary>g++ on the PATH, or null (the emulation tests skip without it).</summary>
    public static string? FindGxx() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, "g++")).FirstOrDefault(File.Exists);

    /// <summary>Runs <paramref name="file"/> in <paramref name="dir"/> to its end: exit code and stdout + stderr.</summary>
    public static (int code, string output) Run(string file, string args, string dir)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
