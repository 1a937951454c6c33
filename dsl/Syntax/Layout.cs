using System.Collections.Generic;
using System.Text;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Text;

namespace Mix.Dsl.Syntax;

/// <summary>
/// Newline handling, done before parsing so the grammar stays simple: comments become spaces, and a newline that
/// ends a statement becomes <c>;</c> (as in Go). A newline ends a statement when it is not inside <c>()</c> or
/// <c>[]</c>, the line ends in a name, literal or closing bracket, and the next line does not continue the
/// expression (starts with an operator, <c>then</c>, <c>else</c>, <c>and</c>, <c>or</c> or <c>{</c>).
/// The result has the same length as the input, so every offset is a source offset.
/// </summary>
internal static class Layout
{
    /// <summary>Deepest bracket nesting the parser accepts; deeper input is reported, not parsed.</summary>
    public const int MaxDepth = 48;

    public static string Apply(SourceText source, DiagnosticBag diagnostics, out int maxDepth)
    {
        var text = source.Text;
        var sb = new StringBuilder(text);
        var stack = new Stack<char>();
        char last = '\0';
        maxDepth = 0;
        int i = 0;
        while (i < text.Length)
        {
            char c = text[i];
            if (c == '/' && i + 1 < text.Length && text[i + 1] == '/')
            {
                while (i < text.Length && text[i] != '\n') { sb[i] = ' '; i++; }
                continue;
            }
            if (c == '"')
            {
                int start = i;
                i++;
                while (i < text.Length && text[i] != '"' && text[i] != '\n')
                {
                    if (text[i] == '\\' && i + 1 < text.Length && text[i + 1] != '\n') i++;
                    i++;
                }
                if (i >= text.Length || text[i] == '\n')
                {
                    diagnostics.Report(DiagnosticIds.UnterminatedString, source, TextSpan.FromBounds(start, i),
                        "string is not closed before the end of the line; add the closing '\"'");
                    for (int k = start; k < i; k++) sb[k] = ' ';
                    continue;
                }
                i++;
                last = '"';
                continue;
            }
            if (c == '\r' || c == '\t') { sb[i] = ' '; i++; continue; }
            if (c == '\n')
            {
                bool inParens = stack.Count > 0 && stack.Peek() != '{';
                if (inParens && EndsExpression(last) && NextLineStartsStatement(text, i + 1))
                {
                    // `fc1 = linear(dim, dim` followed by `fc2 = ...`: the bracket was never closed. End the
                    // statement here so the next one is still parsed (the parser reports the missing bracket).
                    while (stack.Count > 0 && stack.Peek() != '{') stack.Pop();
                    inParens = false;
                }
                if (!inParens && EndsExpression(last) && !NextLineContinues(text, i + 1))
                {
                    sb[i] = ';';
                    last = ';';
                }
                i++;
                continue;
            }
            if (c == ' ') { i++; continue; }
            if (c == '-')
            {
                int run = 0, j = i, lastMinus = i;
                while (j < text.Length && (text[j] == '-' || text[j] == ' ')) { if (text[j] == '-') { run++; lastMinus = j; } j++; }
                if (run > MaxDepth)
                {
                    diagnostics.Report(DiagnosticIds.NestingTooDeep, source, TextSpan.FromBounds(i, lastMinus + 1),
                        $"{run} '-' in a row; at most {MaxDepth} prefix operators may nest");
                    for (int k = i; k < j; k++) sb[k] = ' ';
                    i = j;
                    continue;
                }
            }
            if (c == '(' || c == '[' || c == '{')
            {
                stack.Push(c);
                if (stack.Count > maxDepth) maxDepth = stack.Count;
            }
            else if (c == ')' || c == ']' || c == '}')
            {
                if (stack.Count > 0) stack.Pop();
            }
            else if (!IsAllowed(c))
            {
                diagnostics.Report(DiagnosticIds.InvalidCharacter, source, new TextSpan(i, 1),
                    $"character '{Printable(c)}' cannot appear here; .mix uses names, numbers, strings and the operators + - * / % = < > ! | . , : ; ( ) [ ] {{ }} @ ?");
                sb[i] = ' ';
                i++;
                continue;
            }
            last = c;
            i++;
        }
        return sb.ToString();
    }

    static string Printable(char c) => c < 32 || c > 126 ? $"\\u{(int)c:X4}" : c.ToString();

    static bool IsAllowed(char c) =>
        char.IsLetterOrDigit(c) && c < 128 || "_+-*/%=<>!|.,:;()[]{}@?\"".IndexOf(c) >= 0;

    static bool EndsExpression(char c) =>
        char.IsLetterOrDigit(c) || c == '_' || c == ')' || c == ']' || c == '}' || c == '"' || c == '?';

    static bool NextLineContinues(string text, int i)
    {
        while (true)
        {
            while (i < text.Length && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) i++;
            if (i + 1 < text.Length && text[i] == '/' && text[i + 1] == '/')
            {
                while (i < text.Length && text[i] != '\n') i++;
                continue;
            }
            break;
        }
        if (i >= text.Length) return false;
        char c = text[i];
        if ("+-*/%|.=<>{,)]([".IndexOf(c) >= 0) return true;
        return StartsWord(text, i, "then") || StartsWord(text, i, "else") || StartsWord(text, i, "and") || StartsWord(text, i, "or");
    }

    /// <summary>Whether the next line begins with <c>name =</c> (not <c>==</c>) or <c>return</c>.</summary>
    static bool NextLineStartsStatement(string text, int i)
    {
        while (i < text.Length && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) i++;
        if (StartsWord(text, i, "return")) return true;
        int j = i;
        while (j < text.Length && (char.IsLetterOrDigit(text[j]) || text[j] == '_')) j++;
        if (j == i || char.IsDigit(text[i])) return false;
        while (j < text.Length && text[j] == ' ') j++;
        return j + 1 < text.Length && text[j] == '=' && text[j + 1] != '=';
    }

    static bool StartsWord(string text, int i, string word)
    {
        if (string.CompareOrdinal(text, i, word, 0, word.Length) != 0) return false;
        int end = i + word.Length;
        return end >= text.Length || !(char.IsLetterOrDigit(text[end]) || text[end] == '_');
    }
}
