using System.Collections.Generic;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Dsl.Semantics;

/// <summary>What one file can see: its own definitions and enums, then those of the files it imports.</summary>
internal sealed class FileContext
{
    public FileContext(MixFile file) => File = file;

    public MixFile File { get; }
    public SourceText Source => File.Source;
    public Dictionary<string, Callable> Definitions { get; } = new();
    public Dictionary<string, EnumDecl> Enums { get; } = new();
    /// <summary>Enum member name → enum (first declaration wins).</summary>
    public Dictionary<string, string> EnumMembers { get; } = new();
    public List<FileContext> Imports { get; } = new();

    /// <summary>Adds what the imports declare, when that was left until the file is first looked into (checking one
    /// file of a large import graph then costs what it uses, not the square of the graph).</summary>
    public System.Action? PendingImports { get; set; }

    /// <summary>Runs <see cref="PendingImports"/> once.</summary>
    public FileContext Ready()
    {
        var pending = PendingImports;
        if (pending is not null)
        {
            PendingImports = null;
            pending();
        }
        return this;
    }
}
