namespace Mix.Dsl.Syntax;

/// <summary>
/// Parsing and checking recurse once per nesting level. Ordinary files nest a few levels and run on the caller's
/// thread; a file that could nest deeply (many brackets, if/for/not chains) runs on a thread with a large stack,
/// so hostile input is a diagnostic, never a stack overflow.
/// </summary>
internal static class StackDepth
{
    const int SafeNesting = 32;
    internal const int LargeStackBytes = 64 * 1024 * 1024;

    /// <summary>
    /// An upper bound on nesting: deepest bracket depth plus the prefix constructs (unary <c>-</c>, <c>not</c>,
    /// <c>if</c>, <c>for</c>) of one statement (a newline after a complete expression starts a new one).
    /// </summary>
    public static bool NeedsLargeStack(string text)
    {
        int depth = 0, max = 0, prefixes = 0;
        char last = '\0';
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '/' && i + 1 < text.Length && text[i + 1] == '/')
            {
                while (i + 1 < text.Length && text[i + 1] != '\n') i++; // comments nest nothing
                continue;
            }
            if (c == '\n')
            {
                if (EndsExpression(last)) prefixes = 0;
                continue;
            }
            if (char.IsWhiteSpace(c)) continue;
            if (c == '(' || c == '[' || c == '{') { if (++depth > max) max = depth; }
            else if (c == ')' || c == ']' || c == '}') { if (depth > 0) depth--; }
            else if (c == '-' && !EndsExpression(last) && !(i + 1 < text.Length && text[i + 1] == '>')) prefixes++;
            else if ((c == 'i' || c == 'f' || c == 'n') && (i == 0 || !IsWord(text[i - 1])))
            {
                if (Word(text, i, "if") || Word(text, i, "for") || Word(text, i, "not")) prefixes++;
            }
            last = c;
            if (max + prefixes > SafeNesting) return true;
        }
        return false;
    }

    static bool EndsExpression(char c) => IsWord(c) || c == ')' || c == ']' || c == '}' || c == '"';

    static bool IsWord(char c) => char.IsLetterOrDigit(c) || c == '_';

    static bool Word(string text, int i, string w) =>
        string.CompareOrdinal(text, i, w, 0, w.Length) == 0 && (i + w.Length >= text.Length || !IsWord(text[i + w.Length]));

    /// <summary>
    /// Whether the current thread has stack to spare for another level of recursion. Every recursive walk asks
    /// before it goes deeper, so whatever thread the compiler or IDE runs us on, a deep input ends in a diagnostic.
    /// </summary>
    public static bool HasRoom()
    {
        try
        {
            System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
            return true;
        }
        catch (System.InsufficientExecutionStackException)
        {
            return false;
        }
    }

    /// <summary>Runs <paramref name="work"/> on this thread or on a large-stack thread, rethrowing nothing.</summary>
    public static T Run<T>(bool largeStack, System.Func<T> work, System.Func<System.Exception, T> onFailure)
    {
        if (!largeStack)
        {
            try { return work(); }
            catch (System.Exception e) when (e is not System.OutOfMemoryException) { return onFailure(e); }
        }
        T result = default!;
        var thread = new System.Threading.Thread(() =>
        {
            try { result = work(); }
            catch (System.Exception e) when (e is not System.OutOfMemoryException) { result = onFailure(e); }
        }, LargeStackBytes);
        thread.Start();
        thread.Join();
        return result;
    }
}
