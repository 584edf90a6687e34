"""A study's numbers from the runs its store holds: descriptions and tests (:mod:`.stats`, :mod:`.effects`,
:mod:`.failure_rates`, :mod:`.power`), the expected best of n runs, the noise floor, churn, variance shares,
pruning, costs, sequential decisions, and per task × recipe the whole summary (:mod:`.summary`). Computing only:
:mod:`..report` turns these numbers into words, tables, files and pictures."""
