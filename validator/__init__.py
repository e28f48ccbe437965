"""modelgate: validate, render, deploy and smoke-test ML model deployment specs."""
