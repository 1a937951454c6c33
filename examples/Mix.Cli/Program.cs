// mix: check, summary, emit. `dotnet run --project examples/Mix.Cli -- --help`
return Mix.Cli.MixCli.Run(args);
