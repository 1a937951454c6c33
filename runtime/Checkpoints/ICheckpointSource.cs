using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>A named collection of tensors whose headers can be inspected before any data is read.</summary>
internal interface ICheckpointSource : IDisposable
{
    /// <summary>The file the tensors come from (for sharded checkpoints, the index).</summary>
    string Path { get; }

    /// <summary>Every tensor name, sorted ordinally.</summary>
    IReadOnlyList<string> Names { get; }

    /// <summary>The header entry for <paramref name="name"/>, if present.</summary>
    bool TryGetInfo(string name, [NotNullWhen(true)] out TensorInfo? info);

    /// <summary>A fresh tensor holding a copy of <paramref name="name"/>'s data.</summary>
    torch.Tensor Read(string name, torch.Device? device = null);
}
