// `dotnet run --project examples/Language [-- --help]`
return Mix.Examples.Language.LanguageApp.RunCommandLine(args);
