using System.Collections.Generic;
using System.Linq;
using System.Text;

namespace Mix.Generator;

/// <summary>Naming rules: .mix snake_case to C# PascalCase/camelCase, keywords, hint names.</summary>
internal static class Names
{
    /// <summary>Where the standard library's classes are emitted (internal, once per consuming project).</summary>
    public const string StdNamespace = "Mix.Generated.Std";

    /// <summary>Where the model zoo's classes are emitted for a project that imports <c>mix/models/...</c> (internal).</summary>
    public const string ZooNamespace = "Mix.Generated.Zoo";

    /// <summary>The namespace of a library file's classes.</summary>
    public static string LibraryNamespace(string path) => Mix.Dsl.StandardLibrary.IsModelsPath(path) ? ZooNamespace : StdNamespace;

    /// <summary>The C# class of a library definition: a standard-library mixer is named like the built-in it
    /// re-expresses (SepConv, GlobalFilter); a zoo definition like any other.</summary>
    public static string LibraryClass(string path, string name) => Mix.Dsl.StandardLibrary.IsModelsPath(path) ? Pascal(name) : Builtin(name);

    static readonly Dictionary<string, string> s_builtinNames = new()
    {
        ["layernorm"] = "LayerNorm", ["layernorm_nobias"] = "LayerNormNoBias", ["layernorm2d"] = "LayerNorm2d",
        ["layernorm2d_nobias"] = "LayerNorm2dNoBias", ["groupnorm1"] = "GroupNorm1", ["groupnorm1_nobias"] = "GroupNorm1NoBias",
        ["rmsnorm"] = "RmsNorm", ["batchnorm2d"] = "BatchNorm2d", ["layernorm_nd"] = "LayerNormNd", ["starrelu"] = "StarReLU",
        ["squared_relu"] = "SquaredReLU", ["relu"] = "ReLU", ["gelu"] = "GELU", ["silu"] = "SiLU", ["sepconv"] = "SepConv",
        ["swiglu"] = "SwiGLU", ["conv1d"] = "Conv1d", ["conv2d"] = "Conv2d", ["conv_transpose2d"] = "ConvTranspose2d", ["mlp_head"] = "MlpHead", ["conv_mlp"] = "ConvMlp",
    };

    static readonly HashSet<string> s_keywords = new()
    {
        "abstract", "as", "base", "bool", "break", "byte", "case", "catch", "char", "checked", "class", "const", "continue",
        "decimal", "default", "delegate", "do", "double", "else", "enum", "event", "explicit", "extern", "false", "finally",
        "fixed", "float", "for", "foreach", "goto", "if", "implicit", "in", "int", "interface", "internal", "is", "lock",
        "long", "namespace", "new", "null", "object", "operator", "out", "override", "params", "private", "protected",
        "public", "readonly", "ref", "return", "sbyte", "sealed", "short", "sizeof", "stackalloc", "static", "string",
        "struct", "switch", "this", "throw", "true", "try", "typeof", "uint", "ulong", "unchecked", "unsafe", "ushort",
        "using", "virtual", "void", "volatile", "while",
    };

    /// <summary><c>metaformer_block</c> → <c>MetaformerBlock</c>; <c>poolformer_s12</c> → <c>PoolformerS12</c>.</summary>
    public static string Pascal(string name)
    {
        var sb = new StringBuilder();
        foreach (var part in name.Split('_'))
        {
            if (part.Length == 0) continue;
            sb.Append(char.ToUpperInvariant(part[0])).Append(part.Substring(1));
        }
        var s = sb.ToString();
        if (s.Length == 0 || char.IsDigit(s[0])) s = "M" + s;
        return s;
    }

    /// <summary><c>pool_size</c> → <c>poolSize</c> (C# parameter names of the runtime factory table).</summary>
    public static string Camel(string name)
    {
        var p = Pascal(name);
        var s = char.ToLowerInvariant(p[0]) + p.Substring(1);
        return Escape(s);
    }

    /// <summary>The factory-table method of a built-in.</summary>
    public static string Builtin(string name) => s_builtinNames.TryGetValue(name, out var n) ? n : Pascal(name);

    /// <summary>A .mix name as a C# identifier (keywords get <c>@</c>).</summary>
    public static string Escape(string name) => s_keywords.Contains(name) ? "@" + name : name;

    /// <summary>Whether a state-dict key is also a plain C# identifier.</summary>
    public static bool IsIdentifier(string key) =>
        key.Length > 0 && (char.IsLetter(key[0]) || key[0] == '_') && key.All(c => char.IsLetterOrDigit(c) || c == '_');

    /// <summary><c>models/poolformer.mix</c> → <c>models.poolformer.mix.g.cs</c>.</summary>
    public static string HintName(string relativePath)
    {
        var sb = new StringBuilder();
        foreach (var c in relativePath.Replace('\\', '/').TrimStart('/'))
            sb.Append(c == '/' ? '.' : char.IsLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_');
        return sb + ".g.cs";
    }

    /// <summary>
    /// The file name of a <c>#line</c> directive, or null when the path cannot be one. C# takes the text between the
    /// quotes verbatim (no escapes: a backslash is a backslash), so a path with a quote or a line break cannot be
    /// written at all; such a file is emitted without line mapping rather than as code that does not compile.
    /// </summary>
    public static string? LineDirectivePath(string path) =>
        path.IndexOf('"') >= 0 || path.IndexOf('\n') >= 0 || path.IndexOf('\r') >= 0 ? null : "\"" + path + "\"";

    /// <summary>Whether <paramref name="ns"/> can follow <c>namespace</c> (dotted identifiers, keywords only as
    /// <c>@keyword</c>); empty is the global namespace.</summary>
    public static bool IsNamespace(string ns)
    {
        if (ns.Length == 0) return true;
        foreach (var part in ns.Split('.'))
        {
            var name = part.StartsWith("@", System.StringComparison.Ordinal) ? part.Substring(1) : part;
            if (!Microsoft.CodeAnalysis.CSharp.SyntaxFacts.IsValidIdentifier(name)) return false;
            if (name.Length == part.Length && Microsoft.CodeAnalysis.CSharp.SyntaxFacts.GetKeywordKind(name) != Microsoft.CodeAnalysis.CSharp.SyntaxKind.None) return false;
        }
        return true;
    }

    /// <summary>A C# string literal.</summary>
    public static string Literal(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '"': sb.Append("\\\""); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                default:
                    // Control characters and the Unicode line breaks C# ends a line at (U+0085, U+2028, U+2029).
                    if (c < ' ' || c == '\u0085' || c == '\u2028' || c == '\u2029' || c == '\u007f') sb.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}
