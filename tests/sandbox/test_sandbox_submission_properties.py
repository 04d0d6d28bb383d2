"""Property: the sandbox (second line) and the flow's checks (first line) agree on every file.

The two are written apart; a file one accepts and the other refuses is a bug in one of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from model import validate_submission
from sandbox.submissions import SubmissionRefused, check_classic

LIVE = [f"n{i:015x}" for i in range(30)]
BAD = st.sampled_from([np.nan, np.inf, -np.inf, -0.5, 1.5, 7.0])


def _sandbox_accepts(frame: pd.DataFrame) -> tuple[bool, str]:
    try:
        check_classic(frame.to_csv(index=False).encode(), LIVE)
    except SubmissionRefused as exc:
        return False, str(exc)
    return True, "accepted"


@settings(deadline=None, database=None, max_examples=80)
@given(
    rows=st.lists(st.integers(0, len(LIVE) + 2), min_size=1, max_size=len(LIVE) + 5),
    values=st.lists(st.floats(0, 1), min_size=len(LIVE) + 5, max_size=len(LIVE) + 5),
    bad=st.lists(st.tuples(st.integers(0, len(LIVE) + 4), BAD), max_size=2),
    all_ids=st.booleans(),
)
def test_sandbox_refuses_exactly_what_the_flow_refuses(
    rows: list[int], values: list[float], bad: list[tuple[int, float]], all_ids: bool
) -> None:
    for row, value in bad:
        values[row] = value
    ids = list(LIVE) if all_ids else [LIVE[r] if r < len(LIVE) else f"unknown{r}" for r in rows]
    preds = np.asarray(values[: len(ids)], dtype="float64")
    finite = preds[np.isfinite(preds)]
    if len(finite) > 1:  # a spread right at the "constant" threshold may go either way
        assume(not 1e-10 < float(np.std(finite, ddof=1)) < 1e-6)
    frame = pd.DataFrame({"id": ids, "prediction": preds})
    flow = validate_submission(frame, pd.Index(LIVE))
    accepted, why = _sandbox_accepts(frame)
    event("accepted" if accepted else "refused")
    assert accepted == flow.ok, (why, flow.summary())
