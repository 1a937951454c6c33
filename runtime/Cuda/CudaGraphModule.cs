using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// Runs a model's inference forwards as recorded CUDA graphs, one per input shape (what PyTorch's
    /// <c>torch.cuda.make_graphed_callables</c> / <c>torch.compile(mode="reduce-overhead")</c> do): a launch-bound
    /// forward — a small batch through a model of many small kernels — costs one graph launch instead of hundreds of
    /// host calls. Per input shape, dtype and device: the first forward runs eagerly on the graph's stream (cuDNN's
    /// algorithm search, compiled kernels, allocator blocks), the second is recorded, every later one copies the input
    /// into the recorded one, replays, and returns a copy of the recorded output (<see cref="CloneOutputs"/>).
    /// <para>
    /// Eager, exactly as <c>model.call(x)</c>, where a graph does not apply: on the CPU, with gradients on, while the
    /// model trains, for more than <see cref="MaxGraphs"/> shapes, or for a shape whose forward cannot be recorded (it
    /// reads a value on the host, for instance: one warning, then that shape runs eagerly). The wrapper registers no
    /// parameters of its own: train, save and load the wrapped model. A replay reads the parameters recorded, by
    /// address: after replacing them (not copying into them) call <see cref="Reset"/>.
    /// </para>
    /// </summary>
    public sealed class CudaGraphModule : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> model;
        private readonly Dictionary<string, Entry> entries = new(StringComparer.Ordinal);

        private sealed class Entry : IDisposable
        {
            public IStepRecorder? Graph;
            public Tensor? Input, Output;
            public Tensor[] Weights = Array.Empty<Tensor>();
            public int EagerRuns;
            public string? Failure;
            public long Replays;

            public void Dispose()
            {
                Graph?.Dispose();
                Input?.Dispose();
                Output?.Dispose();
            }
        }

        /// <summary>Wraps <paramref name="model"/> (a <c>Module&lt;Tensor, Tensor&gt;</c>, e.g. any generated model).</summary>
        /// <param name="model">The model; it stays usable on its own.</param>
        public CudaGraphModule(nn.Module<Tensor, Tensor> model) : base(nameof(CudaGraphModule))
        {
            this.model = model ?? throw new ArgumentNullException(nameof(model));
        }

        /// <summary>The wrapped model.</summary>
        public nn.Module<Tensor, Tensor> Model => model;

        /// <summary>Input shapes that get a graph of their own (later shapes run eagerly). Default 8.</summary>
        public int MaxGraphs { get; set; } = 8;

        /// <summary>Eager forwards on the graph's stream before a shape is recorded (default 2: cuDNN's benchmark
        /// search and lazily compiled kernels happen in the first, the allocator settles in the second).</summary>
        public int WarmupRuns { get; set; } = 2;

        /// <summary>Whether a replay returns a copy of the recorded output (default) or the recorded output itself, which
        /// the next replay of the same shape overwrites (saves one copy; use it only while consuming each output at once).</summary>
        public bool CloneOutputs { get; set; } = true;

        /// <summary>Forwards served by replays, all shapes together.</summary>
        public long Replays => entries.Values.Sum(e => e.Replays);

        /// <summary>Recorded shapes, their graph nodes, replays and why a shape runs eagerly.</summary>
        public IReadOnlyList<(string Shape, int Nodes, long Replays, string? Failure)> Report() =>
            entries.Select(e => (e.Key, e.Value.Graph?.Nodes ?? 0, e.Value.Replays, e.Value.Failure)).ToList();

        /// <inheritdoc />
        public override Tensor forward(Tensor x)
        {
            if (!StepRecorders.Applies(x.device) || model.training) return model.call(x);
            if (torch.is_grad_enabled())
            {
                // the usual slip (TorchSharp records gradients unless told not to): say so once rather than stay slow
                KernelLog.WarnOnce("graph_module_grad", "CudaGraphModule runs eagerly while gradients are on: call it inside torch.no_grad() to replay graphs.");
                return model.call(x);
            }
            var key = $"{x.dtype} {x.device} [{string.Join(", ", x.shape)}]";
            if (!entries.TryGetValue(key, out var e))
            {
                if (entries.Count >= MaxGraphs) return model.call(x);
                entries[key] = e = new Entry();
                e.Graph = StepRecorders.TryCreate(x.device, out e.Failure);
                if (e.Graph is null) KernelLog.WarnOnce("graph_module:" + e.Failure, $"CudaGraphModule runs eagerly: {e.Failure}.");
            }
            if (e.Failure is not null || e.Graph is null) return model.call(x);
            if (e.EagerRuns < WarmupRuns)
            {
                e.EagerRuns++;
                Tensor? y = null;
                e.Graph.RunEager(() => y = model.call(x));
                return y!;
            }
            if (!e.Graph.IsReady)
            {
                e.Input = torch.empty_like(x).DetachFromDisposeScope();
                e.Input.copy_(x);
                // the output is taken inside the body: a recording runs it once, an emulated one at every replay
                if (!e.Graph.TryCapture(() =>
                    {
                        var recorded = model.call(e.Input);
                        e.Output?.Dispose();
                        e.Output = recorded.DetachFromDisposeScope();
                    }, out var error))
                {
                    e.Failure = error;
                    KernelLog.WarnOnce("graph_module_capture:" + model.GetType().FullName + key,
                        $"the forward of {model.GetType().Name} for {key} could not be recorded as a CUDA graph ({error}); it runs eagerly.");
                    return model.call(x);
                }
                e.Weights = model.parameters().Cast<Tensor>().Concat(model.buffers()).ToArray();
            }
            else e.Input!.copy_(x);
            e.Graph.Replay();
            e.Replays++;
            return CloneOutputs ? e.Output!.clone() : e.Output!.alias();
        }

        /// <summary>Frees every recorded graph; the next forwards record again (after the model's parameters were replaced).</summary>
        public void Reset()
        {
            foreach (var e in entries.Values) e.Dispose();
            entries.Clear();
        }

        /// <inheritdoc />
        protected override void Dispose(bool disposing)
        {
            if (disposing) Reset();
            base.Dispose(disposing);
        }
    }
}
