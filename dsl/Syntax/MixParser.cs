using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Text;
using Sprache;

namespace Mix.Dsl.Syntax;

/// <summary>Parses one <c>.mix</c> file. Never throws: every problem is a diagnostic, and one broken
/// definition or statement does not hide errors in the next.</summary>
public static class MixParser
{
    /// <summary>Parses <paramref name="source"/>, adding syntax diagnostics to <paramref name="diagnostics"/>.</summary>
    public static MixFile Parse(SourceText source, DiagnosticBag diagnostics)
    {
        return StackDepth.Run(StackDepth.NeedsLargeStack(source.Text), () => ParseCore(source, diagnostics), e =>
        {
            diagnostics.Report(DiagnosticIds.InternalError, source, new TextSpan(0, 0), $"internal parser error ({e.GetType().Name}: {e.Message})");
            return new MixFile(source, Array.Empty<ImportDecl>(), Array.Empty<EnumDecl>(), Array.Empty<Definition>());
        });
    }

    /// <summary>Parses on the current thread (the caller provides a large enough stack).</summary>
    internal static MixFile ParseCore(SourceText source, DiagnosticBag diagnostics)
    {
        var imports = new List<ImportDecl>();
        var enums = new List<EnumDecl>();
        var definitions = new List<Definition>();
        try
        {
            ParseItems(source, diagnostics, imports, enums, definitions);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The grammar should not throw; if it ever does, the user still gets a located diagnostic.
            diagnostics.Report(DiagnosticIds.InternalError, source, new TextSpan(0, 0), $"internal parser error ({e.GetType().Name}: {e.Message})");
        }
        return new MixFile(source, imports, enums, definitions);
    }

    static void ParseItems(SourceText source, DiagnosticBag diagnostics, List<ImportDecl> imports, List<EnumDecl> enums, List<Definition> definitions)
    {
        var text = Layout.Apply(source, diagnostics, out int maxDepth);
        var recovery = new List<(int, string)>();
        var tooDeep = new List<(int Position, int Length, string Message)>();
        var previous = (Grammar.Recovery, Grammar.TooDeep, Grammar.Memo);
        Grammar.Recovery = recovery;
        Grammar.TooDeep = tooDeep;
        Grammar.Memo = new Dictionary<int, IResult<Expr>>();
        try
        {
            IInput input = new FastInput(text);
            while (true)
            {
                input = Grammar.SkipSeparators(input);
                if (input.AtEnd) break;
                int itemStart = input.Position;
                if (maxDepth > Layout.MaxDepth && TooDeepBracket(text, itemStart) is int deep and >= 0)
                {
                    var end = SkipItem(input);
                    // At the bracket that goes one level too deep, not the whole item: that is where to split.
                    diagnostics.Report(DiagnosticIds.NestingTooDeep, source, new TextSpan(deep, 1),
                        $"brackets nest more than {Layout.MaxDepth} deep; split the expression into named parts");
                    input = end;
                    continue;
                }
                int deepBefore = tooDeep.Count;
                var r = Grammar.TopLevelItem(input);
                if (r.WasSuccessful)
                {
                    var after = Grammar.SkipSpaces(r.Remainder);
                    switch (r.Value)
                    {
                        case ImportDecl i: imports.Add(i); break;
                        case EnumDecl e: enums.Add(e); break;
                        case Definition d: definitions.Add(d); break;
                    }
                    if (!after.AtEnd && after.Current != ';')
                    {
                        recovery.Add((after.Position, $"unexpected {Grammar.Describe(after)}; expected a new line before the next definition"));
                        input = SkipItem(after);
                        continue;
                    }
                    input = after;
                    continue;
                }
                var at = r.Remainder.Position > itemStart ? r.Remainder : input;
                if (r.Message != Grammar.TooDeepMessage && tooDeep.Count == deepBefore) recovery.Add((at.Position, itemStart == at.Position && !StartsItem(text, itemStart)
                    ? $"unexpected {Grammar.Describe(at)}; expected 'model', 'block', 'mixer', 'enum' or 'import'"
                    : Grammar.FailureMessage(r)));
                input = SkipItem(at.Position > input.Position ? at : input.Advance());
            }
        }
        finally
        {
            (Grammar.Recovery, Grammar.TooDeep, Grammar.Memo) = previous;
        }
        foreach (var (pos, len, message) in tooDeep)
            diagnostics.Report(DiagnosticIds.NestingTooDeep, source, new TextSpan(pos, len > 0 && pos < text.Length ? TokenLength(text, pos) : len), message);
        // Layout blanks an unclosed string, so the parser then fails where it ended ("expected string"): that is the
        // same mistake, already reported as MIX0002.
        var unclosed = diagnostics.Items.Where(d => d.Descriptor == DiagnosticIds.UnterminatedString && d.Path == source.Path).Select(d => d.Span).ToList();
        foreach (var (pos, message) in recovery)
        {
            if (unclosed.Exists(s => pos >= s.Start && pos <= s.End)) continue;
            int len = pos < text.Length && !char.IsWhiteSpace(text[pos]) && text[pos] != ';' ? TokenLength(text, pos) : 0;
            diagnostics.Report(DiagnosticIds.SyntaxError, source, new TextSpan(pos, len), message);
        }
    }

    static readonly string[] ItemKeywords = { "model", "block", "mixer", "enum", "import" };

    /// <summary>Whether a top-level item starts here: <c>@</c>, <c>import "</c>, or a kind keyword followed by a name
    /// (so a layer called <c>mixer = ...</c> inside a body is not mistaken for a definition).</summary>
    static bool StartsItem(string text, int pos)
    {
        if (pos < text.Length && text[pos] == '@') return true;
        foreach (var k in ItemKeywords)
        {
            if (string.CompareOrdinal(text, pos, k, 0, k.Length) != 0) continue;
            int after = pos + k.Length;
            if (after >= text.Length) return true;
            if (char.IsLetterOrDigit(text[after]) || text[after] == '_') continue;
            int j = after;
            while (j < text.Length && text[j] == ' ') j++;
            if (j < text.Length && (char.IsLetter(text[j]) || text[j] == '_' || text[j] == '"')) return true;
        }
        return false;
    }

    /// <summary>Skips to the start of the next top-level item: a line that begins with an item keyword.</summary>
    static IInput SkipItem(IInput i)
    {
        bool lineStart = false;
        while (!i.AtEnd)
        {
            char c = i.Current;
            if (lineStart && StartsItem(i.Source, i.Position)) return i;
            if (c == '\n' || c == ';') lineStart = true;
            else if (!char.IsWhiteSpace(c)) lineStart = false;
            i = i.Advance();
        }
        return i;
    }

    /// <summary>The first opening bracket of the item at <paramref name="start"/> that nests deeper than
    /// <see cref="Layout.MaxDepth"/>, or -1.</summary>
    static int TooDeepBracket(string text, int start)
    {
        int depth = 0;
        for (int i = start; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '(' || c == '[' || c == '{') { if (++depth > Layout.MaxDepth) return i; }
            else if (c == ')' || c == ']' || c == '}') { depth--; if (depth <= 0 && c == '}') break; }
            else if (i > start && (text[i - 1] == ';' || text[i - 1] == '\n') && depth <= 0 && StartsItem(text, i)) break;
        }
        return -1;
    }

    static int TokenLength(string text, int pos)
    {
        if (char.IsLetterOrDigit(text[pos]) || text[pos] == '_')
        {
            int e = pos;
            while (e < text.Length && (char.IsLetterOrDigit(text[e]) || text[e] == '_')) e++;
            return e - pos;
        }
        return 1;
    }
}
