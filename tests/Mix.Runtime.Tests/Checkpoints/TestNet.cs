using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Checkpoints;

/// <summary>A small module with parameters in submodules and a persistent buffer.
/// State dict: fc1.weight [8,4], fc1.bias [8], fc2.weight [2,8], fc2.bias [2], stats [3].</summary>
internal sealed class TestNet : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;
#pragma warning disable IDE0052 // registered as a buffer by RegisterComponents
    private readonly Tensor stats;
#pragma warning restore IDE0052

    public TestNet(long seed) : base(nameof(TestNet))
    {
        torch.manual_seed(seed);
        fc1 = nn.Linear(4, 8);
        fc2 = nn.Linear(8, 2);
        stats = torch.rand(3);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc2.forward(nn.functional.relu(fc1.forward(x)));
}
