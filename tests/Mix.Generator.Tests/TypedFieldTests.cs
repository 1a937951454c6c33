using System;
using System.Linq;
using System.Reflection;
using Mix.Generated.Models;
using Mix.Runtime.Builtins;
using TorchSharp;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>Generated fields are typed by the module the built-in's factory returns, so its weights are one dot away.</summary>
public class TypedFieldTests
{
    [Fact]
    public void A_linear_field_is_a_Linear_and_its_weight_needs_no_cast()
    {
        using var block = new TsmixerBlock(new TsmixerBlock.Options(SeqLen: 12, Channels: 3));
        // Compiles only with the concrete field type: TorchSharp's Linear has weight and bias.
        torch.Tensor weight = block.temporal_linear.weight!;
        Assert.Equal(new long[] { 12, 12 }, weight.shape);
        Assert.IsType<Mix.Runtime.QuantizableLinear>(block.feature_linear1);
        Assert.Equal(typeof(Mix.Runtime.QuantizableLinear), typeof(TsmixerBlock).GetField("feature_linear2")!.FieldType);
    }

    [Fact]
    public void Every_typed_builtin_matches_its_factory()
    {
        foreach (var (builtin, type) in BuiltinModuleTypes.All)
        {
            var method = typeof(Builtin).GetMethod(Names.Builtin(builtin), BindingFlags.Public | BindingFlags.Static);
            Assert.True(method is not null, $"{builtin}: no Builtin.{Names.Builtin(builtin)}");
            Assert.Equal(type, method!.ReturnType.FullName);
        }
    }

    [Fact]
    public void Builtins_of_no_single_type_stay_modules()
    {
        Assert.Null(BuiltinModuleTypes.Of("scale"));
        Assert.Null(BuiltinModuleTypes.Of("adaptive_avg_pool"));
        Assert.Equal(typeof(torch.nn.Module<torch.Tensor, torch.Tensor>), typeof(Builtin).GetMethod(nameof(Builtin.Scale))!.ReturnType);
    }
}
