using System.Threading.Tasks;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>
/// <c>[MetaFormerModel]</c> / <c>[MetaFormerStage]</c> misuse is reported at the attribute or at the argument concerned
/// (MIX9120–MIX9123), and front-end errors in the .mix text the attributes stand for are reported with the front end's
/// own IDs at the argument their text came from, never at a .mix path.
/// </summary>
public class AttributeModelDiagnosticsTests
{
    const string Stages = "[Mix.MetaFormerStage(1, 16)]\n[Mix.MetaFormerStage(1, 32)]\n";

    [Fact]
    public Task Well_formed_model_has_no_diagnostic() =>
        AttributeDiagnosticTest.RunOn("[Mix.MetaFormerModel(NumClasses = 10, Mixer = \"pool(5)\")]\n" + Stages + "public partial class Net { }\n");

    [Fact]
    public Task MIX9120_class_not_partial_at_the_model_attribute() =>
        AttributeDiagnosticTest.RunOn("[{|MIX9120:Mix.MetaFormerModel|}]\n" + Stages + "public class Net { }\n");

    [Fact]
    public Task MIX9120_class_with_a_base_class() =>
        AttributeDiagnosticTest.RunOn("public class Base { }\n[{|MIX9120:Mix.MetaFormerModel(NumClasses = 10)|}]\n" + Stages + "public partial class Net : Base { }\n");

    [Fact]
    public Task MIX9120_nested_class() =>
        AttributeDiagnosticTest.RunOn("public partial class Outer\n{\n    [{|MIX9120:Mix.MetaFormerModel|}]\n    [Mix.MetaFormerStage(1, 16)]\n    public partial class Net { }\n}\n");

    [Fact]
    public Task MIX9121_model_without_stages() =>
        AttributeDiagnosticTest.RunOn("[{|MIX9121:Mix.MetaFormerModel(NumClasses = 10)|}]\npublic partial class Net { }\n");

    [Fact]
    public Task MIX9121_stage_without_model() =>
        AttributeDiagnosticTest.RunOn("[{|MIX9121:Mix.MetaFormerStage(1, 16)|}]\npublic partial class Net { }\n");

    [Fact]
    public Task MIX9122_depth_and_dim_not_positive_at_the_argument() =>
        AttributeDiagnosticTest.RunOn("[Mix.MetaFormerModel]\n[Mix.MetaFormerStage({|MIX9122:0|}, 16)]\n[Mix.MetaFormerStage(1, {|MIX9122:-32|})]\npublic partial class Net { }\n");

    [Fact]
    public Task MIX9122_rates_and_sizes_out_of_range_at_the_argument() =>
        AttributeDiagnosticTest.RunOn("[Mix.MetaFormerModel(DropPathRate = {|MIX9122:1.5|}, NumClasses = {|MIX9122:0|}, Mixer = {|MIX9122:\"\"|})]\n" + Stages + "public partial class Net { }\n");

    [Fact]
    public Task MIX9123_unknown_mixer_at_its_name_in_the_string() =>
        AttributeDiagnosticTest.RunOn("[Mix.MetaFormerModel(Mixer = \"{|MIX9123:pooling|}\")]\n" + Stages + "public partial class Net { }\n");

    [Fact]
    public Task MIX9123_a_norm_where_a_mixer_goes_and_an_unknown_activation() =>
        AttributeDiagnosticTest.RunOn("[Mix.MetaFormerModel(MlpAct = \"{|MIX9123:gleu|}\")]\n[Mix.MetaFormerStage(1, 16, Mixer = \" {|MIX9123:groupnorm1|}\")]\n[Mix.MetaFormerStage(1, 32)]\npublic partial class Net { }\n");

    [Fact]
    public Task Front_end_error_in_a_mixer_keeps_its_id_and_lands_on_the_mixer() =>
        AttributeDiagnosticTest.RunOn("[Mix.MetaFormerModel(Mixer = \"{|MIX0205:pool(4)|}\")]\n" + Stages + "public partial class Net { }\n");

    [Fact]
    public Task Front_end_error_in_a_stage_mixer_lands_on_that_stage_only() =>
        AttributeDiagnosticTest.RunOn("[Mix.MetaFormerModel(Norm = \"layernorm_nobias\", ChannelsLast = true)]\n[Mix.MetaFormerStage(1, 64, Mixer = \"attention(head_dim = 32)\")]\n" +
            "[Mix.MetaFormerStage(1, 96, Mixer = \"{|MIX0206:attention(head_dim = 64)|}\")]\npublic partial class Net { }\n");

    [Fact]
    public Task Norm_that_does_not_take_the_stage_layout_lands_on_the_stage() =>
        AttributeDiagnosticTest.RunOn("[Mix.MetaFormerModel]\n[Mix.MetaFormerStage(1, 16)]\n[{|MIX0302:Mix.MetaFormerStage(1, 32, Mixer = \"attention\", ChannelsLast = true)|}]\npublic partial class Net { }\n");

    [Fact]
    public Task Front_end_error_about_a_misspelt_argument_lands_on_it() =>
        AttributeDiagnosticTest.RunOn("[Mix.MetaFormerModel]\n[Mix.MetaFormerStage(1, 16, Mixer = \"sepconv({|MIX0201:kernal_size|} = 5)\")]\n[Mix.MetaFormerStage(1, 32)]\npublic partial class Net { }\n");

    [Fact]
    public Task Shape_error_of_a_stage_lands_on_the_stage() =>
        AttributeDiagnosticTest.RunOn("[Mix.MetaFormerModel]\n[Mix.MetaFormerStage(1, 16)]\n[{|MIX0302:Mix.MetaFormerStage(1, 32, Mixer = \"attention\")|}]\npublic partial class Net { }\n");
}
