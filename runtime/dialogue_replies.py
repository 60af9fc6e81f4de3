"""System replies: render a :class:`SystemAct` with the shipped templates, and read a system
turn back into an act (for ``history=`` of plain strings, which re-reads the system's turns).
"""
from __future__ import annotations

import re

import numpy as np

from runtime.dialogue_domain import (
    A_BOOK, A_BYE, A_CHANGE, A_INFORM, A_NOMATCH, A_NONE, A_OFFER, A_READBACK, A_REJECT,
    A_REQMORE, A_REQUEST, ACTIONS, CONSTRAINTS, REQUESTABLE, Catalogue, SystemAct,
)


def phrase_constraints(c: dict) -> str:
    parts = [c[s] for s in ("price", "cuisine") if c.get(s)]
    text = " ".join(parts + ["restaurant"])
    if c.get("area"):
        text += f" in the {c['area']}"
    return text


def _join(values) -> str:
    values = list(values)
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def template_key(act: SystemAct) -> str:
    if act.action == A_NONE:
        return "greet" if act.value == "greet" else "repeat"
    if act.action == A_NOMATCH:
        return "nomatch_other" if act.value == "other" else "nomatch"
    if act.action == A_REJECT:
        return f"reject_{act.slot}"
    if act.action == A_REQMORE and act.value == "open":
        return "reqmore_open"
    if act.action == A_READBACK and act.value == "change":
        return "readback_change"
    return ACTIONS[act.action]


def _pick(variants, rng):
    return variants[int(rng.integers(len(variants)))]


def render(act: SystemAct, cat: Catalogue, templates: dict, rng: np.random.Generator) -> str:
    fields = {}
    if act.restaurant is not None:
        fields.update(cat.restaurants[act.restaurant])
    if act.value is not None:
        fields["value"] = act.value
    if act.people is not None:
        fields.update(people=act.people, time=act.time, ref=act.ref or "")
    if act.action == A_INFORM:
        fields["parts"] = _join([_pick(templates[f"inform_{r}"], rng).format(**fields)
                                 for r in act.slots])
    text = _pick(templates[template_key(act)], rng).format(**fields, constraints=(
        phrase_constraints(act.constraints or {})))
    if act.action == A_NOMATCH and act.slots:
        c = act.constraints or {}
        where = f" in the {c['area']}" if act.slot != "area" and c.get("area") else ""
        text += " " + _pick(templates[f"suggest_{act.slot}"], rng).format(
            values=_join(act.slots), where=where)
    return text


class SystemReader:
    """Reads a system turn back into a :class:`SystemAct` (templates first, then keywords)."""

    def __init__(self, cat: Catalogue, templates: dict, understanding):
        self.cat, self.nlu = cat, understanding
        pats = []
        for key, variants in templates.items():
            if key.startswith(("inform_", "suggest_")):
                continue
            for v in variants:
                rx = re.escape(v.lower())
                rx = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>.+?)", rx)
                tail = r"(?:\s.*)?" if key.startswith("nomatch") else ""
                literal = len(re.sub(r"\{\w+\}", "", v))
                pats.append((-literal, key, re.compile(r"^\s*" + rx + tail + r"\s*$")))
        self.patterns = [(key, rx) for _, key, rx in sorted(pats, key=lambda p: p[0])]
        self._memo: dict = {}

    def read(self, text: str) -> SystemAct:
        hit = self._memo.get(text)         # a history re-reads the same turns on every reply
        if hit is None:
            if len(self._memo) >= 4096:
                self._memo.clear()
            hit = self._memo[text] = self._read(text)
        return hit                         # acts are never mutated

    def _read(self, text: str) -> SystemAct:
        norm = re.sub(r"\s+", " ", text).strip()
        low = norm.lower()
        for key, pat in self.patterns:
            m = pat.match(low)
            if m:
                groups = m.groupdict()
                if "ref" in groups and len(low) == len(norm):     # references keep their case
                    groups["ref"] = norm[m.start("ref"):m.end("ref")]
                act = self._act(key, groups)
                if act is not None:
                    return act
        return self._fallback(low)

    def _act(self, key: str, g: dict) -> SystemAct | None:
        r = self.cat.by_name.get(g["name"].strip()) if "name" in g else None
        if "name" in g and r is None:
            return None
        if key in ("greet", "repeat"):
            return SystemAct(A_NONE)
        if key.startswith("nomatch"):
            return SystemAct(A_NOMATCH, value="other" if key.endswith("other") else None)
        if key.startswith("reject_"):
            return SystemAct(A_REJECT, slot=key[7:], restaurant=r)
        if key == "inform":
            parts = g.get("parts", "")
            return SystemAct(A_INFORM, restaurant=r, slots=[
                q for q in REQUESTABLE if q in parts or (q == "phone" and "call" in parts)])
        if key == "reqmore_open":
            return SystemAct(A_REQMORE, value="open")
        if key.startswith("readback"):
            return SystemAct(A_READBACK, restaurant=r, people=g.get("people", "").strip(),
                             time=g.get("time", "").strip(),
                             value="change" if key.endswith("change") else None)
        action = ACTIONS.index(key)
        if key.startswith("confirm_"):
            return self._confirm(action, key[8:], g.get("value", "").strip())
        if key.startswith("request_"):
            return SystemAct(action, slot=key[8:])
        if key == "offer":
            return SystemAct(A_OFFER, restaurant=r)
        if key in ("book", "change"):
            return SystemAct(action, restaurant=r, people=g.get("people", "").strip(),
                             time=g.get("time", "").strip(), ref=g.get("ref", "").strip())
        return SystemAct(action)

    def _confirm(self, action: int, slot: str, value: str) -> SystemAct | None:
        if slot in CONSTRAINTS:
            value = next((v for a, s, v, _ in self.nlu.parse(value) if s == slot), None)
        elif slot == "people" and not value.isdigit():
            value = None
        elif slot == "time" and not re.fullmatch(r"\d{2}:\d{2}", value):
            value = None
        return None if value is None else SystemAct(action, slot=slot, value=value)

    def _fallback(self, low: str) -> SystemAct:
        """Keywords, for system turns an app wrote or edited itself."""
        r = next((i for n, i in self.cat.by_name.items() if n in low), None)
        if r is not None:
            if "book" in low or "reserv" in low:
                return SystemAct(A_CHANGE if "chang" in low else A_BOOK, restaurant=r, ref="")
            slots = [q for q in REQUESTABLE if q in low]
            if slots:
                return SystemAct(A_INFORM, restaurant=r, slots=slots)
            if "only take" in low or "can't take" in low or "cannot take" in low:
                return SystemAct(A_REJECT, restaurant=r, slot="time" if ":" in low else "people")
            return SystemAct(A_OFFER, restaurant=r)
        if re.search(r"\b(sorry|no)\b.*\b(no|not|can't|cannot|couldn't)\b", low):
            return SystemAct(A_NOMATCH)
        keys = (("how many", "people"), ("what time", "time"), ("when", "time"),
                ("food", "cuisine"), ("cuisine", "cuisine"), ("area", "area"),
                ("part of town", "area"), ("where", "area"), ("price", "price"),
                ("budget", "price"))
        for word, slot in keys:
            if word in low:
                return SystemAct(A_REQUEST[slot], slot=slot)
        if "anything else" in low:
            return SystemAct(A_REQMORE)
        if re.search(r"\b(bye|goodbye)\b", low):
            return SystemAct(A_BYE)
        return SystemAct(A_NONE)

