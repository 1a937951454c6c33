using System.Linq;
using Mix.Runtime.Builtins;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Caches;

/// <summary>
/// What a <see cref="StateCacheSlot"/> does while a decoding step is recorded into a CUDA graph
/// (<see cref="CausalModel.CudaGraphs"/>): the recorded step must read and write the same buffers on every replay, so
/// a write is held until the step's end and then copied into the buffer the step read; a fused step's swap is undone;
/// an abandoned recording leaves the slot as it was. The bookkeeping is device-independent, so it is checked here on
/// CPU tensors (the copies run at once instead of being recorded); the recorded graphs themselves are checked on the
/// GPU (<c>DecodeGraphGpuTests</c>).
/// </summary>
public class StateSlotCaptureTests
{
    private static StateCacheSlot Slot() => new(0, 2, new[]
    {
        new MixStateSpec("a", new long[] { 2, 3 }, ScalarType.Float32),
        new MixStateSpec("b", new long[] { 2, 4 }, ScalarType.Float32),
    });

    [Fact]
    public void A_recorded_write_lands_in_the_buffer_the_step_read()
    {
        using var slot = Slot();
        var a = slot.Get("a");
        var b = slot.Get("b");
        b.fill_(7f);
        slot.BeginCapture();
        using (var v = torch.full(2, 3, 3f)) slot.Set("a", v);   // the forward's scope may free its value: the slot keeps an alias
        // later reads in the same step see the written value, the buffer itself is untouched until the step ends
        Assert.Equal(3f, slot.Get("a")[1, 2].item<float>());
        Assert.Equal(0f, a[0, 0].item<float>());
        slot.EndCapture(commit: true);
        Assert.Same(a, slot.Get("a"));
        Assert.Equal(3f, a[1, 2].item<float>());
        Assert.Same(b, slot.Get("b"));                           // not written: not copied
        Assert.Equal(7f, b[0, 0].item<float>());
    }

    [Fact]
    public void An_abandoned_recording_changes_nothing()
    {
        using var slot = Slot();
        var a = slot.Get("a");
        a.fill_(1f);
        slot.BeginCapture();
        slot.Set("a", torch.full(2, 3, 9f));
        slot.EndCapture(commit: false);
        Assert.Same(a, slot.Get("a"));
        Assert.Equal(1f, a[0, 0].item<float>());
        // a second recording can start
        slot.BeginCapture();
        slot.EndCapture(commit: true);
        Assert.Equal(1f, slot.Get("a")[0, 0].item<float>());
    }

    [Fact]
    public void A_fused_steps_swap_is_undone_and_its_result_copied_back()
    {
        using var slot = Slot();
        var a = slot.Get("a");
        slot.BeginCapture();
        var spare = slot.Spare("a");   // made during the recording: kept for the next one
        spare.fill_(4f);
        slot.Swap("a");
        Assert.Same(spare, slot.Get("a"));
        slot.EndCapture(commit: true);
        Assert.Same(a, slot.Get("a"));
        Assert.Same(spare, slot.Spare("a"));
        Assert.Equal(4f, a[1, 1].item<float>());
    }

    [Fact]
    public void Adopt_moves_the_state_into_a_buffer_the_caller_owns()
    {
        using var slot = Slot();
        slot.Set("a", torch.full(2, 3, 2f));                     // an eager step replaced the state tensor
        using var owned = torch.zeros(2, 3);
        slot.Adopt("a", owned);
        Assert.Equal(2f, owned[0, 2].item<float>());
        Assert.Equal(Cuda.TensorPointers.Address(owned), Cuda.TensorPointers.Address(slot.Get("a")));
        // adopting again is free (same storage), and a reset zeroes the owned buffer through the slot's alias
        var held = slot.Get("a");
        slot.Adopt("a", owned);
        Assert.Same(held, slot.Get("a"));
        slot.Reset();
        Assert.Equal(0f, owned.abs().sum().item<float>());
    }

    [Fact]
    public void Recording_twice_is_refused()
    {
        using var slot = Slot();
        slot.BeginCapture();
        Assert.Throws<System.InvalidOperationException>(() => slot.BeginCapture());
        slot.EndCapture(commit: false);
        Assert.Equal(new[] { "a", "b" }, slot.Specs.Select(s => s.Name));
    }
}
