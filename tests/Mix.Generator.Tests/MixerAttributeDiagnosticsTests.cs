using System.Threading.Tasks;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>
/// <c>[Mixer]</c> misuse is reported at the attribute or at the argument concerned (MIX9110–MIX9114): every ID with its
/// exact span, and a well-formed declaration with none.
/// </summary>
public class MixerAttributeDiagnosticsTests
{
    const string Usings = "using TorchSharp;\nusing static TorchSharp.torch;\n";
    const string Contract = "\"(x: [B, N, dim]) -> [B, N, dim]\"";

    static string Module(string attribute, string ctor = "public Tokens(long dim, double scale = 1.0) : base(nameof(Tokens)) { }") => Usings + $$"""
        [{{attribute}}]
        public sealed class Tokens : nn.Module<Tensor, Tensor>
        {
            {{ctor}}
            public override Tensor forward(Tensor x) => x;
        }
        """;

    [Fact]
    public Task Well_formed_mixer_has_no_diagnostic() =>
        AttributeDiagnosticTest.RunOn(Module($"Mix.Mixer(\"my_tokens\", \"scale: float = 1.0\", {Contract})"));

    [Fact]
    public Task MIX9110_null_argument_at_the_argument() =>
        AttributeDiagnosticTest.RunOn(Module($"Mix.Mixer(\"my_tokens\", {{|MIX9110:null|}}, {Contract})", "public Tokens(long dim) : base(nameof(Tokens)) { }"));

    [Fact]
    public Task MIX9110_name_that_is_not_a_mix_name_at_the_name() =>
        AttributeDiagnosticTest.RunOn(Module($"Mix.Mixer(\"{{|MIX9110:my-tokens|}}\", \"scale: float = 1.0\", {Contract})"));

    [Fact]
    public Task MIX9110_non_constant_argument() =>
        AttributeDiagnosticTest.RunOn(Usings + $$"""
            [Mix.Mixer({|#0:{|MIX9110:Names.Tokens|}|}, "", {{Contract}})]
            public sealed class Tokens : nn.Module<Tensor, Tensor>
            {
                public Tokens(long dim) : base(nameof(Tokens)) { }
                public override Tensor forward(Tensor x) => x;
            }
            public static class Names { public static string Tokens = "my_tokens"; }
            """.Replace("{|#0:", "{|CS0182:"));

    [Fact]
    public Task MIX9111_builtin_name_at_the_name() =>
        AttributeDiagnosticTest.RunOn(Module($"Mix.Mixer(\"{{|MIX9111:pool|}}\", \"scale: float = 1.0\", {Contract})"));

    [Fact]
    public Task MIX9111_two_classes_claim_one_name_both_are_told() =>
        AttributeDiagnosticTest.RunOn(Module($"Mix.Mixer(\"{{|MIX9111:my_tokens|}}\", \"scale: float = 1.0\", {Contract})") + $$"""

            [Mix.Mixer("{|MIX9111:my_tokens|}", "", {{Contract}})]
            public sealed class Other : nn.Module<Tensor, Tensor>
            {
                public Other(long dim) : base(nameof(Other)) { }
                public override Tensor forward(Tensor x) => x;
            }
            """);

    [Fact]
    public Task MIX9112_unparsable_parameters_at_the_front_ends_span() =>
        AttributeDiagnosticTest.RunOn(Module($"Mix.Mixer(\"my_tokens\", \"scale: {{|MIX9112:flot|}} = 1.0\", {Contract})"));

    [Fact]
    public Task MIX9112_contract_with_two_inputs_at_the_contract() =>
        AttributeDiagnosticTest.RunOn(Module("Mix.Mixer(\"my_tokens\", \"scale: float = 1.0\", \"{|MIX9112:(x: [B, N, dim], y: [B, N, dim]) -> [B, N, dim]|}\")"));

    [Fact]
    public Task MIX9113_class_that_is_not_a_module_at_the_attribute() =>
        AttributeDiagnosticTest.RunOn($$"""
            [{|MIX9113:Mix.Mixer("my_tokens", "", {{Contract}})|}]
            public sealed class Tokens
            {
                public Tokens(long dim) { }
            }
            """);

    [Fact]
    public Task MIX9113_module_of_the_wrong_arity_at_the_attribute() =>
        AttributeDiagnosticTest.RunOn(Usings + $$"""
            [{|MIX9113:Mix.Mixer("my_tokens", "", {{Contract}})|}]
            public sealed class Tokens : nn.Module<Tensor, Tensor, Tensor>
            {
                public Tokens(long dim) : base(nameof(Tokens)) { }
                public override Tensor forward(Tensor x, Tensor y) => x;
            }
            """);

    [Theory]
    [InlineData("public Tokens(long dim, float scale = 1.0f) : base(nameof(Tokens)) { }")]        // double does not convert to float
    [InlineData("public Tokens(long dim, double scale) : base(nameof(Tokens)) { }")]              // .mix uses may omit scale
    [InlineData("public Tokens(long dim, double factor = 1.0) : base(nameof(Tokens)) { }")]       // no parameter named scale
    [InlineData("public Tokens(int dim, double scale = 1.0) : base(nameof(Tokens)) { }")]         // long does not convert to int
    [InlineData("public Tokens(long dim, double scale = 2.0) : base(nameof(Tokens)) { }")]        // default differs from the .mix one
    [InlineData("public Tokens(long dim, bool fast, double scale = 1.0) : base(nameof(Tokens)) { }")] // a required extra parameter
    [InlineData("Tokens(long dim, double scale = 1.0) : base(nameof(Tokens)) { }")]               // private
    public Task MIX9114_no_constructor_generated_code_can_call_at_the_attribute(string ctor) =>
        AttributeDiagnosticTest.RunOn(Module($"{{|MIX9114:Mix.Mixer(\"my_tokens\", \"scale: float = 1.0\", {Contract})|}}", ctor));

    [Theory]
    [InlineData("public Tokens(long dim, double scale = 1.0, bool fast = false) : base(nameof(Tokens)) { }")] // an optional extra parameter
    [InlineData("public Tokens(double dim, double scale = 1) : base(nameof(Tokens)) { }")]                   // long converts to double; 1 == 1.0
    [InlineData("Tokens(long dim) : base(nameof(Tokens)) { } internal Tokens(long dim, double scale = 1.0) : this(dim) { }")] // one of two
    public Task Constructors_generated_code_can_call_have_no_diagnostic(string ctor) =>
        AttributeDiagnosticTest.RunOn(Module($"Mix.Mixer(\"my_tokens\", \"scale: float = 1.0\", {Contract})", ctor));
}
