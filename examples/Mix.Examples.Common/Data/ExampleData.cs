using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;

namespace Mix.Examples.Data;

/// <summary>Finds the data files that ship in the repository's <c>examples/data/</c> folder.</summary>
public static class ExampleData
{
    /// <summary>
    /// The path of <paramref name="fileName"/>: next to the program (<c>data/</c>, where the build copies it), or in
    /// <c>examples/data/</c> of the repository that holds the current directory or the program. Throws
    /// <see cref="FileNotFoundException"/> naming the expected path and how to get the file.
    /// </summary>
    public static string Find(string fileName)
    {
        var candidates = new List<string> { Path.Combine(AppContext.BaseDirectory, "data", fileName) };
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                candidates.Add(Path.Combine(dir.FullName, "examples", "data", fileName));
        foreach (var c in candidates)
            if (File.Exists(c)) return c;
        throw new FileNotFoundException(
            $"Data file '{fileName}' not found. Expected it at '{candidates[0]}' (copied there by the build) or in the " +
            $"repository at 'examples/data/{fileName}'. It ships with the repository; if it is missing, restore it with " +
            $"'git checkout -- examples/data/{fileName}' or fetch it again from its Debian package as examples/data/README.md describes.",
            candidates[0]);
    }

    /// <summary>Reads a text file, decompressing it when its name ends in <c>.gz</c>.</summary>
    public static string ReadAllText(string path)
    {
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
