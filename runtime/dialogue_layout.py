"""Dialogue observation layout: where each belief feature sits in the vector the
Q-network reads (shared by the tracker that writes it, the action mask that reads it, the
trainer and the tests)."""
from __future__ import annotations

from runtime.dialogue_domain import CONSTRAINTS, INFORMABLE, N_ACTIONS, REQUESTABLE, USER_ACTS

COUNT_BUCKETS = (0, 1, 2, 4, 10)   # one-hot of #matches: 0, 1, 2-3, 4-9, >= 10
MAX_TURN = 30

# observation layout (documented so that tests and the trainer can address features)
SLOT_FEATURES = ("filled", "dontcare", "conf", "confirmed", "asked")
STATE_FEATURES = ("offered", "has_booking", "booking_current", "booking_invalid", "done",
                  "no_booking", "rejections", "named", "fresh")
_F_SLOT = 0
_F_UNKNOWN = _F_SLOT + len(INFORMABLE) * len(SLOT_FEATURES)   # constraint value not served
_F_REQ = _F_UNKNOWN + len(CONSTRAINTS)                        # requested, informed per slot
_F_STATE = _F_REQ + 2 * len(REQUESTABLE)
_F_COUNT = _F_STATE + len(STATE_FEATURES)
_F_USER = _F_COUNT + len(COUNT_BUCKETS)
_F_SYS = _F_USER + len(USER_ACTS)
_F_TURN = _F_SYS + N_ACTIONS + 1
_F_TYPOS = _F_TURN + 1            # share of the user's words the spelling had to correct
# cues that the last turns were misunderstood (see Tracker.cue_list)
CUE_FEATURES = ("corrections", "people_corrected", "time_corrected", "repeated", "reasked",
                "words")
_F_CUES = _F_TYPOS + 1
OBS_DIM = _F_CUES + len(CUE_FEATURES)
_NEGATE = USER_ACTS.index("negate")


def feature_index(slot: str, feature: str) -> int:
    """Index of a per-slot feature (e.g. ("people", "filled")) or, with ``slot=None``, of a
    state feature (e.g. (None, "booking_invalid"))."""
    if slot is None:
        return _F_STATE + STATE_FEATURES.index(feature)
    return _F_SLOT + INFORMABLE.index(slot) * len(SLOT_FEATURES) + SLOT_FEATURES.index(feature)
