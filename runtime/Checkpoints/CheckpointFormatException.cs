using System.IO;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// A checkpoint file (safetensors, sharded index or TorchSharp <c>.dat</c>) is malformed: truncated, a header that
/// is not valid, offsets out of range or overlapping, a size that does not match the shape. The message names the
/// file, the tensor where one is involved, and the problem.
/// </summary>
public sealed class CheckpointFormatException : IOException
{
    /// <summary>Creates the exception for <paramref name="path"/> and, where the problem is one tensor's, its name.</summary>
    /// <param name="path">The file that is malformed.</param>
    /// <param name="tensorName">The tensor whose entry is malformed, or null when the problem is the file's.</param>
    /// <param name="problem">What is wrong, in words.</param>
    public CheckpointFormatException(string path, string? tensorName, string problem)
        : base(Compose(path, tensorName, problem))
    {
        FilePath = path;
        TensorName = tensorName;
        Problem = problem;
    }

    /// <summary>The file that is malformed.</summary>
    public string FilePath { get; }

    /// <summary>The tensor whose entry is malformed, or null when the problem is the whole file's.</summary>
    public string? TensorName { get; }

    /// <summary>What is wrong, without the file and tensor prefix.</summary>
    public string Problem { get; }

    private static string Compose(string path, string? tensorName, string problem) =>
        tensorName is null
            ? $"Invalid checkpoint file '{path}': {problem}"
            : $"Invalid checkpoint file '{path}', tensor '{tensorName}': {problem}";
}
