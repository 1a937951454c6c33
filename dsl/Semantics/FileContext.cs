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
}
