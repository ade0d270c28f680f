"""Pure domain of the results service: the arithmetic of RESULTS.md.

No I/O.  Numbers are :class:`decimal.Decimal`; roundings are ROUND_HALF_UP to
two decimals at the steps RESULTS.md names.
"""

from .decimal_math import decimal_places, has_at_most_two_decimals, percent_of
from .grading import (
    assign_ranks,
    band_for,
    compute_student_result,
    generate_results,
    result_sort_key,
)
from .models import (
    ExamRules,
    GradeBand,
    MarkEntry,
    MarkStatus,
    RankMethod,
    ResultStatus,
    StudentResult,
    Subject,
    SubjectResult,
)
from .validation import (
    DefinitionProblem,
    ProblemCode,
    validate_exam_definition,
    validate_mark,
)

__all__ = [
    "DefinitionProblem",
    "ExamRules",
    "GradeBand",
    "MarkEntry",
    "MarkStatus",
    "ProblemCode",
    "RankMethod",
    "ResultStatus",
    "StudentResult",
    "Subject",
    "SubjectResult",
    "assign_ranks",
    "band_for",
    "compute_student_result",
    "decimal_places",
    "generate_results",
    "has_at_most_two_decimals",
    "percent_of",
    "result_sort_key",
    "validate_exam_definition",
    "validate_mark",
]
