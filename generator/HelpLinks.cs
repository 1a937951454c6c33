using System.Text;

namespace Mix.Generator;

/// <summary>
/// Absolute help links of the diagnostics (IDEs open <c>helpLinkUri</c> from the error list, so a relative path is
/// useless there): the repository's docs pages under <see cref="BaseUrl"/>, at the anchor GitHub gives the diagnostic's
/// heading.
/// </summary>
public static class HelpLinks
{
    /// <summary>Where the repository's files are published; docs/generator.md names it. A fork that publishes elsewhere
    /// changes this one constant.</summary>
    public const string BaseUrl = "https://github.com/mix-lang/mix/blob/main/";

    /// <summary>The front end's diagnostics: <c>docs/language.md</c>, heading <c>### MIXnnnn Title</c>.</summary>
    public static string Language(string id, string title) => BaseUrl + "docs/language.md#" + Anchor(id + " " + title);

    /// <summary>The generator's diagnostics: <c>docs/generator.md</c>, heading <c>### MIXnnnn</c>.</summary>
    public static string Generator(string id) => BaseUrl + "docs/generator.md#" + Anchor(id);

    /// <summary>GitHub's anchor of a Markdown heading: lower case, punctuation other than <c>-</c> and <c>_</c>
    /// dropped, each space a hyphen.</summary>
    public static string Anchor(string heading)
    {
        var sb = new StringBuilder(heading.Length);
        foreach (var c in heading.Trim().ToLowerInvariant())
        {
            if (char.IsLetterOrDigit(c) || c == '-' || c == '_') sb.Append(c);
            else if (c == ' ') sb.Append('-');
        }
        return sb.ToString();
    }
}
