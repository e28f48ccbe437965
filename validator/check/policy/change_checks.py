"""The built-in checks a change rule (`changeRules` in policies/*.yaml) may name. They judge
the deltas `modelgate plan` finds between REF and the change, so they run there
(validator/plan/refusals.py), never in `validate`, which sees one side only:

- gpus_added: the GPUs a change adds to an environment, at every endpoint's max replicas,
  are at most the parameter maxGpusAddedPerChange's figure for it.
- exposure_reviewed: a change of an endpoint's visibility, authentication or TLS is approved
  by someone the parameter securityReviewers lists.
- within_budget: a team's endpoints in an environment cost at most the parameter budgets'
  figure an hour at their max replicas.
"""

CHANGE_CHECKS = ("gpus_added", "exposure_reviewed", "within_budget")
