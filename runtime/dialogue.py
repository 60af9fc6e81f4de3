"""Dialogue: the next reply of a restaurant assistant (numpy + onnxruntime only).

    reply = generate("dialogue", history=["I want cheap italian food in the north"], seed=0)
    str(reply)        # 'How about Da Mario? It serves italian food in the north, cheap ...'
    reply.act         # 'offer'
    reply.slots       # {'cuisine': 'italian', 'area': 'north', 'price': 'cheap'}
    reply.offered     # {'name': 'Da Mario', 'cuisine': 'italian', ..., 'phone': ..., ...}
    reply.booking     # None, or {'restaurant', 'people', 'time', 'reference'}
    nxt = generate("dialogue", state=reply.state, history=["great, for 2 at half seven"])

Two ways to hold a conversation:

* ``history``: plain strings, alternating user/system, user first, ending with a user turn
  (odd length; empty: the system opens). The system turns are read back (templates first, then
  keywords), so an app that edits or translates replies should use ``state`` instead.
* ``state``: the JSON-able ``reply.state`` of the previous reply, with ``history`` holding only
  the user's new turn. Nothing is re-parsed; the state carries the belief and the transcript.

One reply: the user turn goes through :class:`runtime.dialogue_understanding.Understanding`
(typos, number words, spoken times, negation, names, unknown values), the tracker
(:mod:`runtime.dialogue_tracker`) updates the belief and gives the observation, the exported
Q-network scores the system acts (invalid ones masked), the best is resolved against the
catalogue and rendered with a template variant drawn with ``rng`` (:mod:`runtime.dialogue_replies`).

Limits: ``history`` at most ``MAX_TURNS`` (64) turns of at most ``MAX_CHARS`` (1,000) characters
(longer: ValueError); the understanding reads the first ``READ_CHARS`` (600) characters of a
user turn; the transcript kept in ``state`` is the last ``MAX_TURNS`` turns.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime import options as _check
from runtime.dialogue_domain import A_NONE, BOOKING, CONSTRAINTS, N_ACTIONS, Catalogue, SystemAct
from runtime.dialogue_replies import SystemReader, render, template_key
from runtime.dialogue_tracker import OBS_DIM, Tracker, mask_row, resolve_action
from runtime.dialogue_understanding import READ_CHARS, Understanding
from runtime.errors import ModelError
from runtime.model import Model, Option, Options

MAX_TURNS = 64
MAX_CHARS = 1000
__all__ = ["DialogueModel", "Reply", "OPTIONS", "MODEL", "MAX_TURNS", "MAX_CHARS", "READ_CHARS"]

OPTIONS = Options(
    Option("history", [], "str_list", "the conversation so far as plain strings, alternating "
           f"user/system, user first, ending with a user turn (at most {MAX_TURNS} turns of "
           f"{MAX_CHARS:,} characters; empty: the system opens); with `state`, only the user's "
           "new turn", hi=MAX_TURNS),
    Option("state", None, "object", "`reply.state` of the previous reply (a JSON-able dict): "
           "the conversation continues from it without re-reading the system's text",
           optional=True),
)


class Reply(str):
    """The system's reply text, with what it did and understood.

    ``act``: the system act ("offer", "request_people", "book", "nomatch", "greet", ...);
    ``slots``: the values understood so far (slot -> value or "dontcare"); ``excluded``: values
    the user ruled out; ``offered``: the restaurant on the table (a dict) or None; ``booking``:
    ``{"restaurant", "people", "time", "reference"}`` or None; ``state``: pass it back as
    ``state=`` with the user's next turn; ``transcript``: the conversation including this reply.
    """
    suffix = ".txt"

    def __new__(cls, text: str, *, act: str, slots: dict, excluded: dict, offered, booking,
                state: dict):
        obj = super().__new__(cls, text)
        obj.act, obj.slots, obj.excluded = act, slots, excluded
        obj.offered, obj.booking, obj.state = offered, booking, state
        return obj

    @property
    def transcript(self) -> list[str]:
        return list(self.state["transcript"])

    def save(self, path) -> str:
        """Write the conversation as text (one "user:"/"system:" line per turn); return a
        one-line summary."""
        turns = self.transcript
        first = "system" if self.state.get("system_opened") else "user"
        other = {"user": "system", "system": "user"}
        who = [first if i % 2 == 0 else other[first] for i in range(len(turns))]
        Path(path).write_text("".join(f"{w}: {t}\n" for w, t in zip(who, turns)),
                              encoding="utf-8")
        b = self.booking
        booked = f"; booked {b['restaurant']} for {b['people']} at {b['time']} " \
                 f"(ref {b['reference']})" if b else ""
        return f"dialogue of {len(turns)} turns, last act {self.act}{booked}"


class DialogueModel(Model):
    kind = "dialogue"
    options = OPTIONS

    def resources(self) -> tuple:
        """(catalogue, templates, understanding, system reader), built once per model."""
        def build():
            cat = Catalogue(self.json("catalogue"))
            templates = self.json("templates")
            nlu = Understanding(self.json("lexicon"), cat)
            return cat, templates, nlu, SystemReader(cat, templates, nlu)
        return self.cached("resources", build)

    def _generate(self, rng, *, history, state) -> Reply:
        history = _check.check_str_list("history", history, max_items=MAX_TURNS,
                                        max_len=MAX_CHARS)
        cat, templates, nlu, reader = self.resources()
        if state is not None:
            tracker, transcript, opened = self._from_state(cat, state, history, nlu)
        else:
            if len(history) % 2 == 0 and history:
                raise ValueError(f"history must alternate user/system turns starting with the "
                                 f"user and end with a user turn (odd length) or be empty; got "
                                 f"{len(history)} turns")
            tracker, transcript, opened = Tracker(cat), list(history), False
            for i, turn in enumerate(history):
                if i % 2 == 0:
                    tracker.user(nlu.parse(turn, tracker.last_sys), nlu.typos(turn))
                else:
                    tracker.system(reader.read(turn))
        if not transcript:
            act = SystemAct(A_NONE, value="greet")
            opened = True
        else:
            act = resolve_action(tracker, self._policy(tracker), rng)
            tracker.system(act)
        text = render(act, cat, templates, rng)
        transcript = (transcript + [text])[-MAX_TURNS:]
        return self._reply(text, act, tracker, transcript, opened)

    def _from_state(self, cat, state, history, nlu):
        if not isinstance(state, dict):
            raise ValueError(f"state must be the dict reply.state of a previous reply, got "
                             f"{type(state).__name__}")
        if len(history) != 1:
            raise ValueError(f"with state, history must hold exactly the user's new turn (one "
                             f"string); got {len(history)} turns")
        tracker = Tracker.from_state(cat, state)
        transcript = state.get("transcript")
        if not isinstance(transcript, list) or not all(isinstance(t, str) for t in transcript):
            raise ValueError("state is damaged: its transcript is not a list of strings")
        tracker.user(nlu.parse(history[0], tracker.last_sys), nlu.typos(history[0]))
        return tracker, transcript + [history[0]], bool(state.get("system_opened"))

    def _policy(self, tracker: Tracker) -> int:
        f = tracker.feature_list()
        obs = np.array([f], np.float32)
        sess = self.session("q")
        (q,) = self.run(sess, {sess.get_inputs()[0].name: obs})
        if q.shape != (1, N_ACTIONS):
            raise ModelError(f"the dialogue Q-network returned shape {q.shape}, expected "
                             f"(1, {N_ACTIONS}) for observations of {OBS_DIM}: re-export "
                             f"dialogue")
        return int(np.argmax(np.where(mask_row(f), q[0], -np.inf)))

    @staticmethod
    def _reply(text, act, tracker: Tracker, transcript, opened) -> Reply:
        cat = tracker.cat
        slots = {s: tracker.value[s] for s in CONSTRAINTS + BOOKING
                 if tracker.value[s] is not None}
        offered = None if tracker.offered is None else dict(cat.restaurants[tracker.offered])
        b = tracker.booking
        booking = None if b is None else {"restaurant": cat.names[b["restaurant"]],
                                          "people": int(b["people"]), "time": b["time"],
                                          "reference": b["ref"]}
        state = {**tracker.to_state(), "transcript": transcript, "system_opened": opened}
        name = "greet" if act.action == A_NONE and act.value == "greet" else (
            "repeat" if act.action == A_NONE else template_key(act) if act.name == "none"
            else act.name)
        return Reply(text, act=name, slots=slots,
                     excluded={s: sorted(v) for s, v in tracker.excluded.items() if v},
                     offered=offered, booking=booking, state=state)


MODEL = DialogueModel
