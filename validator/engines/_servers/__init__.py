"""Model servers modelgate ships for the local target. Each runs with the Python of its
engine's own environment (validator/deploy/environments.py), never with modelgate's: it
imports nothing from modelgate, only the standard library and its engine's packages."""
