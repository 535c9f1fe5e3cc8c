"""The `assets2vec` command line: one module per subcommand."""
