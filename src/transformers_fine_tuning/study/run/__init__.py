"""Running a study: the study file read into cells (:mod:`.spec`), the store that keeps every outcome
(:mod:`.store`, its row from :mod:`.store_schema`), the backends and workers that execute the cells
(:mod:`.backends`, :mod:`.worker`, :mod:`.runner`, :mod:`.forkserver`) and the progress line. Nothing here
computes a statistic or writes a report: :mod:`..analysis` reads what the store holds."""
