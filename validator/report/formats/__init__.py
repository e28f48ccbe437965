"""One module per output format, named after it: `format_report(report) -> str`."""
