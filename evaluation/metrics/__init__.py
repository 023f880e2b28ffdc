"""Metrics for `onboard eval`: pure, typed functions, each working on English and Chinese alike.

Every score is in [0, 1] (BLEU and chrF included: sacrebleu's 0-100 divided by 100), higher is better.

- `text`: token F1, exact match, ROUGE-L, BLEU, chrF (answer against reference answer).
- `facts`: key facts a correct answer must state (numbers with units, dates, names, emails, URLs),
  fact recall, and consistency across repeated answers; `quantities` reads numbers with their units
  ("5 business days" = "five working days" = "5 个工作日") for it.
- `retrieval`: hit@k and MRR of the source chunk; citation support (faithfulness to the cited chunk).
- `stats`: bootstrap confidence intervals over questions, paired differences, percentiles for latency.

Modules are imported directly (`from evaluation.metrics.text import token_f1`); nothing is imported here.
"""
