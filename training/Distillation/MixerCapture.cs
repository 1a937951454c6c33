using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Training.Distillation;

/// <summary>
/// Records the input and output of chosen sub-modules (the mixers, by key path) on every forward, through forward
/// hooks, so the per-layer losses can read them: the teacher's mixer inputs feed the student's layer-wise stage and its
/// outputs are the hidden-state targets. The tensors are the last forward's (the caller's dispose scope owns them);
/// <see cref="Dispose"/> removes the hooks.
/// </summary>
public sealed class MixerCapture : IDisposable
{
    readonly List<IDisposable> _hooks = new();
    readonly Tensor?[] _inputs;
    readonly Tensor?[] _outputs;

    /// <summary>Hooks the modules of <paramref name="model"/> at <paramref name="paths"/> (<c>backbone.layers.0.mixer</c>).</summary>
    public MixerCapture(nn.Module model, IReadOnlyList<string> paths)
    {
        Paths = paths;
        _inputs = new Tensor?[paths.Count];
        _outputs = new Tensor?[paths.Count];
        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        for (int i = 0; i < paths.Count; i++)
        {
            int index = i;
            if (!modules.TryGetValue(paths[i], out var m))
                throw new ArgumentException($"The model has no module '{paths[i]}'.");
            if (m is not nn.Module<Tensor, Tensor> mixer)
                throw new ArgumentException($"'{paths[i]}' is a {m.GetType().Name}, not a module from a tensor to a tensor.");
            _hooks.Add(new Remover(mixer.register_forward_hook((_, input, output) =>
            {
                _inputs[index] = input;
                _outputs[index] = output;
                return output;
            })));
        }
    }

    /// <summary>The hooked paths, in order.</summary>
    public IReadOnlyList<string> Paths { get; }

    /// <summary>The input of module <paramref name="i"/> in the last forward.</summary>
    public Tensor Input(int i) => _inputs[i] ?? throw new InvalidOperationException($"'{Paths[i]}' has not run since the capture started.");

    /// <summary>The output of module <paramref name="i"/> in the last forward.</summary>
    public Tensor Output(int i) => _outputs[i] ?? throw new InvalidOperationException($"'{Paths[i]}' has not run since the capture started.");

    /// <summary>Forgets the last forward's tensors.</summary>
    public void Clear()
    {
        Array.Clear(_inputs);
        Array.Clear(_outputs);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var h in _hooks) h.Dispose();
        _hooks.Clear();
    }

    /// <summary>The module paths (<c>backbone.layers.0.mixer</c>) of the mixers whose keys end in
    /// <paramref name="marker"/> (see <see cref="StudentSurgery.MixerPrefixes"/>).</summary>
    public static IReadOnlyList<string> MixerPaths(nn.Module model, string marker) =>
        StudentSurgery.MixerPrefixes(model.state_dict().Keys, marker).Select(p => p.TrimEnd('.')).ToList();

    sealed class Remover(nn.HookableModule<Func<nn.Module<Tensor, Tensor>, Tensor, Tensor>, Func<nn.Module<Tensor, Tensor>, Tensor, Tensor, Tensor>>.HookRemover remover) : IDisposable
    {
        public void Dispose() => remover.remove();
    }
}
