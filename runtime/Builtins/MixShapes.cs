using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// Run-time shape checks for generated modules (a debug option): each generated <c>forward</c> checks its inputs
/// against the .mix signature and, on a mismatch, throws an error naming the layer, the .mix file and line, the
/// expected pattern and the actual shape. Off by default (it costs a little per call); turn it on with
/// <c>MIX_CHECK_SHAPES=1</c> or <see cref="Enabled"/>.
/// </summary>
public static class MixShapes
{
    /// <summary>Whether generated modules check their input shapes.</summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("MIX_CHECK_SHAPES") == "1";

    /// <summary>
    /// Checks <paramref name="x"/> against a signature input. <paramref name="expected"/> has one entry per axis:
    /// the required size, or null where the .mix shape has a free symbol (<c>B</c>, <c>H</c>) or an expression of one.
    /// </summary>
    /// <param name="x">The input tensor.</param>
    /// <param name="definition">The .mix definition (<c>metaformer_block</c>).</param>
    /// <param name="input">The input's name in the signature.</param>
    /// <param name="pattern">The signature's shape as written (<c>[B, dim, H, W]</c>).</param>
    /// <param name="file">The .mix file.</param>
    /// <param name="line">The 1-based line of the signature.</param>
    /// <param name="expected">Required sizes per axis (null: any).</param>
    public static void Check(Tensor x, string definition, string input, string pattern, string file, int line, params long?[] expected)
    {
        var shape = x.shape;
        string? problem = null;
        if (shape.Length != expected.Length)
            problem = $"rank {shape.Length}, not {expected.Length}";
        else
        {
            for (int i = 0; i < expected.Length; i++)
            {
                if (expected[i] is long e && shape[i] != e)
                {
                    problem = $"axis {i} is {shape[i]}, not {e}";
                    break;
                }
            }
        }
        if (problem is null) return;
        throw new MixShapeException(file, line, definition,
            $"{definition} expects {input}: {pattern} = [{string.Join(", ", expected.Select(d => d?.ToString() ?? "*"))}] " +
            $"but got [{string.Join(", ", shape)}]: {problem}");
    }
}

/// <summary>A tensor whose shape contradicts a .mix signature, located at the .mix file and line.</summary>
public sealed class MixShapeException : Exception
{
    /// <summary>Creates the exception; the message starts with <c>file(line):</c> like a compiler diagnostic.</summary>
    public MixShapeException(string file, int line, string definition, string detail)
        : base($"{file}({line}): {detail}")
    {
        File = file;
        Line = line;
        Definition = definition;
    }

    /// <summary>The .mix file.</summary>
    public string File { get; }
    /// <summary>The 1-based line.</summary>
    public int Line { get; }
    /// <summary>The definition whose signature was violated.</summary>
    public string Definition { get; }
}
