using System;

namespace Mix.Dsl.Semantics;

/// <summary>
/// A value grew past the checker's size budget (a dimension polynomial with too many terms or too high a degree, a
/// string or an array too long). Thrown where the value is built, turned into MIX0407 where it was written, so no
/// input costs exponential time or memory.
/// </summary>
internal sealed class ValueTooLargeException : Exception
{
    public ValueTooLargeException(string message) : base(message) { }
}

/// <summary>The size budgets of values during checking (docs/language.md, MIX0407).</summary>
internal static class ValueBudget
{
    /// <summary>Terms of one dimension polynomial.</summary>
    public const int MaxTerms = 128;
    /// <summary>Symbols multiplied in one term (the degree).</summary>
    public const int MaxDegree = 32;
    /// <summary>Characters of one symbol's name (opaque symbols such as <c>?(a)%(b)</c> embed their operands).</summary>
    public const int MaxSymbolLength = 256;
    /// <summary>Term pairs one product may combine.</summary>
    public const int MaxProductWork = 8 * MaxTerms;
    /// <summary>Characters of a string value.</summary>
    public const int MaxStringLength = 4096;
}
