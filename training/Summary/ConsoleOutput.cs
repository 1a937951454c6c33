using System;
using Spectre.Console;

namespace Mix.Training.Summary;

/// <summary>
/// Spectre.Console lays output out for an 80-column terminal when it cannot ask one (output piped or redirected to a
/// file), which breaks table cells mid-word (<c>backbone.e</c> / <c>mbeddings</c>). A pipe has no width: give it
/// <see cref="RedirectedWidth"/> columns, so tables keep their natural width and lines are not wrapped.
/// </summary>
public static class ConsoleOutput
{
    /// <summary>Columns assumed for redirected output.</summary>
    public const int RedirectedWidth = 1000;

    /// <summary>The default console, widened when standard output is redirected.</summary>
    public static IAnsiConsole Default => Fit(AnsiConsole.Console, Console.IsOutputRedirected);

    /// <summary>Widens <paramref name="console"/> to <see cref="RedirectedWidth"/> when <paramref name="redirected"/>;
    /// returns it.</summary>
    public static IAnsiConsole Fit(IAnsiConsole console, bool redirected)
    {
        ArgumentNullException.ThrowIfNull(console);
        if (redirected) console.Profile.Width = RedirectedWidth;
        return console;
    }
}
