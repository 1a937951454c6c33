using System.IO;
using System.Linq;
using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>docs/language.md's built-in catalog lists every built-in, with the exact signature for layers, norms and mixers.</summary>
public class DocumentedCatalogTests
{
    static readonly string Docs = File.ReadAllText(Path.Combine(Repo.Root, "docs", "language.md"));

    public static TheoryData<string> Builtins()
    {
        var data = new TheoryData<string>();
        foreach (var name in BuiltinCatalog.All.Keys.OrderBy(k => k, System.StringComparer.Ordinal)) data.Add(name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Builtins))]
    public void BuiltinIsDocumented(string name)
    {
        var b = BuiltinCatalog.Find(name)!;
        if (b.Kind is CallableKind.Function or CallableKind.Act)
            Assert.True(Docs.Contains("`" + name + "(") || Docs.Contains("`" + name + "`") || Docs.Contains(" " + name + "(") || Docs.Contains("`" + name + ","),
                $"{name} is not in the catalog");
        else
            Assert.True(Docs.Contains("`" + b.SignatureText + "`"), $"the catalog should list `{b.SignatureText}`");
    }
}
