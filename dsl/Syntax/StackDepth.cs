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

    /// <summary>An upper bound on nesting: deepest bracket depth plus every if/for/not/unary minus.</summary>
    public static bool NeedsLargeStack(string text)
    {
        int depth = 0, max = 0, prefixes = 0;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '(' || c == '[' || c == '{') { if (++depth > max) max = depth; }
            else if (c == ')' || c == ']' || c == '}') { if (depth > 0) depth--; }
            else if (c == '-') prefixes++;
            else if ((c == 'i' || c == 'f' || c == 'n') && (i == 0 || !IsWord(text[i - 1])))
            {
                if (Word(text, i, "if") || Word(text, i, "for") || Word(text, i, "not")) prefixes++;
            }
            if (max + prefixes > SafeNesting) return true;
        }
        return false;
    }

    static bool IsWord(char c) => char.IsLetterOrDigit(c) || c == '_';

    static bool Word(string text, int i, string w) =>
        string.CompareOrdinal(text, i, w, 0, w.Length) == 0 && (i + w.Length >= text.Length || !IsWord(text[i + w.Length]));

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
