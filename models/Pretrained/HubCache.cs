using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;

namespace Mix.Pretrained;

/// <summary>
/// The Hugging Face hub cache as <c>huggingface_hub</c> writes it: <c>&lt;cache&gt;/models--org--name/</c> with
/// <c>refs/&lt;branch&gt;</c> (a file holding a commit hash) and <c>snapshots/&lt;commit&gt;/</c> (the files). Read only.
/// </summary>
internal static class HubCache
{
    static readonly Regex s_repoId = new("^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$", RegexOptions.CultureInvariant);
    static readonly Regex s_commit = new("^[0-9a-f]{40}$", RegexOptions.CultureInvariant);

    /// <summary>Whether <paramref name="text"/> reads as a hub id (<c>org/name</c>).</summary>
    public static bool IsRepoId(string text) => s_repoId.IsMatch(text);

    /// <summary><c>org/name</c> → <c>models--org--name</c>.</summary>
    public static string FolderName(string repoId) => "models--" + repoId.Replace("/", "--");

    /// <summary>The cache folder: <paramref name="explicitDir"/>, else <c>HF_HUB_CACHE</c>, else <c>HF_HOME</c>/hub,
    /// else <c>~/.cache/huggingface/hub</c> (huggingface_hub's order).</summary>
    public static string Root(string? explicitDir)
    {
        if (!string.IsNullOrEmpty(explicitDir)) return explicitDir;
        if (Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } hub) return hub;
        if (Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } home) return Path.Combine(home, "hub");
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x
            ? x : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(xdg, "huggingface", "hub");
    }

    /// <summary>The snapshot folder of a repository folder for a revision: <c>refs/&lt;revision&gt;</c>'s commit, or the
    /// revision itself when it is a commit hash with a snapshot.</summary>
    public static string Snapshot(string repoFolder, string revision)
    {
        var snapshots = Path.Combine(repoFolder, "snapshots");
        var refFile = Path.Combine(repoFolder, "refs", revision);
        string commit;
        if (File.Exists(refFile)) commit = File.ReadAllText(refFile).Trim();
        else if (s_commit.IsMatch(revision) || Directory.Exists(Path.Combine(snapshots, revision))) commit = revision;
        else
        {
            var present = Directory.Exists(snapshots) ? Directory.GetDirectories(snapshots).Select(Path.GetFileName).ToList() : new();
            throw new FileNotFoundException(
                $"'{repoFolder}' has no refs/{revision} and no snapshot named '{revision}' (snapshots: {(present.Count == 0 ? "none" : string.Join(", ", present))})", refFile);
        }
        var folder = Path.Combine(snapshots, commit);
        if (!Directory.Exists(folder))
            throw new FileNotFoundException($"refs/{revision} of '{repoFolder}' names commit {commit}, but snapshots/{commit} is missing", folder);
        return folder;
    }
}
