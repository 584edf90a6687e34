"""A study's numbers rendered: the verdict sentences (:mod:`.verdict`), ``summary.md`` (:mod:`.markdown`),
``summary.csv`` and ``expected_max.csv`` (:mod:`.tables`), the files written together (:mod:`.files`) and the
plots (:mod:`.plots`). Rendering only: every number comes from :mod:`..analysis`."""
