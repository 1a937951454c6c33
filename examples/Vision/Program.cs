// `dotnet run --project examples/Vision [-- --help]`
return Mix.Examples.Vision.VisionApp.RunCommandLine(args);
