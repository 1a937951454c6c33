using System;
using System.Collections.Generic;

namespace Mix.Generator;

/// <summary>
/// How the translator remembers that a tensor value came from fusible ops: the op, its operands and how to write the
/// op's reference C# from its operands' code (so a region's reference expression can be written over the region's
/// inputs). <see cref="Kind"/> and <see cref="Op"/> are those of <see cref="FusionNode"/>.
/// </summary>
internal sealed class FusionExpr
{
    public FusionExpr(string kind, string op, FusionExpr[] args, string code, int prec,
        Func<IReadOnlyList<(string Code, int Prec)>, string>? render = null, int axis = 0, bool keepDim = true, string? value = null)
    {
        Kind = kind;
        Op = op;
        Args = args;
        Code = code;
        Prec = prec;
        Render = render;
        Axis = axis;
        KeepDim = keepDim;
        Value = value;
    }

    public string Kind { get; }
    public string Op { get; }
    public FusionExpr[] Args { get; }
    /// <summary>The reference C# (for an op: over its operands' reference code).</summary>
    public string Code { get; }
    /// <summary>C# precedence of <see cref="Code"/> (100: primary).</summary>
    public int Prec { get; }
    /// <summary>An op's C# from its operands' code and precedence.</summary>
    public Func<IReadOnlyList<(string Code, int Prec)>, string>? Render { get; }
    public int Axis { get; }
    public bool KeepDim { get; }
    public string? Value { get; }

    public bool IsOp => Kind is "unary" or "binary" or "reduce" or "softmax";

    /// <summary>The code once regions are cut (set by the first consumer; every later one reuses it).</summary>
    public (string Code, int Prec)? Materialized { get; set; }
}
