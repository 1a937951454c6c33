using System.Threading.Tasks;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>
/// Runs the generator on one C# source through Microsoft.CodeAnalysis.Testing and compares its diagnostics with the
/// markup spans in the source (<c>{|MIX9110:null|}</c>), IDs and exact spans; the generated sources are not compared.
/// TorchSharp and Mix.Runtime are referenced, as in a real project.
/// </summary>
sealed class AttributeDiagnosticTest : CSharpSourceGeneratorTest<MixGenerator, DefaultVerifier>
{
    public AttributeDiagnosticTest(string source)
    {
        ReferenceAssemblies = Harness.LocalNet80.Value;
        TestState.AdditionalReferences.Add(typeof(TorchSharp.torch).Assembly);
        TestState.AdditionalReferences.Add(typeof(Mix.Runtime.Builtins.Builtin).Assembly);
        TestBehaviors |= TestBehaviors.SkipGeneratedSourcesCheck;
        TestState.Sources.Add(source);
    }

    public static Task RunOn(string source) => new AttributeDiagnosticTest(source).RunAsync(TestContext.Current.CancellationToken);
}
