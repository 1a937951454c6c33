using System;
using System.IO;
using Xunit;

namespace Mix.Runtime.Tests.Checkpoints;

/// <summary>The test data travels with the test assembly: a published test folder (as on the GPU host, outside the
/// source tree) finds its fixtures and expected files beside itself, not by source path.</summary>
public class TestDataLocationTests
{
    [Fact]
    public void Fixtures_and_expected_files_are_read_from_beside_the_test_assembly()
    {
        var output = AppContext.BaseDirectory;
        Assert.Equal(Path.GetFullPath(output), Path.GetFullPath(TestFiles.TestProjectDirectory()));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(output, "Fixtures", "parity")));
        Assert.StartsWith(Path.GetFullPath(output), Path.GetFullPath(TestUtil.ExpectedPath("poolformer_s12.keys.txt")), StringComparison.Ordinal);
    }
}
